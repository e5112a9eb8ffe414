"""The shared peer problem: our config and the OpenQuake inputs written from it (never hand-edited).

Problem (both engines, docs/openquake.md §3):

* sources: the demo rate grid of one calendar year (default 2025), one source branch (default
  "elastic"), b = 1, Mmax branches 4.5 / 5.5 (0.5 / 0.5), m_min 1.5, depth 3 km, point sources at
  the cell centres (our engine: ``subcell_radius_km = 0``, event locations at the centre);
* ground motion: Dost et al. (2004) PGA with the Bommer et al. (2013) adaptation, R_hyp, no site
  terms: ours :class:`hra.gmm.dost2004.DostBommer2013`, OpenQuake's built-in
  ``DostEtAl2004BommerAdaptation`` (or our plug-in ``GroningenHraDost2004`` with ``--plugin``);
* exposure: the demo synthetic exposure (``n`` buildings, typology candidates as assets with
  number = probability);
* fragility: the demo curves, central branch, on PGA, medians x ``FRAGILITY_SCALE`` (weaker than
  the demo set so that collapse rates are ~1e-3/yr and a 10,000-year event-based run says
  something), consequences: collapsed (1 per state), fatalities (inside death probability).

Usage (from the project venv; writes files only, runs no OpenQuake)::

    python benchmarks/openquake/export.py --buildings 1000 --out /tmp/oq-peer/n1000

The exporter itself is :mod:`hra.openquake.export` (importable without OpenQuake).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

#: Factor on the demo fragility medians for the peer problem.
FRAGILITY_SCALE = 0.35
M_MAX = ((4.5, 0.5), (5.5, 0.5))


def write_problem(directory: Path, n_buildings: int, year: int = 2025, source_branch: str = "elastic", seed: int = 1):
    """Write our inputs (rates, buildings, fragility, run.toml) and return the validated config."""
    import tomli_w

    import hra
    from fragility.demo import demo_fragility_table
    from hra.demo.exposure import synthetic_exposure, write_exposure
    from hra.demo.source import demo_rate_grid

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    rates = demo_rate_grid((year,))
    rates = rates[rates["branch"] == source_branch].assign(weight=1.0)
    rates.to_csv(d / "rates.csv", index=False, float_format="%.10g")
    write_exposure(synthetic_exposure(n_buildings, seed=seed), d / "buildings.csv")
    fr = demo_fragility_table()
    fr = fr[fr["branch"] == "central"].assign(weight=1.0)
    fr["median_g"] = fr["median_g"] * FRAGILITY_SCALE
    fr.to_csv(d / "fragility.csv", index=False)
    data = {
        "run": {"years": [year], "seed": seed, "realisations": "all", "quantiles": [0.5, 0.9], "keep_realisations": True,
                "typology_uncertainty": "mixture"},
        "source": {"rates": "rates.csv", "cell_size_m": 1000.0, "m_min": 1.5, "depth_km": 3.0,
                   "max_distance_km": 200.0, "distance_nodes": 200, "subcell_radius_km": 0.0,
                   "magnitude": {"b_value": 1.0, "bin_width": 0.05,
                                 "m_max": [{"value": v, "weight": w} for v, w in M_MAX]}},
        # placeholder section (the config schema has no Dost section yet): the GMM is replaced
        # by DostBommer2013 in prepare_peer(); "imt" sets the fragility IM to PGA
        "ground_motion": {"model": "parametric", "imt": "PGA", "c0": 0.0, "c1": 0.0, "c2": 0.0, "tau": 0.1, "phi": 0.1},
        "exposure": {"buildings": "buildings.csv"},
        "fragility": {"curves": "fragility.csv", "presence_inside": 1.0},
        "compute": {"workers": 1, "scheduler": "synchronous", "progress": False},
    }
    with open(d / "run.toml", "wb") as fh:
        tomli_w.dump(data, fh)
    return hra.load_config(d / "run.toml")


def prepare_peer(cfg):
    """prepare() with the Dost-Bommer GMM in place of the placeholder."""
    from hra.chain import prepare
    from hra.gmm.dost2004 import DostBommer2013

    prep = prepare(cfg)
    prep.gmm = DostBommer2013()
    return prep


def export(directory: Path, n_buildings: int, plugin: bool = False, ses_per_path: int = 10_000, **kw):
    """Write our problem into ``directory/hra`` and the OpenQuake inputs into ``directory/oq``."""
    from hra.openquake.export import export_openquake

    cfg = write_problem(Path(directory) / "hra", n_buildings, **kw)
    prep = prepare_peer(cfg)
    gsim = "GroningenHraDost2004" if plugin else "DostEtAl2004BommerAdaptation"
    exp = export_openquake(prep, Path(directory) / "oq", mode="peer", gsim=gsim, mfd_bin_width=0.05,
                           ses_per_logic_tree_path=ses_per_path)
    return cfg, prep, exp


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--buildings", type=int, default=1000)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--plugin", action="store_true", help="use our GSIM plug-in GroningenHraDost2004")
    ap.add_argument("--ses", type=int, default=10_000, help="simulated years per realisation of the event-based job")
    a = ap.parse_args(argv)
    cfg, prep, exp = export(a.out, a.buildings, a.plugin, a.ses)
    print(f"wrote {len(exp.files)} files to {exp.directory}: {len(exp.assets)} assets, {len(prep.rates.x)} point sources x "
          f"{len(exp.source_branches)} source-model branches")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
