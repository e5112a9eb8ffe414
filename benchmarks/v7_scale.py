"""GMM V7 x FCM V7 benchmark: the demo region with the public Groningen models at scale.

The case is ``hra demo --model groningen-v7`` (:func:`hra.demo_config` with
``model="groningen-v7"``): the demo region's source (2 source branches, 6 Mmax branches) with the
full V7 tree (72 GMM x 9 FCM branches; the magnitude-dependent median weights give 46 virtual
median branches), 8 demo zones mapped onto 8 real V6 zones, the 35 FCM V7 classes with typology
uncertainty, wierden; 7 years (2025-2031), mean plus P50/P90 from ``--realisations`` Monte-Carlo
realisations (1,000 as the demo). Target: 250,000 buildings in <= 10 min and <= 8 GB on 2 cores.

For each number of buildings (``--buildings``) and each number of workers (``--workers``: threads of
the engine's pool, hra's default, or with ``--executor processes`` dask worker processes of a
LocalCluster the script starts) a fresh Python process runs the engine (:func:`hra.integration.engine.compute`) and reports:

* ``prepare`` (inputs), ``tables`` (the per-site GMM x FCM tables: independent of the number of
  buildings, dominated by the V7 ground-motion mixtures), ``buildings`` (the per-building pass)
  and ``total`` [s]; the number of sites (zone x wierde), table rows (site x typology) and
  distinct model combinations the tables hold;
* peak resident memory [MiB]: the driver (``RUSAGE_SELF``: all threads) and, with 2+ worker
  processes, the largest worker (``client.run(resource.getrusage)``); ``memory`` = driver + workers
  x worker peak.

``--all-zones`` times the table stage alone for **all 160 V6 zones x 35 typologies**: a small
exposure with 4 buildings at the representative point of every V6 zone polygon (zones from the
zonation, as for any exposure without a zone column), carrying the 35 classes through
``system_i`` / ``s_probability_i`` (10 + 10 + 10 + 5 candidates), then
:func:`hra.chain.prepare`, :func:`~hra.integration.engine.select_realisations` and
:func:`~hra.integration.engine.build_tables` on an :class:`~hra.core.executor.Executor` of ``--workers`` threads
(or processes).
``--max-zones N`` (alias ``--zones N``) keeps the first N zones (a check of the script; per-site
time x 160 / workers then estimates the full figure). ``--tables-only`` is an alias of ``--all-zones``.
Besides the wall clock, the table stage's **CPU time** (user + system, driver and workers) is
reported per zone, with the estimate for all zones on 2 cores (CPU s/zone x zones / 2): the wall
clock is unreliable on a shared machine. In-process (1 worker or threads) the numba kernels of the
grid path are compiled (or loaded from the on-disk cache) by a tiny table before the timing: a cost
per process, not per zone.

``--strike uniform`` sets ``[ground_motion] rupture_strike = "uniform"`` (default: the presets'
Gaussian strike, whose tables carry a relative-azimuth axis). ``--quick`` reduces the tree for checks of the script: ``[ground_motion] quadrature = "fast"``
and two Mmax branches (4.5: 0.675, 5.5: 0.325) instead of six.

Usage::

    python benchmarks/v7_scale.py                                     # 250k buildings, 7 years, 1 and 2 workers
    python benchmarks/v7_scale.py --buildings 2000 --years 2025 --quick          # check (minutes)
    python benchmarks/v7_scale.py --all-zones --workers 2                         # 160 zones x 35 classes
    python benchmarks/v7_scale.py --all-zones --quick --max-zones 4 --workers 1   # check
    python benchmarks/v7_scale.py --tables-only --zones 2 --workers 1             # CPU s per zone, full tree

Needs the public model tables (``$HRA_MODEL_DIR`` or ``--model-dir``). Not part of the test suite.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import MIB, finish, peak_mib as _peak_mib, spawn_case, table as _table, worker_peak_kib as _worker_peak_kib  # noqa: E402
from engine_scale import warm_cache  # noqa: E402

#: Mmax branches of --quick [magnitude, weight] (the demo's six merged into two).
QUICK_MMAX = ((4.5, 0.675), (5.5, 0.325))
TARGET_S = 600.0
TARGET_MIB = 8 * 1024.0


def _years(text: str) -> list[int]:
    """"2025-2031", "2025" or "2025,2027" -> list of years."""
    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if "-" in part:
            a, b = (int(v) for v in part.split("-"))
            out.extend(range(a, b + 1))
        elif part:
            out.append(int(part))
    return out


def _config(n: int, opts: dict, inputs: str):
    """The V7 demo configuration (with the --quick reductions) for ``n`` buildings."""
    import hra

    cfg = hra.demo_config(n_buildings=n, seed=opts["seed"], directory=inputs, realisations=opts["realisations"],
                          years=tuple(opts["years"]), model="groningen-v7", model_dir=opts["model_dir"])
    if opts["quick"]:
        cfg = cfg.with_updates(
            ground_motion={"quadrature": "fast"},
            source={"magnitude": {"b_value": 1.0, "m_max": [{"value": v, "weight": w} for v, w in QUICK_MMAX]}})
    if opts.get("strike") == "uniform":
        cfg = cfg.with_updates(ground_motion={"rupture_strike": "uniform"})
    return cfg


class _Cluster:
    """A LocalCluster of worker processes started by the benchmark (its start-up is timed apart), or
    nothing: 1 worker, or ``executor="threads"`` (the engine's thread pool in this process)."""

    def __init__(self, workers: int, executor: str = "threads") -> None:
        self.workers = workers
        self.executor = executor
        self.cluster = self.client = None
        self.start_s = 0.0

    def __enter__(self) -> "_Cluster":
        if self.workers > 1 and self.executor == "processes":
            import logging

            from dask.distributed import Client

            from hra.core.executor import local_cluster

            t = time.perf_counter()
            self.cluster = local_cluster(self.workers, dashboard_address=None, silence_logs=logging.ERROR)
            self.client = Client(self.cluster)
            self.start_s = time.perf_counter() - t
        return self

    @property
    def compute(self) -> dict:
        if self.cluster is None:
            return {"progress": False, "workers": self.workers, "executor": "threads", "scheduler": None}
        return {"progress": False, "workers": self.workers, "scheduler": self.cluster.scheduler_address}

    def worker_peak_mib(self) -> float | None:
        if self.client is None:
            return None
        return max(self.client.run(_worker_peak_kib).values()) / MIB

    def __exit__(self, *exc) -> None:
        if self.client is not None:
            self.client.close()
            self.cluster.close()


def run_case(n: int, workers: int, opts: dict, inputs: str) -> dict:
    """One region case (in this fresh process): the whole engine run."""
    from hra.integration.engine import compute

    cfg = _config(n, opts, inputs)
    with _Cluster(workers, opts.get("executor", "threads")) as cl:
        cfg = cfg.with_updates(compute=cl.compute)
        t = time.perf_counter()
        res = compute(cfg, progress=False)
        wall = time.perf_counter() - t
        worker_peak = cl.worker_peak_mib()
    tim = res.timings
    prep = res.prep
    return {
        "case": "region", "buildings": n, "workers": workers, "years": len(opts["years"]),
        "realisations": int(res.selection.realisations.n), "quick": opts["quick"],
        "sites": len(prep.sites), "table_rows": _n_rows(prep),
        "combinations": int(res.selection.combo_model.size), "tree": int(prep.tree.n_combinations),
        "prepare_s": round(tim["prepare_s"], 3), "tables_s": round(tim["tables_s"], 3),
        "buildings_s": round(tim["buildings_s"], 3), "total_s": round(tim["total_s"], 3), "wall_s": round(wall, 3),
        "cluster_start_s": round(cl.start_s, 3),
        "peak_self_mib": round(_peak_mib(resource.RUSAGE_SELF), 1),
        "peak_worker_mib": None if worker_peak is None else round(worker_peak, 1),
    }


def _n_rows(prep) -> int:
    """Number of (site, typology) tables: pairs present among the buildings' candidates."""
    import numpy as np

    ti = prep.buildings.typology_index
    si = np.broadcast_to(prep.site_index[:, None], ti.shape)
    ok = ti >= 0
    return int(np.unique(si[ok] * (ti.max() + 1) + ti[ok]).size)


def all_zones_exposure(zonation: Path, valid_zones, max_zones: int | None = None):
    """4 buildings at the representative point of every valid V6 zone polygon, carrying the 35 classes."""
    import numpy as np
    import pandas as pd
    import shapely

    from hra.demo.groningen import V7_TYPOLOGIES
    from hra.inputs.edb import read_zones_v6
    from hra.inputs.exposure import MAX_CANDIDATES

    ids, polys = read_zones_v6(zonation)
    keep = np.isin(ids, np.asarray(list(valid_zones), dtype=np.int64))
    ids, polys = ids[keep], polys[keep]
    order = np.argsort(ids, kind="stable")
    ids, polys = ids[order], polys[order]
    if max_zones is not None:
        ids, polys = ids[:max_zones], polys[:max_zones]
    pts = shapely.point_on_surface(polys)
    groups = [V7_TYPOLOGIES[i:i + MAX_CANDIDATES] for i in range(0, len(V7_TYPOLOGIES), MAX_CANDIDATES)]
    rows = []
    for z, p in zip(ids, pts):
        for g, classes in enumerate(groups):
            row = {"id": f"Z{int(z)}-{g + 1}", "x": round(shapely.get_x(p), 2), "y": round(shapely.get_y(p), 2)}
            cents = [100 // len(classes)] * len(classes)
            cents[0] += 100 - sum(cents)
            for j, (c, pc) in enumerate(zip(classes, cents), start=1):
                row[f"system_{j}"] = c
                row[f"s_probability_{j}"] = pc / 100.0
            rows.append(row)
    return pd.DataFrame(rows), ids


def run_all_zones(workers: int, opts: dict, inputs: str) -> dict:
    """The table stage for all V6 zones x 35 classes (in this fresh process)."""
    import numpy as np

    from hra.api import demo_model_dir
    from hra.core.executor import Executor
    from hra.integration.engine import build_tables, select_realisations
    from hra.chain import prepare
    from hra.inputs.exposure import write_exposure
    from hra.gmm.registry import load_gmm
    from hra.inputs.modeldata import zonation_file

    model_dir = demo_model_dir("groningen-v7", opts["model_dir"])
    valid = load_gmm("groningen-v7", model_dir).zones
    df, zones = all_zones_exposure(zonation_file(model_dir), valid, opts["max_zones"])
    cfg = _config(10, opts, inputs)
    write_exposure(df, Path(inputs) / "buildings.csv")
    with _Cluster(workers, opts.get("executor", "threads")) as cl:
        cfg = cfg.with_updates(compute=cl.compute)
        t0 = time.perf_counter()
        prep = prepare(cfg)
        t1 = time.perf_counter()
        with Executor.from_config(cfg.compute, progress=False) as ex:
            sel = select_realisations(prep)
            if cl.cluster is None:  # compile / load the grid-path kernels first (in this process): not a per-zone cost
                _warm_grid_path(prep)
            t2 = time.perf_counter()
            c2 = _cpu_s(cl)
            tables = build_tables(prep, sel, ex)
            t3 = time.perf_counter()
            c3 = _cpu_s(cl)
        worker_peak = cl.worker_peak_mib()
    got = sorted({z for z, _ in prep.sites})
    return {
        "case": "all-zones", "buildings": int(prep.buildings.n), "workers": workers, "quick": opts["quick"],
        "zones_asked": int(len(zones)), "sites": len(prep.sites), "zones_missing": [int(z) for z in set(zones) - set(got)],
        "table_rows": int((tables.row_of >= 0).sum()), "combinations": int(sel.combo_model.size),
        "table_mib": round(tables.q.nbytes / 2**20, 1), "realisations": int(sel.realisations.n),
        "prepare_s": round(t1 - t0, 3), "select_s": round(t2 - t1, 3), "tables_s": round(t3 - t2, 3),
        "per_site_s": round((t3 - t2) * max(workers, 1) / max(len(prep.sites), 1), 3),
        "tables_cpu_s": round(c3 - c2, 3), "cpu_per_zone_s": round((c3 - c2) / max(len(set(got)), 1), 3),
        "cluster_start_s": round(cl.start_s, 3),
        "peak_self_mib": round(_peak_mib(resource.RUSAGE_SELF), 1),
        "peak_worker_mib": None if worker_peak is None else round(worker_peak, 1),
        "valid_zones": int(np.size(valid)),
    }


def _warm_grid_path(prep) -> None:
    """A tiny table (2 magnitudes, 1 typology) of the first zone: compiles the kernels of
    :mod:`hra.integration.condtables` and GMM V7 in this process before the timing."""
    import numpy as np

    from hra.integration import condtables

    if not condtables.supports(prep.gmm):
        return
    branch = {n.name: 0 for n in prep.gmm.tree.nodes}
    zone = int(prep.sites[0][0])
    condtables.rrup_death_tables(prep.gmm, prep.fragility, np.array([0]), prep.magnitude.nodes[-2:],
                                 prep.distance_nodes_km, zone, branch, (False, True))


def _cpu_s(cl: "_Cluster") -> float:
    """CPU time [s] (user + system) of this process and, with a cluster, of its workers: the measure
    of the table stage's cost that does not depend on how busy the (shared) machine is."""
    t = time.process_time()
    if cl.client is not None:
        t += sum(cl.client.run(_worker_cpu_s).values())
    return t


def _worker_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _spawn(kind: str, n: int, workers: int, opts: dict, inputs: str) -> dict:
    return spawn_case(__file__, [kind, n, workers, opts, inputs], f"{kind} {n} buildings x {workers} workers")


def _memory(r: dict) -> float:
    return r["peak_self_mib"] + (r["workers"] * r["peak_worker_mib"] if r.get("peak_worker_mib") else 0.0)


def report(results: list[dict]) -> str:
    out = []
    region = [r for r in results if r["case"] == "region"]
    if region:
        rows = []
        for r in region:
            n = r["buildings"]
            ok = r["total_s"] <= TARGET_S and _memory(r) <= TARGET_MIB
            rows.append([f"{n:,}", r["workers"], r["years"], r["sites"], r["table_rows"], r["combinations"],
                         f"{r['prepare_s']:.1f}", f"{r['tables_s']:.1f}", f"{r['buildings_s']:.1f}",
                         f"{r['total_s']:.1f}", f"{n / r['buildings_s']:,.0f}", f"{r['peak_self_mib']:.0f}",
                         "-" if r["peak_worker_mib"] is None else f"{r['peak_worker_mib']:.0f}",
                         f"{_memory(r):.0f}", "yes" if ok else "no"])
        out.append(_table(rows, ["buildings", "workers", "years", "sites", "rows", "combos", "prepare s",
                                 "tables s", "buildings s", "total s", "bldg/s (pass)", "peak self MiB",
                                 "peak worker MiB", "memory MiB", "target"]))
        out.append(f"(target: total <= {TARGET_S:.0f} s and memory <= {TARGET_MIB:.0f} MiB; memory = driver + "
                   "workers x worker peak; rows = site x typology tables; combos = distinct model combinations)")
        by = {(r["buildings"], r["workers"]): r for r in region}
        pairs = [(n, by[(n, 1)], max((r for r in region if r["buildings"] == n), key=lambda r: r["workers"]))
                 for n in sorted({r["buildings"] for r in region}) if (n, 1) in by]
        pairs = [(n, a, b) for n, a, b in pairs if b["workers"] > 1]
        if pairs:
            rows = [[f"{n:,}", b["workers"], f"{a['tables_s'] / b['tables_s']:.2f}",
                     f"{a['buildings_s'] / b['buildings_s']:.2f}", f"{a['total_s'] / b['total_s']:.2f}"]
                    for n, a, b in pairs]
            out.append("\nspeed-up over 1 worker (time with 1 / time with N):")
            out.append(_table(rows, ["buildings", "N", "tables", "buildings pass", "total"]))
    zones = [r for r in results if r["case"] == "all-zones"]
    if zones:
        rows = []
        for r in zones:
            est = r["per_site_s"] * r["valid_zones"] / r["workers"]
            est_cpu = r["cpu_per_zone_s"] * r["valid_zones"] / 2
            rows.append([r["zones_asked"], r["sites"], len(r["zones_missing"]), r["table_rows"], r["combinations"],
                         r["workers"], f"{r['prepare_s']:.1f}", f"{r['tables_s']:.1f}", f"{r['per_site_s']:.1f}",
                         f"{est:.0f}", f"{r['tables_cpu_s']:.1f}", f"{r['cpu_per_zone_s']:.1f}", f"{est_cpu:.0f}",
                         f"{r['table_mib']:.0f}", f"{r['peak_self_mib']:.0f}",
                         "-" if r["peak_worker_mib"] is None else f"{r['peak_worker_mib']:.0f}"])
        out.append("\nall V6 zones x 35 typologies, table stage only:")
        out.append(_table(rows, ["zones", "sites", "missing", "rows", "combos", "workers", "prepare s", "tables s",
                                 "s/site (1 core)", "est. all zones s", "tables CPU s", "CPU s/zone",
                                 "est. all zones s (CPU / 2 cores)", "table MiB", "peak self MiB",
                                 "peak worker MiB"]))
        out.append("(CPU = user + system time of the driver and the workers: the cost of the table stage whatever "
                   "else runs on the machine; est. = CPU s/zone x zones / 2 cores, target <= 600 s)")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--buildings", default="250000", help="numbers of buildings, comma-separated")
    ap.add_argument("--workers", default="1,2", help="numbers of dask workers, comma-separated")
    ap.add_argument("--years", default="2025-2031", help='years: "2025-2031", "2025" or "2025,2026"')
    ap.add_argument("--realisations", type=int, default=1000, help="Monte-Carlo realisations of the logic tree")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true",
                    help='reduced tree for checks: quadrature = "fast" and 2 Mmax branches instead of 6')
    ap.add_argument("--all-zones", "--tables-only", action="store_true",
                    help="time the table stage for all 160 V6 zones x 35 typologies instead of the region")
    ap.add_argument("--max-zones", "--zones", type=int, default=None, help="with --all-zones: only the first N zones")
    ap.add_argument("--strike", choices=("gauss", "uniform"), default="gauss",
                    help='[ground_motion] rupture_strike: the default Gaussian N(-30, 30) or "uniform"')
    ap.add_argument("--executor", choices=("threads", "processes"), default="threads",
                    help="with 2+ workers: the engine's thread pool (default, as hra runs) or a dask LocalCluster "
                         "of worker processes started by the benchmark")
    ap.add_argument("--model-dir", default=None, help="model tables (default: $HRA_MODEL_DIR)")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--warm", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.warm:  # child process: fill the numba cache
        warm_cache()
        return 0
    if args.case:  # child process: one case, JSON on the last stdout line
        kind, n, w, opts, inputs = json.loads(args.case)
        r = run_all_zones(w, opts, inputs) if kind == "all-zones" else run_case(n, w, opts, inputs)
        print(json.dumps(r))
        return 0

    from hra.api import demo_model_dir

    model_dir = str(demo_model_dir("groningen-v7", args.model_dir))  # fails early, naming HRA_MODEL_DIR
    opts = {"seed": args.seed, "realisations": args.realisations, "years": _years(args.years),
            "quick": bool(args.quick), "model_dir": model_dir, "max_zones": args.max_zones, "strike": args.strike,
            "executor": args.executor}
    sizes = [int(s) for s in args.buildings.split(",") if s]
    wlist = [int(w) for w in args.workers.split(",") if w]
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.platform()}")
    tree = "quick: fast quadrature, 2 Mmax" if args.quick else "full: standard quadrature, 6 Mmax"
    print(f"V7 demo: 2 source x Mmax x 72 GMM x 9 FCM ({tree}), years {opts['years'][0]}-{opts['years'][-1]}, "
          f"{args.realisations} realisations, mean + P50/P90; model tables {model_dir}")
    print(f"HRA_NUMBA_CACHE={os.environ.get('HRA_NUMBA_CACHE', '1')}; warming the numba cache ...", flush=True)
    t = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--warm"], check=True)
    print(f"  warm-up {time.perf_counter() - t:.1f} s", flush=True)
    results = []
    if args.all_zones:
        inputs = tempfile.mkdtemp(prefix="hra-bench-v7-zones-")
        for w in wlist:
            print(f"all-zones table stage with {w} worker(s) ...", flush=True)
            r = _spawn("all-zones", 0, w, opts, inputs)
            print(f"  {r['sites']} sites, {r['table_rows']} rows: tables {r['tables_s']:.1f} s", flush=True)
            results.append(r)
    else:
        for n in sizes:
            inputs = tempfile.mkdtemp(prefix=f"hra-bench-v7-{n}-")
            for w in wlist:
                print(f"running {n:,} buildings with {w} worker(s) ...", flush=True)
                r = _spawn("region", n, w, opts, inputs)
                print(f"  total {r['total_s']:.1f} s (tables {r['tables_s']:.1f} s, buildings {r['buildings_s']:.1f} s)",
                      flush=True)
                results.append(r)
    return finish(results, report, args.json)


if __name__ == "__main__":
    sys.exit(main())
