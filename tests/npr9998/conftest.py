"""Shared fixtures of the npr9998 tests.

The package's provisional tables warn on every load (ProvisionalTableWarning); the tests use
them on purpose, so that warning is silenced here for the tests of this folder only. One test
(test_npr9998_tables.py) checks that the warning is raised.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import npr9998 as n


def pytest_collection_modifyitems(config, items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.filterwarnings("ignore::npr9998.errors.ProvisionalTableWarning"))


@pytest.fixture
def spectrum() -> n.SpectrumParameters:
    """a_g;S = 0.2 g, p = 2.5, T_B = 0.1 s, T_C = 0.4 s, T_D = 2.0 s (round numbers for hand work)."""
    return n.SpectrumParameters(0.2, 2.5, 0.1, 0.4, 2.0, return_period_yr=2475)


@pytest.fixture
def two_storey() -> n.StructureModel:
    """m = (50, 40) t, Phi = (0.5, 1.0), levels at 3 and 6 m."""
    return n.StructureModel([50.0, 40.0], [0.5, 1.0], [3.0, 6.0])


@pytest.fixture
def stiff_curve() -> n.PushoverCurve:
    """Pushover (0,0), (0.012 m, 240 kN), (0.03 m, 300 kN), (0.06 m, 300 kN)."""
    return n.PushoverCurve.from_points([0.0, 0.012, 0.03, 0.06], [0.0, 240.0, 300.0, 300.0])


@pytest.fixture
def soft_curve() -> n.PushoverCurve:
    """Exactly bilinear pushover (0,0), (0.05 m, 200 kN), (0.15 m, 200 kN)."""
    return n.PushoverCurve.from_points([0.0, 0.05, 0.15], [0.0, 200.0, 200.0])
