"""Whole-field benchmark: 250,000 synthetic buildings over all 160 V6 zones, an SSM-format forecast
with 24 branches, the full V7 tree (``model = "psdra-2024"``), mean + P50/P90 from 1,000 realisations.

Targets on 2 cores: reading and zoning the 250k-row EDB file <= 30 s; cold run (empty table store)
<= 15 min; warm run (tables stored) <= 3 min; peak memory <= 8 GB.

The script writes its inputs to ``--workdir`` (deterministic for a given seed and size; reused when
the same inputs are asked again):

* ``edb.csv`` - an exposure file in the EDB layout :func:`hra.inputs.edb.read_edb` reads
  (``bag_building_id, point_x, point_y, main_use, secondary_use, system_1..10,
  s_probability_1..10, community, wiede_flag, sum_pop_*``; UTF-8 with a byte-order mark as the
  upstream example). Locations are sampled inside the real V6 zone polygons (the zonation of the
  model tables, zones with GMM V7 coefficients): first one building at a random point of every
  zone (so each of the 160 zones has at least one), then a mixture of Gaussian clusters around
  the 14 towns of :func:`hra.demo.region.towns` (70 % of the buildings, shares = the towns'
  population weights, standard deviation = the town's radius) and a uniform rural background over
  the zones' extent (30 %), kept where it falls inside a zone. Typologies as the V7 demo
  (:mod:`hra.demo.groningen`): a primary FCM class from the setting's mix, 45 % of the buildings
  with 2-10 candidates (whole percentages). Wierden: 40 % of the centres of the wierde villages,
  5 % of the countryside north of y = 596 km. Persons: 1-3 inside by night, fewer by day.
* ``forecast.h5`` - an SSM-format forecast (variable ``forecast`` of group ``forecast``, dims
  ``(branch_rate, branch_mm, branch_mmax, magnitude, time, x, y)``): the psdra-2024 branch labels
  (2 rate x 2 magnitude models x 6 Mmax = 24 branches), years 2025-2031, magnitudes 1.45-6.55
  step 0.05 (``--magnitude-step 0.1``: the 52-point grid of the PSDRA-2024 forecasts), cells of ``--cell-m`` (default 500 m, the SSM's grid) whose centres lie in the field
  outline (``--field-outline``; default the SSM repository's ``res/Groningen_field_outline.csv``
  where the public models are checked out side by side, else the demo's approximate outline). Activity: three Gaussian lobes (Loppersum, Ten Boer-Slochteren, south-east) over a 5 %
  floor. Rate of M >= 1.5 field-wide: ``elastic`` 6.0 per year in 2025 falling 10 % a year,
  ``elastic_plastic`` 8.0 per year falling 6 % a year (the order of the yearly M >= 1.5 counts
  after the end of production: a few to ten); with ``--forecast-shape shifting`` the lobes decline
  at their own rates (x 0.96, 1.0, 1.04 of the branch's yearly factor), so each branch's map
  changes shape over the years. b-values per cell: ``linear_stress`` b = 1.20 -
  0.35 x activity (relative to the peak: 0.85 at the centre, 1.2 at the edge); ``split_thickness``
  b = 1.0 - 0.075 tanh((y - 592 km) / 3 km) (0.925 north, 1.075 south). Per-cell truncated GR
  counts (:func:`hra.inputs.forecast.gr_counts`) for each Mmax, in float64 (float32 rounding
  would inflate the forecast's magnitude basis from K = 9 to ~60 per branch).
* ``field.toml`` - ``model = "psdra-2024"`` (GMM V7 x FCM TNO-2020, the preset's forecast
  weights), ``[source] forecast``, 7 years, 1,000 realisations, quantiles 0.5 / 0.9, ``[compute]
  table_store = "tables"`` (in the work dir), ``workers = --workers``.

Phases (``--phases``, each in a fresh Python process so that its peak memory is its own; the
default executor runs ``--workers`` threads in that process, so ``ru_maxrss`` is the whole run):

* ``read``: :func:`hra.inputs.exposure.read_buildings` of the EDB (with the FCM's typologies) and
  the zones of the V6 zonation (:meth:`hra.inputs.sites.ZoneSource.assign`, the chain's path);
* ``cold``: :func:`hra.integration.engine.compute` with the table store emptied first;
* ``warm``: the same run again, the tables read from the store (the results must be identical): the
  forecast tables where stored (:mod:`hra.integration.forecaststore`, a rerun with the same forecast),
  else the physical tables;
* ``new-forecast``: a warm run with the forecast tables removed first: the physical tables read and
  integrated against the forecast's basis, as in a run with a new forecast (written again where
  ``--store-kinds`` holds ``forecast``).

For each run: prepare / tables / buildings / total wall seconds, CPU seconds of the table stage
(its zone tasks' thread CPU time, the engine's ``tables_cpu_s``: what the stage costs whatever else
runs on a shared machine; the building pass's: the rest of the process's CPU after prepare, of which
its chunks' own thread time, the engine's ``buildings_cpu_s``, is ``chunks_cpu_s`` in the JSON) and the
peak resident memory. With ``--zones K`` (the first K zones in ascending ``ID_V6``: the
buildings and the zones) and/or fewer ``--buildings`` the script extrapolates the cold and warm runs
to the whole field, from CPU seconds (prepare + (table stage x 160 / K + building pass x 250,000 / N)
/ 2 cores) and from wall seconds (the wall time after prepare x the growth of both stages' CPU
seconds).

Usage::

    python benchmarks/field_scale.py                                   # the full benchmark (long)
    python benchmarks/field_scale.py --phases read                     # 250k read + zone only
    python benchmarks/field_scale.py --buildings 20000 --zones 6       # reduced run, extrapolated
    python benchmarks/field_scale.py --quick                           # smoke check (seconds)
    python benchmarks/field_scale.py --drop-caches                     # as measured (root: warm from disk)
    python benchmarks/field_scale.py --magnitude-table-stride 1        # the tables at every magnitude node
    python benchmarks/field_scale.py --table-precision float64         # the building pass's tables in float64
    python benchmarks/field_scale.py --phases cold,warm,new-forecast  # a rerun, and a run with a new forecast
    python benchmarks/field_scale.py --store-kinds forecast             # the store holds the forecast tables only
    python benchmarks/field_scale.py --field-outline outline.csv       # field outline: CSV of x, y [m]

``--quick`` (the smoke test's mode): 200 buildings in the first zone, one year, 20 realisations,
2 km cells, magnitudes at 0.1, one Mmax branch (4.0; 2 x 2 x 1 = 4 forecast branches), fast
quadrature, point ruptures and the GMM V7 nodes fixed to one branch each (``[logic_tree] fix``).

Needs the public model tables (``$HRA_MODEL_DIR`` or ``--model-dir``). Not part of the test suite
(``tests/test_benchmarks.py`` runs ``--quick``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import finish, machine, peak_mib, spawn_case, table  # noqa: E402

#: Zones of the V6 zonation with GMM V7 coefficients.
FIELD_ZONES = 160
FIELD_BUILDINGS = 250_000
TARGET_READ_S = 30.0
TARGET_COLD_S = 15 * 60.0
TARGET_WARM_S = 3 * 60.0
TARGET_MIB = 8 * 1024.0
YEARS = tuple(range(2025, 2032))

#: Version of the written inputs (a work dir with another version is written afresh).
INPUTS_VERSION = 2
#: Share of the buildings in the town clusters (the rest: uniform rural background) [-].
TOWN_SHARE = 0.70
#: Activity lobes of the synthetic forecast: (x [m], y [m], sigma [m], weight [-]); floor [-].
LOBES = ((245_600.0, 594_800.0, 7_000.0, 1.0), (244_000.0, 584_000.0, 6_000.0, 0.5),
         (253_000.0, 577_000.0, 5_000.0, 0.25))
ACTIVITY_FLOOR = 0.05
#: ``--forecast-shape shifting``: each lobe's yearly factor times these (Loppersum declining faster,
#: the south-east slower; the floor as the rate branch), so the map changes shape from year to year.
LOBE_DECLINE = (0.96, 1.0, 1.04)
#: Field-wide rate of M >= 1.5 in 2025 [yr^-1] and its yearly factor, per rate branch.
RATE_2025 = {"elastic": (6.0, 0.90), "elastic_plastic": (8.0, 0.94)}
MM_BRANCHES = ("linear_stress", "split_thickness")
#: --quick: small everything (a check that the script runs end to end).
QUICK_FIX = {"gmm_median": "CentralUpper", "gmm_tau": "Central", "gmm_phi_ss": "Lower", "gmm_s2s": "zero"}
QUICK = {"buildings": 200, "zones": 1, "years": [2025], "realisations": 20, "cell_m": 2000.0, "mmax": ["4.0"],
         "magnitude_step": 0.1}
#: --quick also fixes the GMM V7 nodes to one branch each ([logic_tree] fix).


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------


def field_zones(model_dir: str, zones: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Ids (ascending) and polygons of the V6 zones with GMM V7 coefficients, the first ``zones``."""
    from hra.gmm.registry import load_gmm
    from hra.inputs.edb import read_zones_v6
    from hra.inputs.modeldata import zonation_file

    ids, polys = read_zones_v6(zonation_file(model_dir))
    valid = np.asarray(load_gmm("groningen-v7", model_dir).zones, dtype=np.int64)
    keep = np.isin(ids, valid)
    ids, polys = ids[keep], polys[keep]
    order = np.argsort(ids, kind="stable")
    ids, polys = ids[order], polys[order]
    return (ids, polys) if zones is None else (ids[:zones], polys[:zones])


def sample_locations(rng: np.random.Generator, n: int, ids: np.ndarray, polys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points inside the zone polygons: one per zone, then town clusters + rural background."""
    import shapely

    from hra.demo.region import towns

    if n < ids.size:
        raise SystemExit(f"--buildings {n} < {ids.size} zones: every zone needs a building")
    xs, ys = [], []
    for p in polys:  # one building at a random point of every zone
        x0, y0, x1, y1 = shapely.bounds(p)
        for _ in range(1000):
            px, py = rng.uniform(x0, x1), rng.uniform(y0, y1)
            if shapely.contains_xy(p, px, py):
                break
        else:  # pragma: no cover - a sliver polygon
            q = shapely.point_on_surface(p)
            px, py = shapely.get_x(q), shapely.get_y(q)
        xs.append(px)
        ys.append(py)
    tree = shapely.STRtree(polys)
    bx0, by0, bx1, by1 = shapely.total_bounds(polys)
    tl = towns()
    tw = np.array([t.weight for t in tl])
    tw = tw / tw.sum()
    got = len(xs)
    out_x, out_y = [np.array(xs)], [np.array(ys)]
    while got < n:
        m = max(4 * (n - got), 1000)
        town = rng.random(m) < TOWN_SHARE
        k = rng.choice(len(tl), size=m, p=tw)
        cx = np.array([t.x for t in tl])[k]
        cy = np.array([t.y for t in tl])[k]
        sd = np.array([t.radius_m for t in tl])[k]
        px = np.where(town, cx + sd * rng.standard_normal(m), rng.uniform(bx0, bx1, m))
        py = np.where(town, cy + sd * rng.standard_normal(m), rng.uniform(by0, by1, m))
        inside = np.zeros(m, dtype=bool)
        inside[tree.query(shapely.points(px, py), predicate="within")[0]] = True
        px, py = px[inside][: n - got], py[inside][: n - got]
        out_x.append(px)
        out_y.append(py)
        got += px.size
    return np.round(np.concatenate(out_x), 2), np.round(np.concatenate(out_y), 2)


def synthetic_edb(n: int, ids: np.ndarray, polys: np.ndarray, seed: int = 1):
    """The synthetic EDB table (strings and numbers in the EDB column layout), ``n`` rows."""
    import pandas as pd

    from hra.demo import groningen as g
    from hra.demo.region import towns
    from hra.inputs.exposure import MAX_CANDIDATES

    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(1212,)))
    x, y = sample_locations(rng, n, ids, polys)
    # typologies as the V7 demo (hra.demo.groningen): primary class from the setting's mix, candidates
    setting, town = g._settings(x, y)
    mix, family = g._mix_matrix()
    T = len(g.V7_TYPOLOGIES)
    cdf = np.cumsum(mix, axis=1)
    cdf /= cdf[:, -1:]
    primary = np.minimum((rng.random(n)[:, None] >= cdf[setting]).sum(axis=1), T - 1)
    pc = np.cumsum(g.N_CANDIDATES_P)
    n_cand = np.minimum(np.searchsorted(pc / pc[-1], rng.random(n), side="right") + 1, MAX_CANDIDATES)
    with np.errstate(divide="ignore"):
        log_w = np.log(g._confusion(family))
    alternatives = np.zeros((n, MAX_CANDIDATES - 1), dtype=np.int64)
    unc = np.flatnonzero(n_cand > 1)
    if unc.size:
        keys = log_w[primary[unc]] + rng.gumbel(size=(unc.size, T))
        alternatives[unc] = np.argsort(-keys, axis=1, kind="stable")[:, : MAX_CANDIDATES - 1]
    cents = g._whole_percentages(rng, n_cand)
    tl = towns()
    names = np.array([t.name for t in tl], dtype=object)
    wierde_village = np.isin(names[town], g._WIERDE_VILLAGES)
    p_wierde = np.where((setting == 4) & wierde_village, 0.40, np.where((setting == 6) & (y > 596_000.0), 0.05, 0.0))
    wierde = rng.random(n) < p_wierde
    night = rng.integers(1, 4, n).astype(float)
    day = np.round(night * rng.uniform(0.3, 0.8, n), 3)
    data: dict[str, object] = {
        "bag_building_id": [f"{14100000000000 + i:016d}" for i in range(n)],
        "point_x": x, "point_y": y,
        "main_use": np.where(rng.random(n) < 0.9, "woonfunctie", "industriefunctie"),
        "secondary_use": "",
    }
    classes = np.array(g.V7_TYPOLOGIES + ("",), dtype=object)
    for j in range(MAX_CANDIDATES):
        index = primary if j == 0 else np.where(n_cand > j, alternatives[:, j - 1], T)
        data[f"system_{j + 1}"] = classes[index]
        p = cents[:, j] / 100.0
        data[f"s_probability_{j + 1}"] = np.where(p > 0, np.char.mod("%g", p), "")
    data["community"] = np.array([t.municipality for t in tl], dtype=object)[town]
    data["wiede_flag"] = wierde.astype(np.int64)
    data.update(sum_pop_in_day=day, sum_pop_in_night=night, sum_pop_pas_day=np.round(0.02 * night, 4),
                sum_pop_pas_night=np.round(0.005 * night, 4), sum_pop_runners_out_day=np.round(0.03 * night, 4),
                sum_pop_runners_out_night=np.round(0.003 * night, 4))
    return pd.DataFrame(data)


def default_outline(model_dir: str) -> str | None:
    """The SSM's ``res/Groningen_field_outline.csv`` where the public models are checked out side by
    side (``<models>/tno-seismic-source-model`` beside ``<models>/tno-hazard-risk-models/convert/res``)."""
    p = Path(model_dir).resolve().parents[2] / "tno-seismic-source-model" / "res" / "Groningen_field_outline.csv"
    return str(p) if p.is_file() else None


def field_outline(path: str | None):
    """The field outline: a CSV of ``x, y`` vertices [m, RD New] (the SSM's
    ``Groningen_field_outline.csv``), else the demo's approximation (:func:`hra.demo.field_outline`)."""
    import shapely

    if path is None:
        from hra.demo.region import field_outline as demo_outline

        return demo_outline()
    import pandas as pd

    v = pd.read_csv(path)
    return shapely.make_valid(shapely.Polygon(np.column_stack([v["x"], v["y"]])))


def synthetic_forecast(path: Path, outline, cell_m: float, years, mmax_labels, magnitude_step: float = 0.05,
                       shape: str = "scaled") -> dict:
    """Write the SSM-format forecast (see the module docstring); returns a summary. ``shape``: "scaled"
    (each branch's map one map scaled per year) or "shifting" (the lobes decline at their own rates,
    :data:`LOBE_DECLINE`: three time components per branch)."""
    import shapely
    import xarray as xr

    from hra.inputs.forecast import gr_counts, write_forecast

    mags = np.round(1.45 + magnitude_step * np.arange(int(round((6.55 - 1.45) / magnitude_step)) + 1), 10)

    x0, y0, x1, y1 = outline.bounds
    xs = np.arange(np.floor(x0 / cell_m), np.ceil(x1 / cell_m)) * cell_m + cell_m / 2
    ys = np.arange(np.floor(y0 / cell_m), np.ceil(y1 / cell_m)) * cell_m + cell_m / 2
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    inside = shapely.contains_xy(outline, gx, gy)
    lobes = [w * np.exp(-0.5 * ((gx - cx) ** 2 + (gy - cy) ** 2) / sd**2) for cx, cy, sd, w in LOBES]
    act = np.full(gx.shape, ACTIVITY_FLOOR)
    for lb in lobes:
        act = act + lb
    act = np.where(inside, act, 0.0)
    share = act / act.sum()
    rel = act / act.max()
    b_maps = {"linear_stress": 1.20 - 0.35 * rel, "split_thickness": 1.0 - 0.075 * np.tanh((gy - 592_000.0) / 3_000.0)}
    mmax = [float(k) for k in mmax_labels]
    rate_branches = list(RATE_2025)
    arr = np.zeros((len(rate_branches), len(MM_BRANCHES), len(mmax), mags.size, len(years)) + gx.shape,
                   dtype=float)
    ii, jj = np.nonzero(inside)
    for i, rb in enumerate(rate_branches):
        r0, f = RATE_2025[rb]
        for t, year in enumerate(years):
            if shape == "shifting":  # the floor at the branch's factor, each lobe at its own
                act_y = ACTIVITY_FLOOR * f ** (year - 2025) + sum(
                    lb * (f * m) ** (year - 2025) for lb, m in zip(lobes, LOBE_DECLINE))
                rate15 = r0 * act_y[ii, jj] / act.sum()
            else:
                rate15 = r0 * f ** (year - 2025) * share[ii, jj]  # M >= 1.5 per cell [yr^-1]
            for j, mm in enumerate(MM_BRANCHES):
                b = b_maps[mm][ii, jj]
                rate145 = rate15 * 10.0 ** (b * 0.05)  # the same law counted from M 1.45
                for k, mx in enumerate(mmax):
                    arr[i, j, k, :, t, ii, jj] = gr_counts(mags, rate145, b, mx)
    da = xr.DataArray(arr, dims=("branch_rate", "branch_mm", "branch_mmax", "magnitude", "time", "x", "y"),
                      coords=dict(branch_rate=rate_branches, branch_mm=list(MM_BRANCHES), branch_mmax=mmax,
                                  magnitude=mags,
                                  time=np.array([f"{y}-07-01" for y in years], dtype="datetime64[ns]"), x=xs, y=ys))
    write_forecast(da, path)
    return {"cells": int(inside.sum()), "grid": [int(xs.size), int(ys.size)], "cell_m": cell_m, "shape": shape,
            "branches": int(np.prod(arr.shape[:3])), "rate_m15_2025": {rb: RATE_2025[rb][0] for rb in rate_branches},
            "mib": round(path.stat().st_size / 2**20, 1)}


def write_inputs(opts: dict) -> dict:
    """EDB, forecast and config in ``opts["workdir"]`` (reused when ``params.json`` matches)."""
    import tomli_w

    from hra.config import PSDRA_2024_FORECAST_WEIGHTS

    wd = Path(opts["workdir"])
    wd.mkdir(parents=True, exist_ok=True)
    params = {"inputs_version": INPUTS_VERSION, **{k: opts[k] for k in ("buildings", "zones", "years", "realisations", "cell_m", "mmax", "magnitude_step", "seed",
                                   "quick", "field_outline", "model_dir")}}
    if opts.get("forecast_shape", "scaled") != "scaled":  # (work dirs of the default stay valid)
        params["forecast_shape"] = opts["forecast_shape"]
    stamp = wd / "params.json"
    info: dict = {}
    if stamp.exists() and json.loads(stamp.read_text()).get("params") == params:
        info = json.loads(stamp.read_text())["info"]
    else:
        t = time.perf_counter()
        ids, polys = field_zones(opts["model_dir"], opts["zones"])
        df = synthetic_edb(opts["buildings"], ids, polys, opts["seed"])
        tmp = wd / ".edb.csv.tmp"
        df.to_csv(tmp, index=False, encoding="utf-8-sig")
        os.replace(tmp, wd / "edb.csv")
        info["edb_s"] = round(time.perf_counter() - t, 1)
        info["zones"] = int(ids.size)
        t = time.perf_counter()
        info["forecast"] = synthetic_forecast(wd / "forecast.h5", field_outline(opts["field_outline"]), opts["cell_m"],
                                              opts["years"], opts["mmax"], opts["magnitude_step"],
                                              opts.get("forecast_shape", "scaled"))
        info["forecast_s"] = round(time.perf_counter() - t, 1)
    source: dict = {"forecast": "forecast.h5"}
    if opts.get("magnitude_table_stride") is not None:  # else the preset's (2)
        source["magnitude_table_stride"] = opts["magnitude_table_stride"]
    if opts.get("magnitude_subdivisions", 1) != 1:
        source["magnitude_subdivisions"] = opts["magnitude_subdivisions"]
    if opts["mmax"] != list(PSDRA_2024_FORECAST_WEIGHTS["branch_mmax"]):
        source["forecast_weights"] = {"branch_mmax": {k: 1.0 / len(opts["mmax"]) for k in opts["mmax"]}}
    run = {"years": list(opts["years"]), "seed": 1, "realisations": opts["realisations"], "quantiles": [0.5, 0.9]}
    if opts.get("table_precision") is not None:  # else the preset's (float32)
        run["table_precision"] = opts["table_precision"]
    cfg = {"model": "psdra-2024",
           "run": run,
           "source": source,
           "exposure": {"buildings": "edb.csv"},
           "compute": {"workers": opts["workers"], "progress": False, "table_store": "tables"}}
    if opts.get("store_kinds") is not None:  # else the default: physical and forecast tables
        cfg["compute"]["table_store_kinds"] = list(opts["store_kinds"])
    if opts["quick"]:
        cfg["ground_motion"] = {"quadrature": "fast", "rupture": "point", "model_dir": opts["model_dir"]}
        cfg["logic_tree"] = {"fix": QUICK_FIX}
    else:
        cfg["ground_motion"] = {"model_dir": opts["model_dir"]}
    (wd / "field.toml").write_text(tomli_w.dumps(cfg))
    stamp.write_text(json.dumps({"params": params, "info": info}, indent=1))
    return info


# ---------------------------------------------------------------------------------------------
# phases (each in a fresh process)
# ---------------------------------------------------------------------------------------------


def phase_read(opts: dict) -> dict:
    """Read the EDB (validated against the FCM's typologies) and zone it from the V6 zonation."""
    import hra
    from hra.chain import make_gmm, zone_source
    from hra.inputs.exposure import read_buildings
    from fragility.groningen import load_fcm

    cfg = hra.load_config(Path(opts["workdir"]) / "field.toml")
    typologies = load_fcm("fcm-tno2020", opts["model_dir"]).typologies
    valid = make_gmm(cfg).zones
    src = zone_source(cfg)
    t0, c0 = time.perf_counter(), time.process_time()
    df = read_buildings(cfg.resolve(cfg.exposure.buildings), known_typologies=list(typologies))
    t1, c1 = time.perf_counter(), time.process_time()
    zone = src.assign(df["x"].to_numpy(float), df["y"].to_numpy(float), valid)
    t2, c2 = time.perf_counter(), time.process_time()
    return {"phase": "read", "buildings": len(df), "zones_found": int(np.unique(zone).size),
            "read_s": round(t1 - t0, 2), "zone_s": round(t2 - t1, 2), "total_s": round(t2 - t0, 2),
            "read_cpu_s": round(c1 - c0, 2), "zone_cpu_s": round(c2 - c1, 2), "cpu_s": round(c2 - c0, 2),
            "peak_mib": round(peak_mib(resource.RUSAGE_SELF), 1)}


def phase_run(opts: dict, kind: str) -> dict:
    """One engine run (``cold``: the table store emptied first; ``warm``: as it is; ``new-forecast``: the
    forecast tables removed first, so that the run reads the physical tables, as one with a new forecast)."""
    import hra
    from hra.integration.engine import compute
    from hra.integration.tablestore import FORECAST_DIR

    wd = Path(opts["workdir"])
    if kind == "cold":
        shutil.rmtree(wd / "tables", ignore_errors=True)
    elif kind == "new-forecast":
        shutil.rmtree(wd / "tables" / FORECAST_DIR, ignore_errors=True)
    cfg = hra.load_config(wd / "field.toml")
    import hra.integration.engine as engine

    box: dict = {}
    prepare = engine.prepare

    def timed_prepare(*args, **kw):  # CPU time of reading the inputs
        c = time.process_time()
        try:
            return prepare(*args, **kw)
        finally:
            box["prepare_cpu_s"] = time.process_time() - c

    engine.prepare = timed_prepare
    cpu0 = time.process_time()
    blocks0 = resource.getrusage(resource.RUSAGE_SELF).ru_inblock
    res = compute(cfg, progress=False)
    cpu = time.process_time() - cpu0
    disk_read = (resource.getrusage(resource.RUSAGE_SELF).ru_inblock - blocks0) * 512  # (512-byte blocks)
    store = sum(f.stat().st_size for f in (wd / "tables").rglob("*") if f.is_file()) if (wd / "tables").is_dir() else 0
    fdir = wd / "tables" / FORECAST_DIR
    fstore = sum(f.stat().st_size for f in fdir.rglob("*") if f.is_file()) if fdir.is_dir() else 0
    prep = res.prep
    tim = dict(res.timings)
    # the table stage's CPU: its zone tasks' thread CPU seconds (the engine's timings); the building pass:
    # the rest after prepare (its chunks' thread time, the engine's buildings_cpu_s, reported as chunks_cpu_s,
    # plus the main thread's share: the static inputs, the chunks' assembly, the results' scatter)
    box["tables_cpu_s"] = tim.pop("tables_cpu_s", float("nan"))
    box["chunks_cpu_s"] = tim.pop("buildings_cpu_s", float("nan"))
    digest = hashlib.sha256(np.ascontiguousarray(res.mean).tobytes() + np.ascontiguousarray(res.quantiles).tobytes())
    return {"phase": kind, "buildings": int(prep.buildings.n), "zones": len({z for z, _ in prep.sites}),
            "sites": len(prep.sites), "cells": int(prep.rates.x.size), "tree": int(prep.tree.n_combinations),
            "basis": int(prep.forecast.n_basis) if getattr(prep, "forecast", None) is not None else None,
            "realisations": int(res.selection.realisations.n), "workers": cfg.compute.n_workers,
            **{k: round(v, 2) for k, v in tim.items()}, "cpu_s": round(cpu, 1),
            "prepare_cpu_s": round(box.get("prepare_cpu_s", float("nan")), 1),
            "tables_cpu_s": round(box.get("tables_cpu_s", float("nan")), 3),
            "chunks_cpu_s": round(box.get("chunks_cpu_s", float("nan")), 3),
            "buildings_cpu_s": round(cpu - box.get("prepare_cpu_s", 0.0) - box.get("tables_cpu_s", 0.0), 1), "peak_mib": round(peak_mib(resource.RUSAGE_SELF), 1),
            "store_gb": round((store - fstore) / 1e9, 4), "forecast_store_gb": round(fstore / 1e9, 4),
            "disk_read_gb": round(disk_read / 1e9, 2),
            "mean_lpr": float(np.mean(res.mean)), "max_lpr": float(np.max(res.mean)),
            "digest": digest.hexdigest()[:16]}


def drop_page_cache(proc_file: str = "/proc/sys/vm/drop_caches") -> str | None:
    """Write the dirty pages out and drop the page cache, dentries and inodes (Linux, root only), so
    that a phase reads the table store from the disk, as a warm run a year after the cold one does (a
    field store is ~58 GB: more than the page cache, but the last-written part of it is still cached
    right after the cold run). ``None`` where done, else why not (the phase runs anyway)."""
    try:
        os.sync()
        with open(proc_file, "w") as fh:
            fh.write("3\n")
    except OSError as exc:
        return f"page cache not dropped ({proc_file}: {exc.strerror or exc}; needs root on Linux)"
    return None


def _phase_case(phase: str, opts: dict) -> dict:
    return phase_read(opts) if phase == "read" else phase_run(opts, phase)


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------


def report(res: dict) -> str:
    o = res["options"]
    out = [f"{o['buildings']:,} buildings in {res['inputs'].get('zones', o['zones'])} zones, years "
           f"{o['years'][0]}-{o['years'][-1]}, {o['realisations']} realisations, {o['workers']} worker(s)"
           f"{' (quick)' if o['quick'] else ''}; forecast {res['inputs'].get('forecast')}"]
    rows = []
    for r in res["phases"]:
        if r["phase"] == "read":
            target = TARGET_READ_S * r["buildings"] / FIELD_BUILDINGS
            rows.append(["read + zone", f"{r['buildings']:,}", r["zones_found"], "-", f"{r['read_s']:.1f} + {r['zone_s']:.1f}",
                         "-", "-", f"{r['total_s']:.1f}", f"{r['cpu_s']:.1f}", f"{r['peak_mib']:.0f}",
                         _ok(r["total_s"] <= TARGET_READ_S and r["peak_mib"] <= TARGET_MIB, r["buildings"])])
        else:
            lim = TARGET_COLD_S if r["phase"] == "cold" else TARGET_WARM_S  # (new-forecast: a warm run too)
            rows.append([r["phase"], f"{r['buildings']:,}", r["zones"], r["sites"], f"{r['prepare_s']:.1f}",
                         f"{r['tables_s']:.1f}", f"{r['buildings_s']:.1f}", f"{r['total_s']:.1f}", f"{r['cpu_s']:.0f}",
                         f"{r['peak_mib']:.0f}", _ok(r["total_s"] <= lim and r["peak_mib"] <= TARGET_MIB, r["buildings"])])
    out.append(table(rows, ["phase", "buildings", "zones", "sites", "prepare s", "tables s", "buildings s", "total s",
                            "CPU s", "peak MiB", "target"]))
    out.append(f"(targets for {FIELD_BUILDINGS:,} buildings x {FIELD_ZONES} zones on 2 cores: read + zone <= "
               f"{TARGET_READ_S:.0f} s, cold <= {TARGET_COLD_S:.0f} s, warm <= {TARGET_WARM_S:.0f} s, peak <= "
               f"{TARGET_MIB:.0f} MiB; 'n/a' = a reduced case, see the extrapolation)")
    by = {r["phase"]: r for r in res["phases"]}
    for later in ("warm", "new-forecast"):
        if "cold" in by and later in by:
            same = by["cold"]["digest"] == by[later]["digest"]
            out.append(f"{later} results identical to cold: {'yes' if same else 'NO'}")
    for r in res["phases"]:
        if r["phase"] != "read":
            out.append(f"after {r['phase']}: table store {r.get('store_gb', 0.0):.1f} GB of physical tables, "
                       f"{r.get('forecast_store_gb', 0.0):.1f} GB of forecast tables; {r.get('disk_read_gb', 0.0):.1f} GB "
                       "read from disk by the run")
    if "cold" in by and "warm" in by:
        if not by["cold"].get("store_gb") and not by["cold"].get("forecast_store_gb"):
            out.append("the table store stayed empty (its tables would not fit on the disk: see the run's warning): "
                       "the warm run computed them again; give --workdir on a larger disk")
    cold, warm = by.get("cold"), by.get("warm")
    base = cold or warm
    if base and (base["zones"] < FIELD_ZONES or base["buildings"] < FIELD_BUILDINGS):
        fz = FIELD_ZONES / max(base["zones"], 1)
        fb = FIELD_BUILDINGS / max(base["buildings"], 1)
        out.append(f"\nextrapolation to {FIELD_BUILDINGS:,} buildings x {FIELD_ZONES} zones (x {fz:.1f} zones, x {fb:.1f} "
                   f"buildings; same worker count, same machine load): the table stage's CPU seconds grow with the zones, "
                   f"the building pass's with the buildings")
        for name, r, lim in (("cold", cold, TARGET_COLD_S), ("warm", warm, TARGET_WARM_S)):
            if not r or r.get("tables_cpu_s") is None or r.get("buildings_cpu_s") is None:
                continue
            tc, bc, pc = r["tables_cpu_s"], r["buildings_cpu_s"], r["prepare_cpu_s"]
            est = pc + (tc * fz + bc * fb) / 2
            out.append(f"  {name} from CPU seconds (the load of a shared machine left out; 2 cores busy after prepare): "
                       f"prepare {pc:.0f} + tables {tc:.0f} x {fz:.1f} / 2 + buildings {bc:.0f} x {fb:.1f} / 2 = {est:.0f} s "
                       f"({est / 60:.1f} min; target {lim / 60:.0f} min)")
            # from wall seconds: the wall time after prepare (tables and buildings, group after group) grows as
            # the CPU seconds of both stages together
            pipe = r["total_s"] - r["prepare_s"]
            grow = (tc * fz + bc * fb) / max(tc + bc, 1e-9)
            w = r["prepare_s"] + pipe * grow
            out.append(f"  {name} from wall seconds (after prepare x the growth of the CPU seconds): {r['prepare_s']:.0f} + "
                       f"{pipe:.0f} x {grow:.1f} = {w:.0f} s ({w / 60:.1f} min; the 2 cores {100 * (tc + bc) / (2 * pipe):.0f} % "
                       f"busy after prepare)")
        if warm and warm.get("store_gb"):
            out.append(f"  table store {warm['store_gb']:.1f} GB on disk -> ~{warm['store_gb'] * fz:.0f} GB for the field, "
                       f"which no page cache holds: a warm field run reads all of it from disk (this warm run read "
                       f"{warm.get('disk_read_gb', 0.0):.1f} GB from disk)")
    return "\n".join(out)


def _ok(ok: bool, n: int) -> str:
    if n < FIELD_BUILDINGS:
        return "n/a"
    return "yes" if ok else "no"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--buildings", type=int, default=None, help=f"buildings (default {FIELD_BUILDINGS:,})")
    ap.add_argument("--zones", type=int, default=None,
                    help="only the first K zones (ascending ID_V6): the buildings and the zones (default: all 160)")
    ap.add_argument("--workers", type=int, default=2, help="threads of the engine (default 2)")
    ap.add_argument("--phases", default="read,cold,warm",
                    help="comma-separated: read, cold, warm, new-forecast (warm with the forecast tables removed first: "
                    "the physical tables read, as by a run with a new forecast)")
    ap.add_argument("--workdir", type=Path, default=None, help="where the inputs and the table store go (default: a new temp dir)")
    ap.add_argument("--years", default="2025-2031", help='"2025-2031" or "2025,2026"')
    ap.add_argument("--realisations", type=int, default=1000)
    ap.add_argument("--cell-m", type=float, default=500.0, help="forecast cell size [m] (default 500, the SSM's grid)")
    ap.add_argument("--field-outline", default=None,
                    help="CSV of x, y vertices [m, RD New] of the field (default: the SSM's Groningen_field_outline.csv "
                         "beside the model tables if there, else the demo's field outline)")
    ap.add_argument("--magnitude-step", type=float, default=0.05, choices=(0.05, 0.1),
                    help="the forecast's magnitude grid from 1.45 to 6.55: 0.05 (103 points, the SSM's default; "
                    "default here) or 0.1 (52 points, as the PSDRA-2024 forecasts): the table stage scales with it")
    ap.add_argument("--magnitude-table-stride", type=int, default=None, choices=(1, 2),
                    help="[source] magnitude_table_stride of the run (default: the psdra-2024 preset's, 2): 2 computes "
                    "the tables at every other magnitude node and interpolates the others (hra.integration.magnitudes), "
                    "1 at every node")
    ap.add_argument("--table-precision", default=None, choices=("float64", "float32"),
                    help="[run] table_precision of the run (default: the psdra-2024 preset's, float32): the precision of "
                    "the building pass's per-combination tables")
    ap.add_argument("--magnitude-subdivisions", type=int, default=1, choices=(1, 2),
                    help="[source] magnitude_subdivisions of the run: 2 splits each bin of the forecast's grid at its "
                    "midpoint by its in-bin law (with --magnitude-step 0.1 and --magnitude-table-stride 2: the tables "
                    "at the 0.1 nodes, the accuracy of the 0.05 grid)")
    ap.add_argument("--store-kinds", default=None,
                    help='[compute] table_store_kinds of the run, comma-separated (default: "physical,forecast"): what '
                    'the table store holds; "forecast" alone keeps only the forecast tables (~0.3x the physical tables\' size)')
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--forecast-shape", choices=("scaled", "shifting"), default="scaled",
                    help="scaled: each branch's map scaled per year (default); shifting: the lobes decline at "
                         "their own rates (the map changes shape: 3 time components per branch)")
    ap.add_argument("--quick", action="store_true",
                    help="small everything (300 buildings, 1 zone, 1 year, 50 realisations, 2 km cells, one Mmax, fast "
                         "quadrature): a check that the script runs")
    ap.add_argument("--model-dir", default=None, help="model tables (default: $HRA_MODEL_DIR)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    ap.add_argument("--drop-caches", action="store_true",
                    help="drop the page cache before the cold and warm phases (Linux, root), so that the warm run "
                         "reads its whole table store from disk whatever the cold run left cached")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)

    if a.case:  # child process: one phase, JSON on the last stdout line
        phase, opts = json.loads(a.case)
        print(json.dumps(_phase_case(phase, opts)))
        return 0

    from hra.api import demo_model_dir
    from hra.config import PSDRA_2024_FORECAST_WEIGHTS

    model_dir = str(demo_model_dir("groningen-v7", a.model_dir))  # fails early, naming HRA_MODEL_DIR
    years = []
    for part in a.years.split(","):
        lo, _, hi = part.partition("-")
        years.extend(range(int(lo), int(hi or lo) + 1))
    q = QUICK if a.quick else {}
    opts = {
        "buildings": a.buildings or q.get("buildings", FIELD_BUILDINGS),
        "zones": a.zones if a.zones is not None else q.get("zones"),
        "years": q.get("years", years), "realisations": q.get("realisations", a.realisations),
        "cell_m": q.get("cell_m", a.cell_m), "mmax": q.get("mmax", list(PSDRA_2024_FORECAST_WEIGHTS["branch_mmax"])),
        "magnitude_step": q.get("magnitude_step", a.magnitude_step), "magnitude_table_stride": a.magnitude_table_stride,
        "magnitude_subdivisions": a.magnitude_subdivisions, "table_precision": a.table_precision,
        "store_kinds": None if a.store_kinds is None else [k.strip() for k in a.store_kinds.split(",") if k.strip()],
        "seed": a.seed, "forecast_shape": a.forecast_shape, "quick": bool(a.quick), "workers": a.workers, "model_dir": model_dir,
        "field_outline": str(Path(a.field_outline).resolve()) if a.field_outline else default_outline(model_dir),
        "workdir": str((a.workdir or Path(tempfile.mkdtemp(prefix="hra-field-"))).resolve()),
    }
    phases = [p.strip() for p in a.phases.split(",") if p.strip()]
    bad = [p for p in phases if p not in ("read", "cold", "warm", "new-forecast")]
    if bad:
        ap.error(f"--phases: unknown {bad}; use read, cold, warm, new-forecast")
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.platform()}; work dir {opts['workdir']}",
          flush=True)
    box = machine()
    print(f"machine: {box['cpu']} ({box['isa']}, LLVM target {box['llvm_cpu']}); one core: float64 matrix product "
          f"{box['dgemm_gflops_1thread']} GFLOP/s, sum over 100 MB {box['sum_gb_per_s']} GB/s", flush=True)
    t = time.perf_counter()
    info = write_inputs(opts)
    print(f"inputs ready in {time.perf_counter() - t:.1f} s: {info}", flush=True)
    results = []
    for p in phases:
        print(f"phase {p} ...", flush=True)
        dropped = None
        if a.drop_caches and p != "read":
            why = drop_page_cache()
            dropped = why is None
            if why:
                print(f"  {why}", flush=True)
        r = spawn_case(__file__, [p, opts], p)
        if dropped is not None:
            r["page_cache_dropped"] = dropped
        print(f"  {r}", flush=True)
        results.append(r)
    return finish({"options": opts, "machine": box, "inputs": info, "phases": results}, report, a.json)


if __name__ == "__main__":
    sys.exit(main())
