"""GMM-V7 as an OpenQuake GSIM: our medians and sigmas reproduced from inside OpenQuake.

A sibling of :mod:`benchmarks.openquake.compare` for ``GroningenHraV7Reference``
(:mod:`hra.openquake`, the NS_B reference-horizon part of GMM-V7). **Runs in OpenQuake's venv**
with this project installed (``pip install --no-deps -e .``) and the public model tables in
``$HRA_MODEL_DIR``::

    HRA_MODEL_DIR=.../convert/res /tmp/oq-venv/bin/python benchmarks/openquake/v7_gsim.py --out /tmp/oq-v7

Three checks, each against :class:`hra.gmm.groningen_v7.GroningenV7` (our code, called directly):

1. **hazardlib table**: the GSIM through hazardlib's ``ContextMaker.get_mean_stds`` on a grid of
   (M, R_rup) x (PGA, SA(T) at tabulated and interpolated periods) x branch sets, both components:
   max |difference| of the ln median, sigma, tau and phi;
2. **OpenQuake classical calculation** (``oq engine --run``, the plug-in loaded through
   ``OQ_IMPORT_PATH=hra.openquake.gsim``, spawned workers): one point source (``PointMSR``: a point-like
   rupture; magnitudes 3, 4, 5, 6 with rates 0.1 ... 1e-4 /yr; vertical; hypocentre 3 km) and sites
   at 0 ... 40 km; the exported mean hazard curves against ours,
   ``PoE(x) = 1 - exp(-sum_rup rate P(ln Y > ln x))`` with ln Y ~ N(median, sigma) of GroningenV7
   at the same (M, R_rup) (R_rup from hazardlib's ContextMaker for the same source and sites,
   so both sides use identical distances): relative difference where PoE > 1e-8 (OpenQuake keeps
   probabilities in float32, which limits the agreement to a few 1e-4);
3. the same curves with ``component = "arbitrary"`` (sigma including the c2c variance).

Prints one JSON report (``--json`` also writes it). Never part of the test run.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._common import finish, run_oq, show  # noqa: E402

MAGS = (3.0, 4.0, 5.0, 6.0)
RATES = (0.1, 0.01, 1e-3, 1e-4)
EPI_KM = (0.0, 2.0, 4.0, 6.0, 10.0, 15.0, 25.0, 40.0)
DEPTH_KM = 3.0
IMTS = ("PGA", "SA(0.1)", "SA(0.25)", "SA(0.5)", "SA(0.85)", "SA(1.0)")
LEVELS = np.geomspace(1e-5, 3.0, 45)
LON0, LAT0 = 6.75, 53.3
BRANCHES = ({"gmm_median": 2, "gmm_tau": 2, "gmm_phi_ss": 1}, {"gmm_median": 0, "gmm_tau": 0, "gmm_phi_ss": 0})


def _period(imt: str) -> float:
    return 0.01 if imt == "PGA" else float(imt[3:-1])


def site_lonlat():
    from hra.openquake.export import OQ_EARTH_RADIUS_KM, aeqd_inverse

    d = np.asarray(EPI_KM) * 1000.0
    return aeqd_inverse(d * math.sin(0.3), d * math.cos(0.3), LON0, LAT0, OQ_EARTH_RADIUS_KM * 1000.0)


def write_job(d: Path, gsim: str) -> Path:
    from hra.openquake.export import NRML_NS_SOURCES, _nrml, gsim_logic_tree_xml, job_file, source_model_logic_tree_xml

    d.mkdir(parents=True, exist_ok=True)
    lon, lat = site_lonlat()
    (d / "sites.csv").write_text("".join(f"{a:.10f},{b:.10f}\n" for a, b in zip(lon, lat)))
    mfd = (f'<arbitraryMFD><occurRates>{" ".join(f"{r:g}" for r in RATES)}</occurRates>'
           f'<magnitudes>{" ".join(f"{m:g}" for m in MAGS)}</magnitudes></arbitraryMFD>')
    src = ('<sourceModel name="v7 check">\n<pointSource id="p1" name="point" tectonicRegion="Induced">'
           f"<pointGeometry><gml:Point><gml:pos>{LON0:.8f} {LAT0:.8f}</gml:pos></gml:Point>"
           "<upperSeismoDepth>0</upperSeismoDepth><lowerSeismoDepth>20</lowerSeismoDepth></pointGeometry>"
           f"<magScaleRel>PointMSR</magScaleRel><ruptAspectRatio>1.0</ruptAspectRatio>{mfd}"
           '<nodalPlaneDist><nodalPlane probability="1.0" strike="0.0" dip="90.0" rake="0.0"/></nodalPlaneDist>'
           f'<hypoDepthDist><hypoDepth probability="1.0" depth="{DEPTH_KM:g}"/></hypoDepthDist></pointSource>\n'
           "</sourceModel>\n")
    (d / "source_model.xml").write_text(_nrml(src, NRML_NS_SOURCES))
    (d / "source_model_logic_tree.xml").write_text(source_model_logic_tree_xml([("b1", "source_model.xml", 1.0)]))
    (d / "gsim_logic_tree.xml").write_text(gsim_logic_tree_xml(gsim))
    (d / "job.ini").write_text(job_file(
        "GroningenHraV7Reference inside an OpenQuake classical calculation", "classical", {i: LEVELS for i in IMTS},
        random_seed=1, location=("sites_csv = sites.csv",), mfd_bin_width=0.1, rupture_mesh_spacing=1.0,
        level_format=".8g", extra=("[outputs]", "mean = true", "")))
    return d / "job.ini"


def run_engine(job: Path, out: Path, data: Path) -> float:
    env = dict(os.environ)
    env.update(CI="true", OQ_DATADIR=str(data), OQ_IMPORT_PATH="hra.openquake.gsim", PYTHONWARNINGS="ignore",
               OQ_NUM_CORES=env.get("OQ_NUM_CORES", "2"))
    data.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    return run_oq(job, out, env, out / "oq.log", oq=str(Path(sys.executable).with_name("oq")))


def our_poe(gmm, branch, arbitrary, mag, rrup, rate, levels, imt):
    from scipy.special import ndtr

    t = _period(imt)
    mu = gmm.ln_median_sa_g(t, mag, rrup, branch)
    sc = gmm.sigma_components(t, mag, rrup, branch)
    sig = sc["sigma_arbitrary"] if arbitrary else sc["sigma_gm"]
    p = ndtr((mu[:, None] - np.log(levels)[None, :]) / sig[:, None])
    return p, rate


def hazardlib_ctx(d: Path, gsim):
    """Rupture contexts of the job's point source at its sites, built by hazardlib's ContextMaker."""
    from openquake.hazardlib import nrml, sourceconverter, valid
    from openquake.hazardlib.contexts import ContextMaker
    from openquake.hazardlib.geo.point import Point
    from openquake.hazardlib.site import Site, SiteCollection

    conv = sourceconverter.SourceConverter(investigation_time=1.0, rupture_mesh_spacing=1.0, width_of_mfd_bin=0.1,
                                           area_source_discretization=10.0)
    [grp] = nrml.to_python(str(d / "source_model.xml"), conv).src_groups
    lon, lat = site_lonlat()
    sites = SiteCollection([Site(Point(a, b), vs30=760.0, z1pt0=100.0, z2pt5=5.0) for a, b in zip(lon, lat)])
    imtls = {i: LEVELS for i in IMTS}
    cm = ContextMaker("Induced", [gsim], dict(imtls=imtls, truncation_level=99.0, investigation_time=1.0,
                                              maximum_distance=valid.IntegrationDistance.new("200")))
    ctx = cm.from_srcs(grp.sources, sites)  # one recarray (rupture x site rows) in OpenQuake 3.26
    if isinstance(ctx, list):
        ctx = np.concatenate(ctx).view(np.recarray)
    return (np.asarray(ctx.mag, float), np.asarray(ctx.rrup, float), np.asarray(ctx.occurrence_rate, float),
            np.asarray(ctx.sids, np.int64))


def table_check(gmm) -> dict:
    from openquake.hazardlib.contexts import simple_cmaker

    import hra.openquake as hoq

    M = np.array([2.5, 3.5, 4.5, 4.75, 5.5, 6.5])
    R = np.array([0.5, 3.0, 5.0, 7.0, 12.0, 25.0, 40.0, 80.0])
    imts = ["PGA", "SA(0.01)", "SA(0.1)", "SA(0.15)", "SA(0.3)", "SA(0.45)", "SA(0.7)", "SA(0.85)", "SA(0.95)", "SA(1.0)"]
    worst = {k: 0.0 for k in ("ln_median", "sigma", "tau", "phi")}
    n = 0
    for br in ({"gmm_median": m, "gmm_tau": t, "gmm_phi_ss": p} for m in range(4) for t in range(3) for p in range(2)):
        for comp in ("geometric_mean", "arbitrary"):
            gsim = hoq.GroningenHraV7Reference(component=comp, **br)
            cm = simple_cmaker([gsim], imts, mags=[f"{m:.2f}" for m in M])
            ctx = cm.new_ctx(M.size * R.size)
            mm, rr = np.meshgrid(M, R, indexing="ij")
            ctx.mag = mm.ravel()
            ctx.rrup = rr.ravel()
            res = cm.get_mean_stds([ctx])[:, 0]
            for i, imt in enumerate(imts):
                t = _period(imt)
                sc = gmm.sigma_components(t, mm.ravel(), rr.ravel(), br)
                ours = {"ln_median": gmm.ln_median_sa_g(t, mm.ravel(), rr.ravel(), br),
                        "sigma": sc["sigma_arbitrary"] if comp == "arbitrary" else sc["sigma_gm"], "tau": sc["tau"],
                        "phi": np.hypot(sc["phi_ss"], sc["sigma_c2c"]) if comp == "arbitrary" else sc["phi_ss"]}
                for j, k in enumerate(("ln_median", "sigma", "tau", "phi")):
                    worst[k] = max(worst[k], float(np.abs(res[j, i] - ours[k]).max()))
                n += mm.size
    return {"points": n, **{f"max_abs_diff_{k}": v for k, v in worst.items()}}


def engine_check(out: Path, data: Path, gmm, branch: dict, component: str) -> dict:
    import pandas as pd

    import hra.openquake as hoq

    gsim_text = "[GroningenHraV7Reference]\n" + "".join(f"{k} = {v}\n" for k, v in branch.items()) + f'component = "{component}"'
    tag = "_".join(str(v) for v in branch.values()) + f"_{component}"
    d = out / f"job_{tag}"
    job = write_job(d, gsim_text)
    wall = run_engine(job, d / "export", data)
    gsim = hoq.GroningenHraV7Reference(component=component, **branch)
    mag, rrup, rate, sid = hazardlib_ctx(d, gsim)
    res = {"branch": branch, "component": component, "oq_wall_s": round(wall, 2), "ruptures_x_sites": int(mag.size),
           "rrup_km_range": [float(rrup.min()), float(rrup.max())]}
    worst = 0.0
    n_cmp = 0
    smallest = 1.0
    all_rel = []
    for imt in IMTS:
        f = sorted((d / "export").glob(f"hazard_curve-mean-{imt}*.csv"))
        if not f:
            raise FileNotFoundError(f"no hazard curve for {imt} in {d / 'export'}")
        hc = pd.read_csv(f[-1], skiprows=1)
        poe_cols = [c for c in hc.columns if c.startswith("poe-")]
        lon, lat = site_lonlat()
        order = [int(np.argmin((hc["lon"] - a) ** 2 + (hc["lat"] - b) ** 2)) for a, b in zip(lon, lat)]
        oq_poe = hc[poe_cols].to_numpy()[order]
        p, _ = our_poe(gmm, branch, component == "arbitrary", mag, rrup, rate, LEVELS, imt)
        lam = np.zeros((len(EPI_KM), LEVELS.size))
        np.add.at(lam, sid, rate[:, None] * p)
        ours = -np.expm1(-lam)
        m = oq_poe > 1e-8
        rel = np.abs(ours[m] / oq_poe[m] - 1.0)
        worst = max(worst, float(rel.max()))
        all_rel.append(rel)
        n_cmp += int(m.sum())
        smallest = min(smallest, float(oq_poe[m].min()))
    # OpenQuake accumulates probabilities of no exceedance in float32 (hazardlib/map_array.py), which
    # limits the agreement to a few 1e-4 where many small rupture PoEs add up
    res.update({"poe_values_compared": n_cmp, "smallest_poe_compared": smallest, "max_rel_diff_poe": worst,
                "median_rel_diff_poe": float(np.median(np.concatenate(all_rel)))})
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/oq-v7"))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--no-engine", action="store_true", help="only the hazardlib table check")
    a = ap.parse_args(argv)
    from hra.gmm.groningen_v7 import GroningenV7

    gmm = GroningenV7()
    report = {"hazardlib_table": show(table_check(gmm)), "engine": []}
    if not a.no_engine:
        for branch, comp in ((BRANCHES[0], "geometric_mean"), (BRANCHES[1], "arbitrary")):
            report["engine"].append(show(engine_check(a.out, a.out / "oqdata", gmm, branch, comp)))
    return finish(report, None, a.json)


if __name__ == "__main__":
    raise SystemExit(main())
