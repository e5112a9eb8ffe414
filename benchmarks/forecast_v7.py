"""`[source] forecast` end to end with the public models: a synthetic SSM-format forecast against a rate grid.

The demo region's 1 km cells and its two rate branches (elastic, elastic_plastic) become a
forecast file in the chain's layout (variable ``forecast`` of group ``forecast``, dims
branch_rate x branch_mm x branch_mmax x magnitude x time x x x y, magnitude 1.45-6.55 step
0.05): per-cell truncated GR counts with a b-value per cell for each magnitude model
(``linear_stress``: b falls from 1.15 to 0.85 with the activity; ``split_thickness``: 0.95
north, 1.05 south of y = 592 km) and the 6 Mmax branches: 2 x 2 x 6 = 24 branches. The same
buildings run with ``model = "psdra-2024"`` (GMM V7 x FCM TNO-2020, the preset's forecast
weights) on the forecast, and with the same models on the demo rate grid (one b = 1, the same
6 Mmax: 12 source branches). Prints the timing split (prepare / tables / buildings) of both.

    python benchmarks/forecast_v7.py                         # ~350 buildings in 2 zones, 2 years
    python benchmarks/forecast_v7.py --buildings 800 --zones 1221,2109 --realisations 200 --workers 1

Needs the public model tables ($HRA_MODEL_DIR). Figures depend on the machine: quote it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import tomli_w
import xarray as xr

import hra
from hra.config import PSDRA_2024_FORECAST_WEIGHTS
from hra.demo.source import demo_rate_grid
from hra.integration.engine import compute
from hra.inputs.forecast import CHAIN_MAGNITUDES, gr_counts, write_forecast


def synthetic_forecast(path: Path, years: tuple[int, ...]) -> Path:
    """The demo rate grid as a 24-branch SSM-format forecast with per-cell b-values."""
    grid = demo_rate_grid(years)
    xs, ys = np.unique(grid["x"]), np.unique(grid["y"])
    mmax = [float(k) for k in PSDRA_2024_FORECAST_WEIGHTS["branch_mmax"]]
    arr = np.zeros((2, 2, len(mmax), CHAIN_MAGNITUDES.size, len(years), xs.size, ys.size))
    for i, branch in enumerate(("elastic", "elastic_plastic")):
        g = grid[grid["branch"] == branch]
        for t, year in enumerate(years):
            gy = g[g["year"] == year]
            ix, iy = np.searchsorted(xs, gy["x"].to_numpy()), np.searchsorted(ys, gy["y"].to_numpy())
            rate15 = gy["rate"].to_numpy()  # events/yr with M >= 1.5
            act = rate15 / rate15.max()
            b_maps = (1.15 - 0.30 * act, np.where(gy["y"].to_numpy() > 592_000.0, 0.95, 1.05))
            for j, b in enumerate(b_maps):
                rate145 = rate15 * 10.0 ** (b * 0.05)  # the same law, counted from M 1.45
                for k, mx in enumerate(mmax):
                    arr[i, j, k, :, t, ix, iy] = gr_counts(CHAIN_MAGNITUDES, rate145, b, mx)  # (cells, m)
    da = xr.DataArray(arr, dims=("branch_rate", "branch_mm", "branch_mmax", "magnitude", "time", "x", "y"),
                      coords=dict(branch_rate=["elastic", "elastic_plastic"], branch_mm=["linear_stress", "split_thickness"],
                                  branch_mmax=mmax, magnitude=CHAIN_MAGNITUDES,
                                  time=np.array([f"{y}-07-01" for y in years], dtype="datetime64[ns]"), x=xs, y=ys))
    return write_forecast(da, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--buildings", type=int, default=800, help="synthetic buildings before the zone filter")
    ap.add_argument("--zones", default="1221,2109", help="keep the buildings of these V6 zones ('' = all)")
    ap.add_argument("--years", default="2025,2026")
    ap.add_argument("--realisations", default="200")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--model", default="psdra-2024", choices=["psdra-2024", "demo"],
                    help="demo: the illustrative demo GMM and fragility (cheap tables: the per-building pass)")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args()
    years = tuple(int(y) for y in a.years.split(","))
    real = a.realisations if a.realisations == "all" else int(a.realisations)
    d = Path(tempfile.mkdtemp(prefix="hra-forecast-v7-"))
    demo = a.model == "demo"
    cfg0 = hra.demo_config(n_buildings=a.buildings, model="demo" if demo else "groningen-v7", directory=d,
                           realisations=real, years=years)
    bld = pd.read_csv(d / "buildings.csv")
    if a.zones and not demo:
        bld = bld[bld["zone"].isin([int(z) for z in a.zones.split(",")])]
        bld.to_csv(d / "buildings.csv", index=False)
    t0 = time.perf_counter()
    synthetic_forecast(d / "ssm_forecast.h5", years)
    t_write = time.perf_counter() - t0
    base = {"run": {"years": list(years), "seed": 1, "realisations": real, "quantiles": [0.5, 0.9]},
            "exposure": {"buildings": "buildings.csv"},
            "compute": {"workers": a.workers, "progress": False, **({"scheduler": "synchronous"} if a.workers == 1 else {})}}
    if demo:  # the demo's [ground_motion] and [fragility] sections, the preset's forecast weights
        dump = cfg0.model_dump(mode="json", exclude_none=True)
        models = {"ground_motion": dump["ground_motion"], "fragility": dump["fragility"]}
        fsrc = {"forecast": "ssm_forecast.h5", "forecast_weights": PSDRA_2024_FORECAST_WEIGHTS}
    else:
        models = {"model": "psdra-2024"}
        fsrc = {"forecast": "ssm_forecast.h5"}
    cfgs = {
        "forecast": {**models, "source": fsrc, **base},
        "rate grid": {**models, **base, "source": {
            "rates": "rates.csv", "cell_size_m": 1000.0, "m_min": 1.5,
            "magnitude": {"b_value": 1.0, "m_max": [{"value": float(k), "weight": w}
                                                    for k, w in PSDRA_2024_FORECAST_WEIGHTS["branch_mmax"].items()]}}},
    }
    rows = []
    for name, data in cfgs.items():
        path = d / f"{name.replace(' ', '_')}.toml"
        path.write_text(tomli_w.dumps(data))
        cfg = hra.load_config(path)
        res = compute(cfg, progress=False)
        prep = res.prep
        k = prep.forecast.n_basis if prep.forecast is not None else 1
        rows.append(dict(source=name, buildings=prep.buildings.n, sites=len(prep.sites), cells=prep.rates.x.size,
                         source_branches=len(prep.rates.branches), magnitude_nodes=int(prep.magnitude.nodes.size),
                         basis=k, tree=prep.tree.n_combinations, **{k2: round(v, 2) for k2, v in res.timings.items()},
                         us_per_building=round(1e6 * res.timings["buildings_s"] / max(prep.buildings.n, 1), 1),
                         mean_lpr_field=float(res.mean.mean())))
    print(f"forecast file written in {t_write:.1f} s ({(d / 'ssm_forecast.h5').stat().st_size / 2**20:.1f} MiB), in {d}")
    print(pd.DataFrame(rows).to_string(index=False))
    if a.json:
        a.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
