"""Bad inputs: each gives a clear error naming the file, row/column and the fix, and leaves no output."""

from __future__ import annotations

import os

import pandas as pd
import pytest

import hra
from hra.config import ConfigError
from tests.helpers import make_config

CURVES = {"URM": ((0.15, 0.3, 0.6), 0.5, (0.01, 0.1, 0.3))}
GOOD_BUILDINGS = [dict(id="B1", x=251_000.0, y=590_000.0, typology="URM"), dict(id="B2", x=252_000.0, y=591_000.0, typology="URM")]


def _config(tmp_path, **kw):
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    kw.setdefault("buildings", GOOD_BUILDINGS)
    return make_config(tmp_path / "in", cells=[(250_000.0, 590_000.0, 0.5)], curves=CURVES,
                       output={"path": str(out / "risk.zarr"), "csv": str(out / "risk.csv")}, **kw), out


def _assert_nothing_written(out):
    assert list(out.iterdir()) == [], f"output left behind: {list(out.iterdir())}"


def _run_expecting(cfg, out, exc, *patterns):
    with pytest.raises(exc) as info:
        hra.run(cfg, progress=False)
    msg = str(info.value)
    for p in patterns:
        assert p in msg, f"{p!r} not in message: {msg}"
    _assert_nothing_written(out)
    return msg


def _rewrite(path, mutate):
    df = pd.read_csv(path)
    df = mutate(df)
    df.to_csv(path, index=False)


def test_missing_column(tmp_path):
    cfg, out = _config(tmp_path)
    _rewrite(tmp_path / "in" / "buildings.csv", lambda d: d.drop(columns=["y"]))
    _run_expecting(cfg, out, ValueError, "buildings.csv", "'y'")


def test_nan_coordinate(tmp_path):
    cfg, out = _config(tmp_path, buildings=[GOOD_BUILDINGS[0], dict(id="B2", x=float("nan"), y=591_000.0, typology="URM")])
    _run_expecting(cfg, out, ValueError, "buildings.csv", "row 3", "'x'")


def test_probabilities_not_summing_to_one(tmp_path):
    b = [dict(id="B1", x=251_000.0, y=590_000.0, system_1="URM", s_probability_1=0.5, system_2="URM2", s_probability_2=0.3)]
    curves = dict(CURVES, URM2=((0.2, 0.4, 0.8), 0.5, (0.01, 0.1, 0.3)))
    out = tmp_path / "out"
    out.mkdir()
    cfg = make_config(tmp_path / "in", cells=[(250_000.0, 590_000.0, 0.5)], curves=curves, buildings=b,
                      output={"path": str(out / "risk.zarr")})
    _run_expecting(cfg, out, ValueError, "buildings.csv", "row 2", "s_probability_1", "0.8")


def test_unknown_typology(tmp_path):
    cfg, out = _config(tmp_path, buildings=[GOOD_BUILDINGS[0], dict(id="B2", x=252_000.0, y=591_000.0, typology="URN")])
    _run_expecting(cfg, out, ValueError, "buildings.csv", "row 3", "URN")


def test_negative_rate(tmp_path):
    cfg, out = _config(tmp_path)
    _rewrite(tmp_path / "in" / "rates.csv", lambda d: d.assign(rate=-0.1))
    _run_expecting(cfg, out, ValueError, "rates.csv", "row 2", "'rate'", "negative")


def test_source_weights_not_summing_to_one(tmp_path):
    cfg, out = _config(tmp_path, rate_branches=[("a", 0.5, 1.0), ("b", 0.4, 1.2)])
    _run_expecting(cfg, out, ValueError, "rates.csv", "'weight'", "sum to 0.9")


def test_mmax_weights_not_summing_to_one(tmp_path):
    with pytest.raises(ConfigError, match=r"m_max.*sum to 0.9"):
        _config(tmp_path, m_max=((4.5, 0.5), (5.5, 0.4)))


def test_empty_exposure_file(tmp_path):
    cfg, out = _config(tmp_path)
    (tmp_path / "in" / "buildings.csv").write_text("")
    _run_expecting(cfg, out, ValueError, "buildings.csv", "empty")


def test_duplicate_ids(tmp_path):
    cfg, out = _config(tmp_path, buildings=[GOOD_BUILDINGS[0], dict(GOOD_BUILDINGS[1], id="B1")])
    _run_expecting(cfg, out, ValueError, "buildings.csv", "B1", "rows 2 and 3")


def test_unknown_config_key(tmp_path):
    p = tmp_path / "run.toml"
    p.write_text('[run]\nyears = [2025]\nseeed = 3\n')
    with pytest.raises(ConfigError) as info:
        hra.load_config(p)
    msg = str(info.value)
    assert str(p) in msg and "run.seeed" in msg and "remove it or check its spelling" in msg


def test_output_path_not_writable(tmp_path):
    cfg, out = _config(tmp_path)
    blocker = out / "not-a-dir"
    blocker.write_text("a file where the output directory should be")
    cfg = cfg.with_updates(output={"path": str(blocker / "risk.zarr"), "csv": None})
    with pytest.raises(OSError, match="not a directory"):
        hra.run(cfg, progress=False)
    assert sorted(os.listdir(out)) == ["not-a-dir"]


def test_output_exists_without_overwrite(tmp_path):
    cfg, out = _config(tmp_path)
    (out / "risk.zarr").mkdir()
    with pytest.raises(OSError, match="already exists"):
        hra.run(cfg, progress=False)
    assert sorted(os.listdir(out)) == ["risk.zarr"] and not any((out / "risk.zarr").iterdir())


def test_fragility_missing_state(tmp_path):
    cfg, out = _config(tmp_path)
    _rewrite(tmp_path / "in" / "fragility.csv", lambda d: d[d.state != "CS2"])
    _run_expecting(cfg, out, ValueError, "fragility.csv", "CS2", "URM")


def test_good_run_writes_both_outputs(tmp_path):
    """The control case: the same inputs, unbroken, do write the zarr store and the CSV."""
    cfg, out = _config(tmp_path)
    ds = hra.run(cfg, progress=False)
    assert sorted(os.listdir(out)) == ["risk.csv", "risk.zarr"]
    back = __import__("xarray").open_zarr(out / "risk.zarr")
    assert float(back["lpr_mean"].max()) == pytest.approx(float(ds["lpr_mean"].max()))
    from hra.outputs import validate

    validate(back.load())
