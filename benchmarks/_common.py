"""What the benchmark scripts share: child-process cases, peak memory, the figure tables, JSON
output and the OpenQuake run-and-export step. Not part of the package or the test suite."""

from __future__ import annotations

import json
import re
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence

MIB = 1024.0  # ru_maxrss is in KiB on Linux (bytes on macOS)
if sys.platform == "darwin":  # pragma: no cover
    MIB = 1024.0 * 1024.0


def peak_mib(who: int) -> float:
    """Peak resident memory of this process or its children (``resource.RUSAGE_*``). [MiB]"""
    return resource.getrusage(who).ru_maxrss / MIB


def worker_peak_kib() -> int:
    """Peak resident memory of the calling process (run on dask workers). [KiB on Linux]"""
    import resource as _r

    return _r.getrusage(_r.RUSAGE_SELF).ru_maxrss


def spawn_case(script: str, case: Sequence[Any], label: str) -> dict:
    """Run ``script --case JSON`` in a fresh interpreter; the case prints its figures as JSON on its
    last stdout line (so each case has its own peak memory and a cold dask)."""
    cmd = [sys.executable, script, "--case", json.dumps(list(case))]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"case {label} failed (exit {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def table(rows: list[list[Any]], header: list[str]) -> str:
    """A plain right-aligned text table."""
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).rjust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def finish(results: Any, report: Callable[[Any], str] | None, json_path: Path | None) -> int:
    """Print the report of the results (if any) and write them as JSON (if asked); exit status 0."""
    if report is not None:
        print()
        print(report(results))
    if json_path:
        json_path.write_text(json.dumps(results, indent=2 if report is not None else 1))
        print(f"\nwrote {json_path}")
    return 0


def machine() -> dict:
    """What a benchmark's figures depend on besides the code: the processor, its widest vector
    instructions (what numba and OpenBLAS compile for), and two reference speeds of one core - a
    float64 matrix product (OpenBLAS, 1 thread; GFLOP/s) and a sum over 100 MB (GB/s, memory bound).
    The same code ran ~2.8x slower on a 2.0 GHz AVX2 EPYC than on an AVX-512 one (benchmarks/README.md):
    compare figures of different machines through these."""
    import platform

    import numpy as np

    from hra.core.executor import single_thread_blas

    cpu, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name") and cpu in ("", platform.machine(), platform.processor()):
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    break
    except OSError:
        pass
    isa = next((n for n in ("avx512f", "avx2", "avx", "sse4_2") if n in flags), "unknown")
    try:
        import llvmlite.binding as llvm

        target = llvm.get_host_cpu_name()
    except Exception:  # noqa: BLE001 - informative only
        target = "unknown"
    rng = np.random.default_rng(0)
    a, b = rng.random((1000, 1000)), rng.random((1000, 1000))
    with single_thread_blas():
        best = min(_timed(lambda: a @ b) for _ in range(3))
    x = rng.random(12_500_000)
    sweep = min(_timed(lambda: x.sum()) for _ in range(3))
    return {"cpu": cpu, "isa": isa, "llvm_cpu": target, "dgemm_gflops_1thread": round(2e9 / best / 1e9, 1),
            "sum_gb_per_s": round(x.nbytes / sweep / 1e9, 1)}


def _timed(f: Callable[[], Any]) -> float:
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def show(obj: Any) -> Any:
    """Print a result as indented JSON as soon as it is there, and return it."""
    print(json.dumps(obj, indent=1), flush=True)
    return obj


def run_oq(job: Path, export_dir: Path, env: dict, log: Path, reuse: bool = False, oq: str = "oq") -> float:
    """Run an OpenQuake job (timed), then export its outputs as CSV (not timed); returns the wall
    time of the run [s]. With ``reuse``, earlier outputs and their recorded wall time are used."""
    stamp = export_dir / "wall_s.txt"
    if reuse and stamp.exists():
        return float(stamp.read_text())
    export_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        subprocess.run([oq, "engine", "--run", str(job)], cwd=job.parent, env=env, stdout=fh, stderr=subprocess.STDOUT,
                       check=True)
    wall = time.perf_counter() - t0
    calc = re.findall(r"calc_(\d+)\.hdf5", log.read_text())[-1]
    with open(log, "a") as fh:
        subprocess.run([oq, "engine", "--eos", calc, str(export_dir)], cwd=job.parent, env=env, stdout=fh,
                       stderr=subprocess.STDOUT, check=True)
    stamp.write_text(f"{wall:.3f}")
    return wall
