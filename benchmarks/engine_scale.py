"""Engine scaling benchmark: buildings per second and peak memory on the demo region.

For each number of buildings (``--sizes``), each number of workers (``--workers``) and each
executor (``--executor``: ``threads`` of the process, the default of ``hra``, and/or
``processes`` of a dask ``LocalCluster``) it runs the full demo configuration: logic tree of 2 source x 6 Mmax x 12 GMM x 9 FCM = 1,296 branches,
7 years (2025-2031), mean plus P50/P90 from ``--realisations`` Monte-Carlo realisations. Every
case runs in a fresh Python process, so the peak memory (``ru_maxrss``) belongs to that case alone,
and the kernels are loaded from the numba cache as in a real run (the script fills the cache
first with a tiny parametric run that takes the same code path).

Reported per case (timings from ``ds.attrs['provenance']['timings_s']``):

* ``prepare`` reading and checking the inputs, ``tables`` the per-site ground-motion/fragility
  tables (independent of the number of buildings), ``buildings`` the per-building pass
  (distance histograms, LPR per realisation, mean and quantiles), ``total``;
* buildings/s of the per-building pass and of the whole run, and microseconds per building;
* peak resident memory [MiB]: of the driver process (``RUSAGE_SELF``), of its finished children
  (``RUSAGE_CHILDREN``) and, with worker processes, the largest peak among the dask workers
  (``client.run(resource.getrusage)`` just before the cluster closes).

With one worker the case runs in-process (serially, whatever the executor; it is run once). With
more workers and ``threads`` the run uses ``[compute] executor = "threads"`` (a thread pool in the
process, as ``hra`` does by default). With ``processes`` the case starts its own ``LocalCluster``
(one thread per worker process, as ``executor = "processes"`` does) and passes its address as
``[compute] scheduler``, so the cluster start-up is measured apart (``cluster_start_s``) and not
inside ``total``.

Then it prints the speed-up of the largest worker count over 1 worker per size and executor, the
time of threads relative to processes, and the linearity: time per building at each size relative
to the smallest size.

Usage::

    python benchmarks/engine_scale.py                   # 20k, 100k, 250k x 1, 2 workers x threads, processes
    python benchmarks/engine_scale.py --sizes 250000 --workers 1,2 --executor threads,processes
    python benchmarks/engine_scale.py --sizes 20000 --workers 1,2 --executor threads   # quick check
    python benchmarks/engine_scale.py --json results.json             # also save the figures

Not part of the test suite (docs/architecture.md §7: no timing assertions in tests/).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import MIB, finish, peak_mib as _peak_mib, spawn_case, table as _table, worker_peak_kib as _worker_peak_kib  # noqa: F401



def run_case(n: int, workers: int, executor: str, realisations: int, seed: int, inputs: str) -> dict:
    """One benchmark case, in this (fresh) process; returns the figures."""
    import hra

    cfg = hra.demo_config(n_buildings=n, seed=seed, directory=inputs, realisations=realisations)
    cluster = client = None
    cluster_start = 0.0
    compute: dict = {"progress": False, "workers": workers, "executor": executor, "scheduler": None}
    if workers > 1 and executor == "processes":
        import logging

        from dask.distributed import Client

        from hra.core.executor import local_cluster

        t = time.perf_counter()
        cluster = local_cluster(workers, dashboard_address=None, silence_logs=logging.ERROR)
        client = Client(cluster)
        cluster_start = time.perf_counter() - t
        compute = {"progress": False, "workers": workers, "scheduler": cluster.scheduler_address}
    cfg = cfg.with_updates(compute=compute)
    t = time.perf_counter()
    ds = hra.run(cfg, progress=False, write=False)
    wall = time.perf_counter() - t
    worker_peak = None
    if client is not None:
        peaks = client.run(_worker_peak_kib)
        worker_peak = max(peaks.values()) / MIB
        client.close()
        cluster.close()
    prov = json.loads(ds.attrs["provenance"])
    tim = prov["timings_s"]
    return {
        "buildings": n, "workers": workers, "executor": executor if workers > 1 else "in-process",
        "realisations": prov["n_realisations"],
        "years": int(ds.sizes["year"]), "branches": 1296,
        "prepare_s": tim["prepare_s"], "tables_s": tim["tables_s"], "buildings_s": tim["buildings_s"],
        "total_s": tim["total_s"], "wall_s": round(wall, 3), "cluster_start_s": round(cluster_start, 3),
        "peak_self_mib": round(_peak_mib(resource.RUSAGE_SELF), 1),
        "peak_children_mib": round(_peak_mib(resource.RUSAGE_CHILDREN), 1),
        "peak_worker_mib": None if worker_peak is None else round(worker_peak, 1),
    }


def warm_cache() -> None:
    """Compile the kernels into the numba cache with the argument types of a real run.

    A tiny one-site parametric region goes through the same code path as the demo (same array
    types, read-only flags included), at a fraction of the demo's table cost.
    """
    import pandas as pd

    import hra
    from hra.config import config_from_dict

    d = Path(tempfile.mkdtemp(prefix="hra-bench-warm-"))
    pd.DataFrame([dict(x=240_000.0, y=590_000.0, year=y, rate=0.1, branch=b, weight=0.5)
                  for y in (2025, 2026) for b in ("a", "b")]).to_csv(d / "rates.csv", index=False)
    pd.DataFrame([dict(typology="T", state=f"CS{k + 1}", median_g=0.2 * (k + 1), beta=0.5, p_death=0.1 * (k + 1),
                       p_death_outside=0.01, branch=br, weight=w)
                  for k in range(3) for br, w in (("lo", 0.5), ("hi", 0.5))]).to_csv(d / "fragility.csv", index=False)
    pd.DataFrame([dict(id=f"b{i}", x=240_000.0 + 100 * i, y=590_500.0, typology="T") for i in range(5)]).to_csv(
        d / "buildings.csv", index=False)
    cfg = config_from_dict({
        "run": {"years": [2025, 2026], "seed": 1, "realisations": 20},
        "source": {"rates": str(d / "rates.csv"), "magnitude": {"m_max": [{"value": 5.0, "weight": 1.0}]}},
        "ground_motion": {"model": "parametric", "c0": -5.0, "c1": 1.2, "c2": -1.5, "tau": 0.3, "phi": 0.5},
        "exposure": {"buildings": str(d / "buildings.csv")},
        "fragility": {"curves": str(d / "fragility.csv"), "presence_inside": 0.9},
        "compute": {"progress": False},
    })
    hra.run(cfg, progress=False, write=False)


def _spawn(n: int, workers: int, executor: str, realisations: int, seed: int, inputs: str) -> dict:
    return spawn_case(__file__, [n, workers, executor, realisations, seed, inputs], f"{n} buildings x {workers} {executor} workers")


def report(results: list[dict]) -> str:
    out = []
    rows = []
    for r in results:
        n = r["buildings"]
        rows.append([
            f"{n:,}", r["workers"], r["executor"], f"{r['prepare_s']:.1f}", f"{r['tables_s']:.1f}", f"{r['buildings_s']:.1f}",
            f"{r['total_s']:.1f}", f"{n / r['buildings_s']:,.0f}", f"{n / r['total_s']:,.0f}",
            f"{1e6 * r['buildings_s'] / n:.0f}", f"{r['peak_self_mib']:.0f}", f"{r['peak_children_mib']:.0f}",
            "-" if r["peak_worker_mib"] is None else f"{r['peak_worker_mib']:.0f}",
            f"{r['cluster_start_s']:.1f}" if r["executor"] == "processes" else "-",
        ])
    out.append(_table(rows, ["buildings", "workers", "executor", "prepare s", "tables s", "buildings s", "total s",
                             "bldg/s (pass)", "bldg/s (total)", "us/bldg", "peak self MiB",
                             "peak children MiB", "peak worker MiB", "cluster start s"]))

    by = {(r["buildings"], r["workers"], r["executor"]): r for r in results}
    sizes = sorted({r["buildings"] for r in results})
    wlist = sorted({r["workers"] for r in results})
    kinds = sorted({r["executor"] for r in results if r["workers"] > 1})
    if 1 in wlist and len(wlist) > 1:
        wmax = wlist[-1]
        rows = []
        for n in sizes:
            for kind in kinds:
                a, b = by.get((n, 1, "in-process")), by.get((n, wmax, kind))
                if a and b:
                    rows.append([f"{n:,}", kind, f"{a['tables_s'] / b['tables_s']:.2f}",
                                 f"{a['buildings_s'] / b['buildings_s']:.2f}", f"{a['total_s'] / b['total_s']:.2f}"])
        out.append(f"\nspeed-up of {wmax} workers over 1 (time with 1 / time with {wmax}):")
        out.append(_table(rows, ["buildings", "executor", "tables", "buildings pass", "total"]))
    if {"threads", "processes"} <= set(kinds):
        rows = []
        for n in sizes:
            for w in wlist:
                a, b = by.get((n, w, "threads")), by.get((n, w, "processes"))
                if a and b:
                    rows.append([f"{n:,}", w, f"{a['tables_s'] / b['tables_s']:.2f}",
                                 f"{a['buildings_s'] / b['buildings_s']:.2f}", f"{a['total_s'] / b['total_s']:.2f}"])
        out.append("\nthreads relative to processes (time with threads / time with processes; < 1: threads faster):")
        out.append(_table(rows, ["buildings", "workers", "tables", "buildings pass", "total"]))
    if len(sizes) > 1:
        rows = []
        for (n0, w, kind), base in sorted(by.items()):
            if n0 != sizes[0]:
                continue
            for n in sizes:
                r = by.get((n, w, kind))
                if r:
                    per = r["buildings_s"] / n
                    rows.append([w, kind, f"{n:,}", f"{1e6 * per:.0f}", f"{per / (base['buildings_s'] / sizes[0]):.2f}",
                                 f"{1e6 * r['total_s'] / n:.0f}"])
        out.append(f"\nlinearity (time per building relative to {sizes[0]:,} buildings; 1.00 = linear):")
        out.append(_table(rows, ["workers", "executor", "buildings", "us/bldg (pass)", "relative", "us/bldg (total)"]))
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="20000,100000,250000", help="numbers of buildings, comma-separated")
    ap.add_argument("--workers", default="1,2", help="numbers of workers (threads or processes), comma-separated")
    ap.add_argument("--executor", default="threads,processes",
                    help="executors of the cases with 2+ workers, comma-separated: threads, processes")
    ap.add_argument("--realisations", type=int, default=1000, help="Monte-Carlo realisations of the logic tree")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.warm:  # child process: fill the numba cache
        warm_cache()
        return 0
    if args.case:  # child process: one case, JSON on the last stdout line
        n, w, kind, real, seed, inputs = json.loads(args.case)
        print(json.dumps(run_case(n, w, kind, real, seed, inputs)))
        return 0

    sizes = [int(s) for s in args.sizes.split(",") if s]
    wlist = [int(w) for w in args.workers.split(",") if w]
    kinds = [k.strip() for k in args.executor.split(",") if k.strip()]
    bad = [k for k in kinds if k not in ("threads", "processes")]
    if bad or not kinds:
        ap.error(f"--executor {args.executor!r}: give threads and/or processes, comma-separated")
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print(f"demo region: logic tree 1,296 branches, 7 years, {args.realisations} realisations, mean + P50/P90")
    print(f"HRA_NUMBA_CACHE={os.environ.get('HRA_NUMBA_CACHE', '1')}; warming the numba cache ...", flush=True)
    t = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--warm"], check=True)
    print(f"  warm-up {time.perf_counter() - t:.1f} s", flush=True)
    results = []
    for n in sizes:
        inputs = tempfile.mkdtemp(prefix=f"hra-bench-{n}-")
        cases = [(w, kind) for w in wlist for kind in (kinds if w > 1 else kinds[:1])]  # 1 worker: in-process, once
        for w, kind in cases:
            print(f"running {n:,} buildings with {w} worker(s)" + (f" ({kind})" if w > 1 else "") + " ...", flush=True)
            r = _spawn(n, w, kind, args.realisations, args.seed, inputs)
            print(f"  total {r['total_s']:.1f} s (tables {r['tables_s']:.1f} s, buildings {r['buildings_s']:.1f} s)",
                  flush=True)
            results.append(r)
    return finish(results, report, args.json)


if __name__ == "__main__":
    sys.exit(main())
