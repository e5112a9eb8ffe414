"""Event-based benchmark: the demo region, N buildings x T simulated years, wall time and memory.

Runs :func:`hra.eventbased.risk.compute_event_based` on the embedded demo region (demo GMM with zone
amplification, demo fragility, ``population_inside`` occupancy) for one calendar year (default
2025) and one logic-tree realisation (default: a Monte-Carlo draw, the integration engine's
stream), with the default correlated within-event fields (range 8.5 km, 500 m grid), site terms
shared per zone, conditional-expectation rates and sampled F-N deaths. Prints:

* events simulated, building-event pairs within the cut-off distance (the work), events per
  second and pairs per second;
* the time of each stage (events, damage) and the total, peak resident memory of the driver and
  of the dask workers (``ru_maxrss``);
* expected collapses and fatalities per year, the F-N curve (with bootstrap band) and the group-
  risk reference line, the top events.

Usage::

    python benchmarks/event_based.py --buildings 250000 --years 10000 --workers 2
    python benchmarks/event_based.py --buildings 20000 --years 1000          # quick

Not part of the test suite. The target of issue #6 is <= 15 minutes and <= 8 GB on 2 cores for
250,000 buildings x 10,000 simulated years; on a machine shared with other jobs, say so.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--buildings", type=int, default=250_000)
    ap.add_argument("--years", type=int, default=10_000, help="simulated years (per calendar year)")
    ap.add_argument("--realisations", default="1", help='logic-tree realisations: an int or "all"')
    ap.add_argument("--year", type=int, default=2025)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--chunk", type=int, default=500, help="events per chunk")
    ap.add_argument("--dir", type=Path, default=None, help="where to write the demo inputs")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)

    import hra
    from hra.eventbased import kernels as ek
    from hra.chain import prepare
    from hra.eventbased.risk import EventRiskOptions, compute_event_based, event_based_dataset

    real = a.realisations if a.realisations == "all" else int(a.realisations)
    directory = a.dir or Path(f"/tmp/hra-eb-bench-{a.buildings}")
    t0 = time.perf_counter()
    cfg = hra.demo_config(a.buildings, seed=1, directory=directory, realisations=1, years=(a.year,), workers=a.workers)
    sched = "local" if a.workers > 1 else "synchronous"
    cfg = cfg.with_updates(compute={"workers": a.workers, "scheduler": sched, "progress": False})
    prep = prepare(cfg)
    t_prep = time.perf_counter() - t0
    opts = EventRiskOptions(n_years_simulated=a.years, realisations=real, event_chunk=a.chunk, bootstrap=500)
    t1 = time.perf_counter()
    res = compute_event_based(cfg, opts, prep=prep, progress=False)
    t_run = time.perf_counter() - t1
    ds = event_based_dataset(res)
    t_total = time.perf_counter() - t0
    st = res.event_stats
    pairs = int(st[:, ek.E_N_AFFECTED].sum())
    self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    out = {
        "buildings": a.buildings, "simulated_years": a.years, "realisations": res.events.realisations.n,
        "workers": a.workers, "events": res.events.n_events, "events_reaching_buildings": int((st[:, ek.E_N_AFFECTED] > 0).sum()),
        "building_event_pairs": pairs, "prepare_s": round(t_prep, 2), "events_s": round(res.timings["events_s"], 2),
        "damage_s": round(res.timings["damage_s"], 2), "run_s": round(t_run, 2), "total_s": round(t_total, 2),
        "events_per_s": round(res.events.n_events / t_run, 1), "pairs_per_s": round(pairs / t_run, 0),
        "peak_rss_driver_mib": round(self_rss, 1), "peak_rss_children_mib": round(child_rss, 1),
        "expected_collapses_per_yr": float(ds["expected_collapses"][0]),
        "expected_fatalities_per_yr": float(ds["expected_fatalities"][0]),
        "buildings_lpr_event_above_1e-5": int((ds["lpr_event"][:, 0] > 1e-5).sum()),
        "fn": {f"N>={int(n)}": [float(ds["fn_frequency"][0, i]), float(ds["fn_lower"][0, i]), float(ds["fn_upper"][0, i]),
                                None if np.isnan(ds["group_risk_reference"][i]) else float(ds["group_risk_reference"][i])]
               for i, n in enumerate(ds["fn_n"].values)},
        "top_events": [dict(event_id=int(ds["top_event_id"][0, k]), magnitude=round(float(ds["top_event_magnitude"][0, k]), 2),
                            deaths=float(ds["top_event_deaths"][0, k]), collapses=float(ds["top_event_collapses"][0, k]))
                       for k in range(5)],
    }
    print(json.dumps(out, indent=1))
    if a.json:
        a.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
