"""One exposure reader for every entry point: the EDB layout runs through `hra run` and `hra events`
alike, and its population columns reach the event-based expected fatalities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tomli_w
from typer.testing import CliRunner

from hra.cli import app
from hra.inputs.exposure import read_buildings

EDB = "tests/res/example_EDB.csv"


@pytest.fixture(scope="module")
def edb_case(tmp_path_factory, model_dir):
    d = tmp_path_factory.mktemp("edb")
    edb = pd.read_csv(model_dir.parent.parent / EDB, encoding="utf-8-sig")
    site = edb[(edb.point_x == 234603) & (edb.point_y == 572797)].head(4).copy()
    site["sum_pop_in_day"] = [2.0, 0.0, 4.0, 1.0]
    site["sum_pop_in_night"] = [4.0, 0.0, 2.0, 3.0]
    site.to_csv(d / "edb.csv", index=False)
    pd.DataFrame([dict(x=234_500.0, y=573_500.0, year=2025, rate=0.5)]).to_csv(d / "rates.csv", index=False)
    cfg = {
        "model": "groningen-v7",
        "run": {"years": [2025], "seed": 1, "realisations": 4},
        "source": {"rates": "rates.csv", "distance_nodes": 24,
                   "magnitude": {"b_value": 1.0, "m_max": [{"value": 5.0, "weight": 1.0}]}},
        "ground_motion": {"model_dir": str(model_dir), "rupture": "point", "quadrature": "fast"},
        "exposure": {"buildings": "edb.csv"},
        "compute": {"progress": False, "workers": 1},
    }
    (d / "run.toml").write_text(tomli_w.dumps(cfg))
    return d, site


def test_read_buildings_takes_the_edb_population(edb_case, fcm_v7):
    d, site = edb_case
    df = read_buildings(d / "edb.csv", known_typologies=fcm_v7.typologies)
    np.testing.assert_allclose(df["population_inside"].to_numpy(float), [3.0, 0.0, 3.0, 2.0])
    assert list(df["id"]) == [str(i) for i in site["bag_building_id"]]


@pytest.mark.slow
def test_events_reads_the_edb(edb_case, tmp_path):
    d, site = edb_case
    res = CliRunner().invoke(app, ["events", str(d / "run.toml"), "--years-simulated", "20", "--out", str(tmp_path / "ev.nc")])
    assert res.exit_code == 0, res.output
    import xarray as xr

    with xr.open_dataset(tmp_path / "ev.nc") as ds:
        np.testing.assert_allclose(ds["population_inside"].values, [3.0, 0.0, 3.0, 2.0])
        # a building with nobody inside contributes no expected fatalities
        assert float(ds["fatality_rate"].values[1, 0]) == 0.0
