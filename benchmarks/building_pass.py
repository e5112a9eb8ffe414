"""Where a building's time goes: one chunk of the building pass of a field-benchmark work folder,
timed as the run computes it and with one part at a time taken away.

The variants of the same chunk (one thread, the same tables, each timed over ``--repeats`` passes):

* ``as run``: the chunk as the engine computes it;
* ``no quantiles``: ``[run] quantiles`` empty (the selection of P50/P90 per building and year skipped);
* ``one candidate``: every building's first typology candidate only (the contraction per further
  candidate: ``as run`` minus this, over the mean number of candidates less one);
* ``no cells in range``: the buildings moved 1,000 km east (the histogram's pass over the source cells
  remains; nothing to contract, no values to select);
* ``float64 tables`` / ``float32 tables``: the other precision of the tables q (``[run] table_precision``).

``--perf-map`` writes ``/tmp/perf-<pid>.map`` with the entry points of the compiled numba kernels
before the timed passes, so that ``perf report`` names them (run with ``HRA_NUMBA_CACHE=0``: kernels
loaded from numba's cache expose no entry points here, and the map is then empty)::

    python benchmarks/field_scale.py --buildings 20000 --zones 6 --workdir W --phases cold  # inputs + store
    python benchmarks/building_pass.py --workdir W                                         # the variants
    HRA_NUMBA_CACHE=0 perf record -F 1999 -o perf.data python benchmarks/building_pass.py --workdir W --perf-map
    perf report -i perf.data --no-children --sort symbol

Figures: ``benchmarks/README.md`` (the eighteenth stop of issue #12). Not part of the test suite
(``tests/test_benchmarks.py`` runs it on the ``--quick`` field case).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import finish, machine  # noqa: E402


def perf_map(path: str | None = None) -> tuple[str, int]:
    """Write the entry points of the compiled kernels of :mod:`hra.integration.kernels` as a perf map
    (``start size name`` per line, hex; each function taken to end where the next one starts; default
    ``/tmp/perf-<pid>.map``, where ``perf report`` looks). Returns the path and how many it wrote."""
    from numba.core.registry import CPUDispatcher

    from hra.integration import kernels

    syms = set()
    for name in dir(kernels):
        f = getattr(kernels, name)
        if not isinstance(f, CPUDispatcher):
            continue
        for cres in f.overloads.values():
            lib = cres.library
            module = getattr(lib, "_final_module", None)
            if module is None:
                continue
            for fn in module.functions:
                if fn.is_declaration:
                    continue
                try:
                    addr = lib.get_pointer_to_function(fn.name)
                except Exception:  # noqa: BLE001 - not every function of a module has an entry point
                    addr = 0
                if addr:
                    syms.add((addr, fn.name))
    ordered = sorted(syms)
    path = path or f"/tmp/perf-{os.getpid()}.map"
    with open(path, "w") as fh:
        for i, (addr, name) in enumerate(ordered):
            size = ordered[i + 1][0] - addr if i + 1 < len(ordered) else 4096
            fh.write(f"{addr:x} {size:x} {name}\n")
    return path, len(ordered)


def chunk_case(workdir: Path, n_buildings: int, zone: int | None = None):
    """The first ``n_buildings`` buildings of one zone of the work folder's run (default: the zone with
    the most buildings), its tables (read from the folder's table store, or computed) and what every
    chunk shares: ``(zone, chunk, static)``."""
    from hra.config import load_config
    from hra.integration import engine, tablestore

    cfg = load_config(workdir / "field.toml").with_updates(compute={"workers": 1, "progress": False})
    prep = engine.prepare(cfg)
    sel = engine.select_realisations(prep)
    site_zone = np.array([int(z) for z, _ in prep.sites], dtype=np.int64)[prep.site_index]
    if zone is None:
        zones, counts = np.unique(site_zone, return_counts=True)
        zone = int(zones[np.argmax(counts)])
    handle = tablestore.handle_for(prep, tablestore.store_for_config(cfg))
    tables = engine.build_tables(prep, sel, None, handle, zones=[zone])
    static = engine.make_static(prep, tables, sel)
    idx = np.flatnonzero(site_zone == zone)[:n_buildings]
    chunk = engine.make_chunks(prep, idx.size, tables.row_of, [idx])[0]
    return zone, chunk, static


def variants(chunk: dict, static) -> dict[str, tuple[dict, object]]:
    """The chunk and its statics for each variant (see the module docstring)."""
    from dataclasses import replace

    one = dict(chunk)
    prob = np.zeros_like(chunk["typ_prob"])
    prob[:, 0] = 1.0
    one["typ_prob"] = prob
    far = {**chunk, "x": chunk["x"] + 1e6}
    other = np.float64 if static.q.dtype == np.float32 else np.float32
    return {
        "as run": (chunk, static),
        "no quantiles": (chunk, replace(static, probs=np.zeros(0))),
        "one candidate": (one, static),
        "no cells in range": (far, static),
        f"{np.dtype(other).name} tables": (chunk, replace(static, q=np.ascontiguousarray(static.q, dtype=other))),
    }


def time_variants(cases: dict, repeats: int) -> dict[str, float]:
    """Thread CPU microseconds per building of each variant: the best of ``repeats`` rounds, each round
    one pass of every variant in turn (so that a machine's drift does not favour one variant), after
    one untimed pass of each (compilation, first touch)."""
    from hra.integration import engine

    best = {name: np.inf for name in cases}
    for name, (chunk, static) in cases.items():
        engine.run_chunk(chunk, static)
    for _ in range(repeats):
        for name, (chunk, static) in cases.items():
            t = time.thread_time()
            engine.run_chunk(chunk, static)
            best[name] = min(best[name], time.thread_time() - t)
    return {name: round(v / cases[name][0]["x"].size * 1e6, 1) for name, v in best.items()}


def report(res: dict) -> str:
    us = res["us_per_building"]
    base = us["as run"]
    extra = res["mean_candidates"] - 1.0
    lines = [f"{res['buildings']} buildings of zone {res['zone']}, {res['mean_candidates']:.2f} typology candidates "
             f"per building, tables q {res['q_shape']} {res['q_dtype']}; thread CPU us per building (best of "
             f"{res['repeats']}):"]
    for name, v in us.items():
        lines.append(f"  {name:>20s}  {v:10.1f}")
    lines.append(f"  quantile selection ~{base - us['no quantiles']:.0f} us; the histogram's pass over the cells "
                 f"~{us['no cells in range']:.0f} us (with the rest of a building without rows)")
    if extra > 0:
        per = (base - us["one candidate"]) / extra
        lines.append(f"  contraction ~{per:.0f} us per typology candidate (from the further candidates)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, required=True,
                    help="a work folder of benchmarks/field_scale.py (its field.toml, inputs and table store)")
    ap.add_argument("--buildings", type=int, default=400, help="buildings of the chunk (default 400)")
    ap.add_argument("--zone", type=int, default=None, help="their zone (default: the zone with the most buildings)")
    ap.add_argument("--repeats", type=int, default=3, help="timed passes per variant (the best is kept)")
    ap.add_argument("--perf-map", action="store_true", help="write /tmp/perf-<pid>.map of the numba kernels")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    a = ap.parse_args(argv)

    from hra.core.executor import single_thread_blas

    with single_thread_blas():
        zone, chunk, static = chunk_case(a.workdir, a.buildings, a.zone)
        cases = variants(chunk, static)
        from hra.integration import engine

        engine.run_chunk(chunk, static)  # compiled before the map is written
        mapped = perf_map() if a.perf_map else None
        us = time_variants(cases, a.repeats)
    res = {"machine": machine(), "workdir": str(a.workdir), "zone": zone, "buildings": int(chunk["x"].size),
           "mean_candidates": float(((chunk["typ_idx"] >= 0) & (chunk["typ_prob"] > 0)).sum(axis=1).mean()),
           "q_shape": list(static.q.shape), "q_dtype": static.q.dtype.name, "repeats": a.repeats,
           "us_per_building": us}
    if mapped is not None:
        res["perf_map"], res["perf_map_symbols"] = mapped
    return finish(res, report, a.json)


if __name__ == "__main__":
    sys.exit(main())
