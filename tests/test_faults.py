"""Faults (issue #13 item 4): a run killed at any moment, restarted, or losing its cluster.

* The output set (zarr store and CSV) is committed together: a subprocess killed (``os._exit(137)``,
  as ``kill -9``) at every named step of the commit leaves the complete earlier set (kills before
  the commit journal exists) or, once the next reader rolls the journal forward, the complete
  new set; the references are the two sets written whole by the same code (byte-identical files,
  compared by SHA-256). The next run cleans every leftover and succeeds.
* A run killed after K building chunks resumes from them: the rerun computes only the others
  (log line and counter) and equals an uninterrupted run to the bit.
* Cluster faults with an external scheduler: a worker killed mid-run (its nanny starts another)
  costs nothing (bit-identical to the serial run); all workers lost gives a clear error naming the
  address within the watchdog time (exit 2 from the CLI); a lost scheduler gives one message and
  no traceback.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import hra
from hra.api import write_outputs
from hra.core.fileio import KILL_ENV, NO_EXCHANGE_ENV, recover, sha256_file
from hra.outputs import write_dataset
from hra.review.tables import open_run

ROOT = Path(__file__).resolve().parents[1]


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.pop(KILL_ENV, None)
    env.pop(NO_EXCHANGE_ENV, None)
    env.update(extra)
    return env


def _toml(cfg, path: Path, compute: dict, output: dict | None = None) -> Path:
    import tomli_w

    data = cfg.model_dump(mode="json", exclude_none=True, exclude={"compute", "output", "base_dir", "source_file"})
    data["compute"] = compute
    if output:
        data["output"] = output
    with open(path, "wb") as fh:
        tomli_w.dump(data, fh)
    return path


# ------------------------------------------------------------------------------------------
# the output set under kill -9
# ------------------------------------------------------------------------------------------

CHILD = """
import sys
import xarray as xr
from hra.api import write_outputs
ds = xr.open_zarr(sys.argv[1]).load()
write_outputs(ds, sys.argv[2], sys.argv[3], None, True, obsolete=[sys.argv[4]])
print("completed")
"""


def _set_hash(folder: Path) -> tuple[str, str]:
    return sha256_file(folder / "risk.zarr"), sha256_file(folder / "risk.csv")


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory):
    """Two different risk Datasets (zarr sources) and the output sets written whole from them."""
    from tests.test_engine import tree_config

    d = tmp_path_factory.mktemp("sets")
    sets = {}
    for name, real in (("old", "all"), ("new", 30)):
        cfg = tree_config(d / f"in-{name}", realisations=real)
        ds = hra.run(cfg, progress=False, write=False)
        src = d / f"src-{name}.zarr"
        write_dataset(ds, src)
        ref = d / f"ref-{name}"
        ref.mkdir()
        write_outputs(xr.open_zarr(src).load(), ref / "risk.zarr", ref / "risk.csv", None, True)
        sets[name] = (src, ref, _set_hash(ref))
    assert sets["old"][2][0] != sets["new"][2][0] and sets["old"][2][1] != sets["new"][2][1]
    return sets


#: (kill point, exchange available, which set a reader then finds). Before the journal exists the
#: earlier set; after, the new one (rolled forward).
KILL_POINTS = [
    ("outputs-written-0", True, "old"),  # zarr written to its temporary, CSV not yet
    ("commit-staged", True, "old"),
    ("commit-journal-tmp", True, "old"),
    ("commit-journaled", True, "new"),
    ("commit-swapped-0", True, "new"),  # new zarr in place, old one not yet removed, CSV old
    ("commit-installed-0", True, "new"),
    ("commit-installed-1", True, "new"),
    ("commit-done", True, "new"),
    ("commit-aside-0", False, "new"),  # without the exchange: old zarr moved aside, new not yet in
    ("commit-installed-0", False, "new"),
]


PARTIAL = ".risk.zarr.partial"


def _case(point: str, exchange: bool) -> str:
    return f"{point}{'' if exchange else '-no-exchange'}"


@pytest.fixture(scope="module")
def killed(two_sets, tmp_path_factory):
    """One subprocess per kill point, run side by side, each writing the new set over a copy of
    the old one in its own folder and dying at its point; returns case -> (folder, return code, stderr)."""
    base = tmp_path_factory.mktemp("killed")
    procs = {}
    for point, exchange, _ in KILL_POINTS:
        d = base / _case(point, exchange)
        shutil.copytree(two_sets["old"][1], d)
        (d / PARTIAL).mkdir()  # chunk checkpoints of the run, obsolete once its outputs are committed
        (d / PARTIAL / "chunk-00000.npz").write_bytes(b"x")
        env = _env(**{KILL_ENV: point}, **({} if exchange else {NO_EXCHANGE_ENV: "1"}))
        procs[_case(point, exchange)] = (d, subprocess.Popen(
            [sys.executable, "-c", CHILD, str(two_sets["new"][0]), str(d / "risk.zarr"), str(d / "risk.csv"),
             str(d / PARTIAL)],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True))
    out = {}
    for case, (d, proc) in procs.items():
        _, err = proc.communicate(timeout=300)
        out[case] = (d, proc.returncode, err)
    return out


@pytest.mark.parametrize("point,exchange,expect", KILL_POINTS, ids=[_case(p, x) for p, x, _ in KILL_POINTS])
def test_kill_during_output_commit_leaves_a_whole_set(two_sets, killed, point, exchange, expect):
    new_hash, old_hash = two_sets["new"][2], two_sets["old"][2]
    d, rc, err = killed[_case(point, exchange)]
    assert rc == 137, err[-2000:]  # killed at the point, not before or after
    if exchange:  # the store never ceases to exist, even before any recovery
        assert (d / "risk.zarr" / ".zmetadata").is_file()
    if expect == "old":  # untouched: readable as it is
        assert _set_hash(d) == old_hash
    # any reader finishes an interrupted commit first
    ds = open_run(d / "risk.zarr")
    assert _set_hash(d) == (new_hash if expect == "new" else old_hash)
    # no temporary, backup or journal left; the checkpoints go with the commit (kept if it never began)
    assert sorted(os.listdir(d)) == [PARTIAL] * (expect == "old") + ["risk.csv", "risk.zarr"]
    assert ds["lpr_mean"].size > 0
    # and the next run succeeds
    write_outputs(xr.open_zarr(two_sets["old"][0]).load(), d / "risk.zarr", d / "risk.csv", None, True,
                  obsolete=[d / PARTIAL])
    assert _set_hash(d) == old_hash and sorted(os.listdir(d)) == ["risk.csv", "risk.zarr"]


def test_first_commit_killed_is_rolled_forward_by_the_next_run(tmp_path, two_sets):
    """No earlier outputs; killed with the journal written: nothing is in place yet, and
    :func:`recover` (what every run and reader calls first) installs the complete new set."""
    src_new, _, new_hash = two_sets["new"]
    d = tmp_path / "out"
    d.mkdir()
    proc = subprocess.run([sys.executable, "-c", CHILD, str(src_new), str(d / "risk.zarr"), str(d / "risk.csv"),
                           str(d / PARTIAL)],
                          env=_env(**{KILL_ENV: "commit-journaled"}), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 137, proc.stderr[-2000:]
    assert not (d / "risk.zarr").exists() and any(n.startswith(".hra-commit-") for n in os.listdir(d))
    recover(d)
    assert _set_hash(d) == new_hash and sorted(os.listdir(d)) == ["risk.csv", "risk.zarr"]


# ------------------------------------------------------------------------------------------
# resume
# ------------------------------------------------------------------------------------------


def test_killed_run_resumes_from_its_chunks(tmp_path, caplog):
    """23 buildings in 8 chunks of 3; killed (kill -9) after 3 chunks were saved; the rerun reads
    the 3 chunks (and the tables from the store), computes 5 and equals an uninterrupted run."""
    from tests.test_engine import tree_config

    cfg = tree_config(tmp_path / "in", realisations=40, run={"keep_realisations": True})
    out = tmp_path / "out"
    out.mkdir()
    compute = {"workers": 1, "chunk_buildings": 3, "progress": False, "table_store": str(tmp_path / "store")}
    toml = _toml(cfg, tmp_path / "in" / "run.toml", compute,
                 {"path": str(out / "risk.zarr"), "csv": str(out / "risk.csv"), "overwrite": True})
    proc = subprocess.run([sys.executable, "-m", "hra.cli", "run", str(toml)], env=_env(**{KILL_ENV: "chunk-3"}),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 137, proc.stderr[-2000:]
    partial = out / ".risk.zarr.partial"
    assert sorted(p.name for p in partial.glob("chunk-*.npz")) == [f"chunk-0000{i}.npz" for i in range(3)]
    assert not (out / "risk.zarr").exists()

    caplog.set_level(logging.INFO, logger="hra")
    resumed = hra.run(hra.load_config(toml), progress=False)
    text = caplog.text
    assert "resuming: 3 of 8 building chunks done" in text
    assert "building chunks: 5 computed, 3 read from the checkpoint" in text
    assert ", 0 written" in text  # every table came from the store
    assert not partial.exists()  # removed once the outputs are committed
    whole = hra.run(hra.load_config(toml).with_updates(compute={"resume": False}), progress=False, write=False)
    for name in ("lpr_mean", "lpr_p50", "lpr_p90", "lpr_realisations", "realisation_weight"):
        np.testing.assert_array_equal(resumed[name].values, whole[name].values)
    np.testing.assert_array_equal(xr.open_zarr(out / "risk.zarr")["lpr_mean"].values, whole["lpr_mean"].values)


def test_a_changed_run_never_reads_stale_chunks(tmp_path, caplog):
    """Chunks saved under another key (another config, input or code version) are discarded."""
    from hra.integration.checkpoint import Checkpoint
    from tests.test_engine import tree_config

    cfg = tree_config(tmp_path / "in", realisations=20).with_updates(
        compute={"workers": 1, "chunk_buildings": 5, "progress": False, "table_store": False},
        output={"path": str(tmp_path / "risk.zarr")})
    stale = Checkpoint(tmp_path / ".risk.zarr.partial", {"config_sha256": "another run"})
    for i in range(5):
        stale.save(i, {"mean": np.zeros((5, 2)), "q": np.zeros((5, 2, 2)), "real": np.zeros((5, 2, 0)),
                       "real_w": np.zeros((5, 0))})
    caplog.set_level(logging.INFO, logger="hra")
    got = hra.run(cfg, progress=False)
    assert "resuming" not in caplog.text and "5 computed, 0 read" in caplog.text
    ref = hra.run(cfg.with_updates(compute={"resume": False}), progress=False, write=False)
    np.testing.assert_array_equal(got["lpr_mean"].values, ref["lpr_mean"].values)
    assert got["lpr_mean"].values.max() > 0 and not (tmp_path / ".risk.zarr.partial").exists()


# ------------------------------------------------------------------------------------------
# cluster faults
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def process_cluster():
    """A LocalCluster of 2 worker processes (with nannies, which restart a killed worker)."""
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                      silence_logs=logging.ERROR) as cluster:
        yield cluster


def test_worker_killed_mid_run_costs_no_data(tmp_path, process_cluster, monkeypatch):
    """kill -9 of a worker process when the first building chunk arrives: the run completes with
    the serial result to the bit (dask reruns the lost tasks; the nanny restarts the worker)."""
    from dask.distributed import Client

    import hra.integration.checkpoint as checkpoint
    from tests.test_engine import tree_config

    cfg = tree_config(tmp_path / "in", realisations=40)
    serial = hra.run(cfg.with_updates(compute={"executor": "synchronous"}), progress=False, write=False)
    with Client(process_cluster.scheduler_address) as c:
        pids = list(c.run(os.getpid).values())
    assert len(pids) == 2
    killed = []
    save = checkpoint.Checkpoint.save

    def save_and_kill(self, i, result):
        if not killed:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])
        save(self, i, result)

    monkeypatch.setattr(checkpoint.Checkpoint, "save", save_and_kill)
    run_cfg = cfg.with_updates(compute={"scheduler": process_cluster.scheduler_address, "chunk_buildings": 2,
                                        "progress": False, "table_store": False},
                               output={"path": str(tmp_path / "risk.zarr")})
    got = hra.run(run_cfg, progress=False)
    assert killed
    for name in ("lpr_mean", "lpr_p50", "lpr_p90"):
        np.testing.assert_array_equal(got[name].values, serial[name].values)
    with Client(process_cluster.scheduler_address) as c:  # a worker is back
        c.wait_for_workers(2, timeout=60)


def test_all_workers_lost_fails_within_the_watchdog_time(process_cluster):
    """Every worker retired mid-map: a ClusterError naming the address after no_workers_timeout_s."""
    from hra.core.executor import ClusterError, Executor

    addr = process_cluster.scheduler_address
    t0 = []

    def lose_all(i, value):
        if not t0:
            process_cluster.scale(0)
            t0.append(time.monotonic())

    with Executor(scheduler=addr, no_workers_timeout_s=2) as ex:
        with pytest.raises(ClusterError, match=f"scheduler {addr} has had no workers for 2 s.*dask worker"):
            ex.map(time.sleep, [0.2] * 30, on_result=lose_all)
    assert time.monotonic() - t0[0] < 30


def test_cli_exit_2_when_the_scheduler_has_no_workers(tmp_path):
    from dask.distributed import LocalCluster
    from typer.testing import CliRunner

    from hra.cli import app
    from tests.test_engine import tree_config

    cfg = tree_config(tmp_path / "in", realisations=10)
    with LocalCluster(n_workers=0, processes=False, dashboard_address=":0") as cluster:
        toml = _toml(cfg, tmp_path / "in" / "run.toml", {"no_workers_timeout_s": 1, "table_store": False})
        t0 = time.monotonic()
        res = CliRunner().invoke(app, ["run", str(toml), "--scheduler", cluster.scheduler_address])
    assert res.exit_code == 2, res.output
    assert f"dask scheduler {cluster.scheduler_address} has had no workers" in res.output
    assert "Traceback" not in res.output and time.monotonic() - t0 < 60


SCHEDULER = """
import time
from dask.distributed import LocalCluster
c = LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=":0", protocol="tcp://")
print(c.scheduler_address, flush=True)
time.sleep(300)
"""

CLIENT = """
import sys, time
import typer
from hra.cli.common import cli_errors
from hra.core.executor import Executor
try:
    with cli_errors():
        with Executor(scheduler=sys.argv[1]) as ex:
            ex.map(time.sleep, [0.3] * 60, on_result=lambda i, v: print("result", i, flush=True))
except typer.Exit as e:
    sys.exit(e.exit_code)
"""


def test_scheduler_death_gives_one_message_and_no_traceback(tmp_path):
    sched = subprocess.Popen([sys.executable, "-c", SCHEDULER], stdout=subprocess.PIPE, text=True, env=_env())
    try:
        addr = sched.stdout.readline().strip()
        assert addr.startswith("tcp://")
        client = subprocess.Popen([sys.executable, "-c", CLIENT, addr], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, env=_env())
        for line in client.stdout:
            if line.startswith("result 2"):
                break
        sched.kill()
        t0 = time.monotonic()
        _, err = client.communicate(timeout=90)
    finally:
        sched.kill()
        sched.wait()
    assert client.returncode == 2, err
    assert time.monotonic() - t0 < 60
    assert "Traceback" not in err and "distributed.client" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and f"lost the connection to the dask scheduler {addr}" in lines[0], err
