"""The executor: threads in this process by default, worker processes or a dask scheduler on request.

The bit-identity of results across executors, workers and chunk sizes is checked in
tests/test_engine.py::test_results_independent_of_chunks_workers_and_executor and
tests/test_eventrisk.py::test_threads_and_processes_give_identical_results.
"""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from numba.core.registry import CPUDispatcher

from hra.config import ComputeSection
from hra.core.executor import Executor

ROOT = Path(__file__).resolve().parents[1]

#: Every module holding numba kernels that the engines call from their tasks.
KERNEL_MODULES = ("hra.integration.kernels", "hra.integration.condtables", "hra.eventbased.kernels",
                  "hra.eventbased.groningen", "hra.eventbased.risk", "hra.core.random", "hra.gmm.groningen_v7",
                  "fragility.lognormal")


def _thread_name(i: int, offset: int = 0) -> tuple[int, str]:
    return i + offset, threading.current_thread().name


def test_threads_run_tasks_on_worker_threads_in_order():
    with Executor("threads", workers=2) as ex:
        assert ex.parallel and ex.mode == "threads"
        out = ex.map(_thread_name, list(range(20)), shared={"offset": 100})
    assert [v for v, _ in out] == list(range(100, 120))
    names = {n for _, n in out}
    assert names and all(n.startswith("hra-worker") for n in names)
    assert threading.current_thread().name not in names


@pytest.mark.parametrize("kind,workers", [("threads", 1), ("synchronous", 4), ("processes", 1)])
def test_one_worker_or_synchronous_runs_in_the_caller(kind, workers):
    with Executor(kind, workers=workers) as ex:
        assert not ex.parallel and ex.mode == "synchronous"
        out = ex.map(_thread_name, [0, 1, 2])
    assert {n for _, n in out} == {threading.current_thread().name}


def _fail(i: int) -> int:
    if i == 3:
        raise ZeroDivisionError("task 3")
    return i


def test_a_failing_task_raises_in_the_caller():
    with pytest.raises(ZeroDivisionError, match="task 3"):
        with Executor("threads", workers=2) as ex:
            ex.map(_fail, list(range(8)))


def test_threads_log_progress(caplog):
    """Without a terminal the progress goes to log lines, also when threads run the tasks."""
    with caplog.at_level(logging.INFO, logger="hra"):
        with Executor("threads", workers=2, progress=False) as ex:
            ex.map(abs, list(range(-10, 10)), label="things")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("things:")]
    assert lines and lines[-1].startswith("things: 20/20")


def test_threads_draw_the_progress_bar(capsys):
    with Executor("threads", workers=2, progress=True) as ex:
        ex.map(abs, list(range(-5, 5)), label="things")
    err = capsys.readouterr()
    assert "things" in err.out + err.err and "10/10" in err.out + err.err


def test_every_engine_kernel_releases_the_gil():
    """Threads only run in parallel if each numba kernel the tasks call is compiled ``nogil``."""
    found = []
    for name in KERNEL_MODULES:
        mod = importlib.import_module(name)
        for attr, obj in vars(mod).items():
            if isinstance(obj, CPUDispatcher) and getattr(obj, "__module__", name) == name:
                found.append(f"{name}.{attr}")
                assert obj.targetoptions.get("nogil") is True, f"{name}.{attr} holds the GIL"
    assert "hra.integration.kernels.chunk_lpr" in found and "hra.core.random.event_normals" in found
    assert len(found) > 20


def test_compute_section_executor_keys():
    c = ComputeSection()
    assert c.executor == "threads" and c.scheduler is None
    assert ComputeSection(executor="processes", workers=2).executor == "processes"
    assert ComputeSection(scheduler="tcp://10.0.0.1:8786").scheduler == "tcp://10.0.0.1:8786"
    # the former scheduler words still read
    assert ComputeSection(scheduler="synchronous").executor == "synchronous"
    assert ComputeSection(scheduler="local").executor == "processes"
    assert ComputeSection(scheduler="auto") == ComputeSection()
    with pytest.raises(ValueError, match="not a dask.distributed scheduler address"):
        ComputeSection(scheduler="my laptop")
    with pytest.raises(ValueError, match="executor"):
        ComputeSection(executor="gpu")


def test_config_error_names_the_executor_key(tmp_path):
    from hra.config import ConfigError, load_config

    p = tmp_path / "run.toml"
    p.write_text('[compute]\nexecutor = "fibres"\n')
    with pytest.raises(ConfigError, match=r"compute\.executor"):
        load_config(p)


# -- plain scripts, stdin, python -c: the default (threads) needs no __main__ guard ---------------

SCRIPT = """\
import sys
import numpy as np
import hra

cfg = hra.load_config(sys.argv[1])
assert cfg.compute.executor == "threads" and cfg.compute.n_workers == 2, cfg.compute
ds = hra.run(cfg, progress=False, write=False)
np.save(sys.argv[2], ds["lpr_mean"].values)
print("OK", float(ds["lpr_mean"].sum()))
"""


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny config (23 buildings, 2 x 3 x 2 x 3 x 3 branches, 3 buildings per task) as a TOML file
    with only ``workers = 2`` in [compute], and its result computed serially in this process."""
    import tomli_w

    import hra
    from tests.test_engine import tree_config

    d = tmp_path_factory.mktemp("tiny")
    cfg = tree_config(d, realisations=50)
    data = cfg.model_dump(mode="json", exclude_none=True, exclude={"compute", "base_dir", "source_file"})
    data["compute"] = {"workers": 2, "chunk_buildings": 3, "progress": False}
    with open(d / "run.toml", "wb") as fh:
        tomli_w.dump(data, fh)
    serial = hra.load_config(d / "run.toml").with_updates(compute={"executor": "synchronous"})
    return d / "run.toml", hra.run(serial, progress=False, write=False)["lpr_mean"].values


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


@pytest.mark.parametrize("how", ["stdin", "-c"])
def test_unguarded_script_with_two_workers(tmp_path, how, tiny_run):
    """A script like the README's Python example, without an ``if __name__ == "__main__":`` guard,
    piped to ``python -`` or given to ``python -c``, runs with 2 workers (threads, the default) and
    gives the serial result to the bit."""
    config, reference = tiny_run
    out = tmp_path / "mean.npy"
    args = [str(config), str(out)]
    if how == "stdin":
        cmd, stdin = [sys.executable, "-", *args], SCRIPT
    else:
        cmd, stdin = [sys.executable, "-c", SCRIPT, *args], None
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, cwd=tmp_path, env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.startswith("OK")
    got = np.load(out)
    assert got.shape == reference.shape and reference.max() > 0
    np.testing.assert_array_equal(got, reference)


def _malloc_env(_item) -> tuple:
    return os.environ.get("MALLOC_TRIM_THRESHOLD_"), os.environ.get("MALLOC_MMAP_THRESHOLD_"), os.environ.get(
        "OPENBLAS_NUM_THREADS")


def test_worker_processes_start_with_malloc_settings_for_large_arrays():
    """dask starts workers with MALLOC_TRIM_THRESHOLD_=65536, which makes every array over 128 KiB fresh
    pages (the V7 table stage then costs ~1.6x the CPU); ours keep them on the heap, and dask's own
    settings (BLAS on one thread) stay."""
    from hra.core.executor import WORKER_MALLOC_ENV, worker_environ

    env = worker_environ()
    assert env["OPENBLAS_NUM_THREADS"] == 1 and env["MALLOC_TRIM_THRESHOLD_"] == 1 << 28
    with Executor("processes", workers=2) as ex:
        assert ex.mode == "processes"
        got = set(ex.map(_malloc_env, [0, 1, 2, 3]))
    assert got == {(str(WORKER_MALLOC_ENV["MALLOC_TRIM_THRESHOLD_"]), str(WORKER_MALLOC_ENV["MALLOC_MMAP_THRESHOLD_"]), "1")}
