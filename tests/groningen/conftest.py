"""Fixtures of the Groningen model tests.

Every test that needs the public model tables takes ``model_dir``: it comes from
``$HRA_MODEL_DIR`` (the upstream ``convert/res`` folder) via :func:`hra.inputs.modeldata.model_dir_or_skip`,
so those tests skip with a clear reason where the tables are absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from hra.inputs import modeldata as md


@pytest.fixture(scope="session")
def model_dir() -> Path:
    return md.model_dir_or_skip()


@pytest.fixture(scope="session")
def upstream_tests_res(model_dir) -> Path:
    """The upstream ``tests/res`` folder beside ``convert/res`` (example EDB, zonation, rupture fixture)."""
    p = model_dir.parent.parent / "tests" / "res"
    if not p.is_dir():
        pytest.skip(f"upstream tests/res folder not found beside the model dir ({p})")
    return p


@pytest.fixture(scope="session")
def zonation_zip(model_dir) -> Path:
    try:
        return md.zonation_file(model_dir)
    except md.ModelDataError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def gmm_v7(model_dir):
    from hra.gmm.groningen_v7 import GroningenV7

    return GroningenV7(model_dir)


@pytest.fixture(scope="session")
def fcm_v7(model_dir):
    from fragility.groningen import load_fcm

    return load_fcm("fcm-v7", model_dir)
