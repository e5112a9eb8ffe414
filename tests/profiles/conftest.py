"""Fixtures for the profile, register, plan and opt-out tests: small hand-built risk Datasets."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

from hra.policy.profiles import risk_dataset_from_arrays

YEARS = [2025, 2026, 2027, 2028, 2029, 2030]


def _series(v, n):
    a = np.asarray(v, dtype=float)
    return np.full(n, float(a)) if a.ndim == 0 else a


@pytest.fixture
def make_ds():
    """Factory: ``make_ds({"b1": (mean, p50, p90), ...}, tag="run1", ...)``.

    Each statistic is a scalar (same every year) or a list with one value per year. ``tag``
    makes a distinct provenance (and config hash), so two tags are two different runs.
    """

    def make(rows, *, years=YEARS, tag="run1", municipality=None, connected_group=None):
        ids = list(rows)
        n = len(years)
        mean = np.array([_series(rows[b][0], n) for b in ids])
        p50 = np.array([_series(rows[b][1], n) for b in ids])
        p90 = np.array([_series(rows[b][2], n) for b in ids])
        prov = {"config_sha256": hashlib.sha256(tag.encode()).hexdigest(), "package_version": "0.1.0", "seed": 1,
                "tag": tag}
        return risk_dataset_from_arrays(
            ids, years, mean, p50, p90,
            municipality=None if municipality is None else [municipality[b] for b in ids],
            connected_group=None if connected_group is None else [connected_group.get(b) for b in ids],
            provenance=json.dumps(prov, sort_keys=True),
        )

    return make
