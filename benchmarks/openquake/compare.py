"""Side-by-side check against OpenQuake: hazard curves, collapse rates, event-based rates, wall times.

Runs in the project venv; OpenQuake runs as a subprocess in its own venv (``--oq-venv``, default
/tmp/oq-venv, built by the recipe of docs/openquake.md §1). Steps, for each size:

1. :mod:`benchmarks.openquake.export` writes the shared problem (our config and the OpenQuake
   inputs from it, never hand-edited);
2. **GSIM check**: inside OpenQuake's venv, our plug-in ``GroningenHraDost2004``
   (:mod:`hra.openquake`) and OpenQuake's built-in ``DostEtAl2004BommerAdaptation`` against our
   :mod:`hra.gmm.dost2004` on a table of (M, R) (medians, sigma, tau, phi);
3. **classical**: OpenQuake ``classical_damage`` (investigation and risk time 1 yr, assets at their
   own sites) against our integration engine: mean hazard curves (annual PoE, mean over the
   source-model branches of 1 - exp(-rate)) per site where OpenQuake's PoE > 1e-6, and per
   building the annual collapse probability P(CS >= CS1) (OpenQuake: sum of the CS1..CS3
   probabilities over the building's assets; ours: the engine run with death probability 1 in
   every collapse state, per realisation, 1 - exp(-rate), weighted mean). Target: 2 %;
4. **event-based**: OpenQuake ``event_based_damage`` (fixed ``ses_seed``, ``--ses`` years per
   realisation, no within-event correlation) against our :mod:`hra.eventbased.risk` (the same number of
   simulated years; our within-event correlation does not change per-building rates), per building
   collapse rate: z = (ours - OQ) / (sqrt(2) SE_ours) (the two estimators have the same
   variance), fraction |z| > 2.58 (1 % expected), and both against our classical rates;
5. wall times of both engines and their ratio (ours / OpenQuake; < 1 means we are faster).

Usage::

    python benchmarks/openquake/compare.py --sizes 1000 --out /tmp/oq-peer
    python benchmarks/openquake/compare.py --sizes 1000,20000 --skip-classical-above 5000

Never part of the test run. Timings depend on the machine load (the shared 2-core machine of this
project: say so when you report them).

The GMM-V7 GSIM (``GroningenHraV7Reference``, reference horizon) is checked by the sibling script
:mod:`benchmarks.openquake.v7_gsim`, which runs in OpenQuake's venv (it needs the public model
tables, ``$HRA_MODEL_DIR``): a hazardlib table of medians and sigmas, and an OpenQuake classical
calculation with the plug-in whose hazard curves are compared with ours.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import finish, run_oq, show  # noqa: E402
from benchmarks.openquake.export import export, prepare_peer  # noqa: E402

GSIM_CHECK = r"""
import json, numpy as np, warnings
warnings.simplefilter("ignore")
from openquake.hazardlib.contexts import simple_cmaker
from openquake.hazardlib.gsim.base import registry
import hra.openquake as hoq
from hra.gmm.dost2004 import dost_ln_median, COEFFICIENTS, LN10
from hra.gmm.demo import demo_reference_ln_median, imt_offset
M = np.array([1.5, 2.5, 3.5, 4.5, 5.5, 6.5]); R = np.array([3.0, 4.0, 7.0, 15.0, 40.0, 100.0])
out = {}
for name, gsim, imts in (("plugin", hoq.GroningenHraDost2004(), ["PGA", "PGV"]),
                         ("builtin", registry["DostEtAl2004BommerAdaptation"](), ["PGA", "PGV"]),
                         ("demo_plugin", hoq.GroningenHraDemo(), ["PGA", "AvgSA"])):
    cm = simple_cmaker([gsim], imts, mags=["%.2f" % m for m in M])
    ctx = cm.new_ctx(M.size * R.size)
    mm, rr = np.meshgrid(M, R, indexing="ij")
    ctx.mag = mm.ravel(); ctx.rhypo = rr.ravel(); ctx.rrup = rr.ravel()
    res = cm.get_mean_stds([ctx])[:, 0]
    d = {}
    for i, imt in enumerate(imts):
        if name == "demo_plugin":
            ours = np.array([demo_reference_ln_median([a], [b], imt_offset("AvgSa" if imt == "AvgSA" else imt))[0, 0] for a, b in zip(mm.ravel(), rr.ravel())])
            d[imt] = dict(max_abs_diff_ln_median=float(np.abs(res[0, i] - ours).max()))
        else:
            c = COEFFICIENTS[imt]
            d[imt] = dict(max_abs_diff_ln_median=float(np.abs(res[0, i] - dost_ln_median(imt, mm.ravel(), rr.ravel())).max()),
                          max_abs_diff_sigma=float(np.abs(res[1, i] - c.sigma * LN10).max()),
                          max_abs_diff_tau=float(np.abs(res[2, i] - c.tau * LN10).max()),
                          max_abs_diff_phi=float(np.abs(res[3, i] - c.phi * LN10).max()))
    out[name] = d
print("JSON" + json.dumps(out))
"""


def oq_env(oq_venv: Path, data: Path) -> dict:
    env = dict(os.environ)
    env.update(CI="true", OQ_DATADIR=str(data), VIRTUAL_ENV=str(oq_venv), OQ_NUM_CORES=env.get("OQ_NUM_CORES", "2"),
               PATH=f"{oq_venv}/bin:" + env.get("PATH", ""), OQ_IMPORT_PATH="hra.openquake.gsim", PYTHONWARNINGS="ignore")
    env.pop("PYTHONPATH", None)
    return env


def _read_oq_csv(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, skiprows=1)


def _one(export_dir: Path, pattern: str) -> Path:
    files = sorted(export_dir.glob(pattern))
    if not files:
        raise FileNotFoundError(f"no {pattern} in {export_dir}: {[p.name for p in export_dir.iterdir()]}")
    return files[-1]


#: OpenQuake 3.26 turns a scalar ``maximum_distance`` into [(2.5, d), (10.2, d)] interpolated with
#: fill value 0 (hazardlib/calc/filters.py: MINMAG = 2.5): ruptures below M 2.5 are dropped.
OQ_MIN_MAG = 2.5


def drop_below(mag, m_cut: float):
    """A copy of MagnitudeBins without the probability of the bins below ``m_cut`` (not renormalised)."""
    from dataclasses import replace

    prob = mag.prob.copy()
    prob[..., mag.nodes[1:] <= m_cut + 1e-9] = 0.0
    return replace(mag, prob=prob)


def our_hazard_poe(prep, x: np.ndarray, y: np.ndarray, levels: np.ndarray, m_cut: float | None = None) -> np.ndarray:
    """Mean over the source-model branches of the annual PoE, 1 - exp(-rate), at sites (x, y);
    ``m_cut``: leave out magnitudes below it (as OpenQuake does below M 2.5)."""
    from hra.integration import kernels
    from hra.core.logictree import LogicTree

    src = prep.cfg.source
    gmm = prep.gmm
    mag = prep.magnitude if m_cut is None else drop_below(prep.magnitude, m_cut)
    r = prep.distance_nodes_km
    mix = gmm.ln_im_mixture("PGA", mag.nodes, r, None, {})
    exc = np.empty((levels.size, mag.n_nodes, r.size))
    kernels.lognormal_expectation(np.ascontiguousarray(mix.mean), np.ascontiguousarray(mix.sd), np.ascontiguousarray(mix.weight),
                                  np.log(levels), np.zeros(levels.size), exc)
    tab = mag.integrate(np.moveaxis(exc, 1, -1))  # (b, x, level, r)
    real = LogicTree((prep.rates.node, prep.b_node, prep.m_max_node)).enumerate()
    rates = np.ascontiguousarray(prep.rates.rate[:, :1, :].reshape(prep.rates.rate.shape[0], -1))
    S = rates.shape[1]
    hist = np.empty((r.size, S))
    ln_r0, dln = float(np.log(r[0])), float(np.log(r[1] / r[0]))
    out = np.empty((x.size, levels.size))
    for i in range(x.size):
        hist[:] = 0.0
        kernels.distance_histogram(float(x[i]), float(y[i]), prep.rates.x, prep.rates.y, rates, src.depth_km, ln_r0, dln,
                                   r.size, src.max_distance_km, src.cell_size_m, 0.0, 1, hist)
        lam = np.einsum("rs,bxlr->sbxl", hist, tab).reshape(-1, levels.size)
        out[i] = real.weight @ (-np.expm1(-lam))
    return out


def collapse_config(cfg):
    """The peer config with death probability 1 in every collapse state (LPR = P(CS >= CS1) rate)."""
    d = Path(cfg.base_dir)
    fr = pd.read_csv(d / "fragility.csv").assign(p_death=1.0, p_death_outside=1.0)
    fr.to_csv(d / "fragility_collapse.csv", index=False)
    return cfg.with_updates(fragility={"curves": str(d / "fragility_collapse.csv")})


def building_sums(df: pd.DataFrame, cols) -> pd.DataFrame:
    """Sum asset rows ``building~j`` per building."""
    b = df["asset_id"].astype(str).str.split("~").str[0]
    return df.assign(building=b).groupby("building")[cols].sum()


def compare_size(n: int, out: Path, oq_venv: Path, ses: int, classical: bool, event_based: bool, workers: int,
                 reuse: bool = False) -> dict:
    from hra.integration.engine import compute
    from hra.eventbased.risk import EventRiskOptions, compute_event_based
    from hra.eventbased import kernels as ek

    d = out / f"n{n}"
    res: dict = {"buildings": n}
    cfg, prep, exp = export(d, n, ses_per_path=ses)
    res["assets"] = int(len(exp.assets))
    env = oq_env(oq_venv, out / "oqdata")
    (out / "oqdata").mkdir(parents=True, exist_ok=True)
    ccfg = collapse_config(cfg).with_updates(compute={"workers": workers, "scheduler": "local" if workers > 1 else "synchronous"})
    cprep = prepare_peer(ccfg)
    ids = np.asarray(cprep.buildings.ids, dtype=str)
    # -- ours: classical (integration) --------------------------------------------------------------
    t0 = time.perf_counter()
    cprep_t = prepare_peer(ccfg)
    r_int = compute(ccfg, prep=cprep_t)
    res["ours_classical_s"] = time.perf_counter() - t0
    lam_u = r_int.realisations[:, 0, :]
    ours_cd = np.sum(r_int.realisation_weight * -np.expm1(-lam_u), axis=1)
    if classical:
        t_oq = run_oq(exp.directory / "job_classical_damage.ini", d / "oq_cd", env, d / "oq_cd.log", reuse)
        res["oq_classical_s"] = t_oq
        res["ratio_classical"] = res["ours_classical_s"] / t_oq
        # hazard curves; sites are mapped to buildings through the assets (same rounded lon/lat)
        dm = _read_oq_csv(_one(d / "oq_cd", "damages-mean*.csv"))
        hc = _read_oq_csv(_one(d / "oq_cd", "hazard_curve-mean-PGA*.csv"))
        poe_cols = [c for c in hc.columns if c.startswith("poe-")]
        levels = np.array([float(c[4:]) for c in poe_cols])
        oq_poe = hc[poe_cols].to_numpy()
        where = {(round(lo, 5), round(la, 5)): str(a).split("~")[0] for a, lo, la in zip(dm["asset_id"], dm["lon"], dm["lat"])}
        pos = {b: i for i, b in enumerate(ids)}
        idx = np.array([pos[where[(round(lo, 5), round(la, 5))]] for lo, la in zip(hc["lon"], hc["lat"])])
        mask = oq_poe > 1e-6
        for tag, cut in (("all_magnitudes", None), ("m_ge_2.5", OQ_MIN_MAG)):
            ours_poe = our_hazard_poe(cprep, cprep.buildings.x[idx], cprep.buildings.y[idx], levels, m_cut=cut)
            rel = np.abs(ours_poe[mask] / oq_poe[mask] - 1.0)
            res[f"hazard_{tag}_rel_diff_max"] = float(rel.max())
            res[f"hazard_{tag}_rel_diff_p99"] = float(np.quantile(rel, 0.99))
            res[f"hazard_{tag}_rel_diff_median"] = float(np.median(rel))
            res[f"hazard_{tag}_frac_within_2pct"] = float(np.mean(rel <= 0.02))
        res["hazard_sites"] = int(len(hc))
        res["hazard_levels_compared"] = int(mask.sum())
        # collapse probabilities
        states = [c for c in dm.columns if c.split("-")[-1] in ("CS1", "CS2", "CS3")]
        dm["collapse"] = dm[states].sum(axis=1)
        oq_cd = building_sums(dm, ["collapse"])["collapse"].reindex(ids).to_numpy()
        rel_c = np.abs(ours_cd / oq_cd - 1.0)
        res["classical_collapse_rel_diff_max"] = float(np.nanmax(rel_c))
        res["classical_collapse_rel_diff_median"] = float(np.nanmedian(rel_c))
        res["classical_collapse_frac_within_2pct"] = float(np.nanmean(rel_c <= 0.02))
        res["classical_collapse_portfolio_ratio"] = float(ours_cd.sum() / np.nansum(oq_cd))
        res["oq_classical_damage_columns"] = states
    if event_based:
        t0 = time.perf_counter()
        eprep = prepare_peer(ccfg)
        r_eb = compute_event_based(ccfg, EventRiskOptions(n_years_simulated=2 * ses, realisations="all", location="centre",
                                                          bootstrap=0, keep_event_table=False), prep=eprep, progress=False)
        res["ours_event_based_s"] = time.perf_counter() - t0
        res["ours_events"] = int(r_eb.events.n_events)
        ours_eb = r_eb.collapse_rate[:, 0]
        se = np.sqrt(r_eb.acc[:, 0, ek.S_CS1SQ])
        t_oq = run_oq(exp.directory / "job_event_based_damage.ini", d / "oq_ebd", env, d / "oq_ebd.log", reuse)
        res["oq_event_based_s"] = t_oq
        res["ratio_event_based"] = res["ours_event_based_s"] / t_oq
        ar_path = next(iter(sorted((d / "oq_ebd").glob("avg_risk-mean*.csv"))), None) or _one(d / "oq_ebd", "avg_risk*.csv")
        ar = _read_oq_csv(ar_path)
        col = [c for c in ar.columns if c.endswith("collapsed")][0]
        oq_eb = building_sums(ar, [col])[col].reindex(ids).fillna(0.0).to_numpy()
        z = (ours_eb - oq_eb) / (math.sqrt(2.0) * np.where(se > 0, se, np.nan))
        res["eb_z_frac_above_2.58"] = float(np.nanmean(np.abs(z) > 2.576))
        res["eb_z_mean"] = float(np.nanmean(z))
        res["eb_portfolio_ratio_ours_over_oq"] = float(ours_eb.sum() / oq_eb.sum())
        res["eb_ours_over_classical_portfolio"] = float(ours_eb.sum() / (-np.log1p(-ours_cd)).sum())
        res["eb_oq_over_classical_portfolio"] = float(oq_eb.sum() / (-np.log1p(-ours_cd)).sum())
        res["eb_median_rel_se_ours"] = float(np.nanmedian(se / ours_eb))
    return res


def gsim_check(oq_venv: Path, data: Path) -> dict:
    env = oq_env(oq_venv, data)
    p = subprocess.run([str(oq_venv / "bin" / "python"), "-c", GSIM_CHECK], env=env, capture_output=True, text=True, check=True)
    line = [ln for ln in p.stdout.splitlines() if ln.startswith("JSON")][-1]
    return json.loads(line[4:])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1000")
    ap.add_argument("--out", type=Path, default=Path("/tmp/oq-peer"))
    ap.add_argument("--oq-venv", type=Path, default=Path("/tmp/oq-venv"))
    ap.add_argument("--ses", type=int, default=10_000, help="simulated years per realisation (both engines)")
    ap.add_argument("--skip-classical-above", type=int, default=10**9)
    ap.add_argument("--no-event-based", action="store_true")
    ap.add_argument("--workers", type=int, default=1, help="dask workers of our engine")
    ap.add_argument("--reuse", action="store_true", help="reuse OpenQuake outputs (and wall times) of an earlier run")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    report = {"gsim_check": show(gsim_check(a.oq_venv, a.out / "oqdata")), "sizes": []}
    for n in [int(s) for s in a.sizes.split(",")]:
        report["sizes"].append(show(compare_size(n, a.out, a.oq_venv, a.ses, n <= a.skip_classical_above,
                                                 not a.no_event_based, a.workers, a.reuse)))
    return finish(report, None, a.json)


if __name__ == "__main__":
    raise SystemExit(main())
