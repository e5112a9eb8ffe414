"""hra.core.fileio: atomic writes of files and folders, target checks, checksums."""

import hashlib
import os

import pytest

from hra.core.fileio import atomic_path, atomic_write, check_target, sha256_file


def test_atomic_write_file_and_failure_leaves_nothing(tmp_path):
    target = tmp_path / "a.csv"
    atomic_write(target, lambda p: p.write_text("x,y\n1,2\n"))
    assert target.read_text() == "x,y\n1,2\n"

    def broken(p):
        p.write_text("half")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        atomic_write(target, broken, overwrite=True)
    assert target.read_text() == "x,y\n1,2\n"  # old content kept
    assert sorted(os.listdir(tmp_path)) == ["a.csv"]  # no temporary left behind


def test_atomic_write_replaces_a_folder(tmp_path):
    target = tmp_path / "store.zarr"
    target.mkdir()
    (target / "old").write_text("old")

    def write(p):
        p.mkdir()
        (p / "new").write_text("new")

    with pytest.raises(OSError, match="already exists.*--overwrite"):
        atomic_write(target, write, overwrite=False, overwrite_hint="pass --overwrite")
    atomic_write(target, write, overwrite=True)
    assert sorted(os.listdir(target)) == ["new"] and sorted(os.listdir(tmp_path)) == ["store.zarr"]


def test_check_target_errors_name_path_and_fix(tmp_path):
    class MyError(ValueError):
        pass

    with pytest.raises(MyError, match=r"missing does not exist; create the folder"):
        check_target(tmp_path / "missing" / "x.csv", error=MyError)
    (tmp_path / "f").write_text("")
    with pytest.raises(MyError, match="is not a directory"):
        check_target(tmp_path / "f" / "x.csv", error=MyError)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]


def test_written_file_honours_umask(tmp_path):
    old = os.umask(0o027)
    try:
        with atomic_path(tmp_path / "u.txt") as p:
            p.write_text("u")
    finally:
        os.umask(old)
    assert (tmp_path / "u.txt").stat().st_mode & 0o777 == 0o640


def test_sha256_file_and_folder(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"abc" * 1000)
    assert sha256_file(f) == hashlib.sha256(b"abc" * 1000).hexdigest()
    d = tmp_path / "d"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "x").write_bytes(b"1")
    (d / "y").write_bytes(b"22")
    expected = hashlib.sha256(b"sub/x" + b"1" + b"y" + b"22").hexdigest()
    assert sha256_file(d) == expected


def _dead_pid() -> int:
    import subprocess

    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_leftovers_of_dead_processes_are_removed_live_ones_kept(tmp_path):
    from hra.core.fileio import _HOST, recover

    dead, live = _dead_pid(), os.getpid()
    (tmp_path / "risk.zarr").mkdir()
    (tmp_path / f".risk.zarr.tmp-{_HOST}-{dead}-ab_1").mkdir()  # a dead run's temporary folder
    (tmp_path / f".risk.csv.tmp-{_HOST}-{live}-cd2").mkdir()  # this (live) process's own
    (tmp_path / f".risk.csv.tmp-otherhost-{dead}-ef3").mkdir()  # another host's: cannot tell
    (tmp_path / f".plan.csv.old-{_HOST}-{dead}").write_text("earlier")  # backup whose target is gone
    (tmp_path / f".risk.zarr.old-{_HOST}-{dead}").mkdir()  # backup of a present target
    recover(tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted([
        "risk.zarr", f".risk.csv.tmp-{_HOST}-{live}-cd2", f".risk.csv.tmp-otherhost-{dead}-ef3", "plan.csv"])
    assert (tmp_path / "plan.csv").read_text() == "earlier"


def test_output_set_failing_writer_keeps_the_earlier_set(tmp_path):
    from hra.core.fileio import OutputSet

    (tmp_path / "a.csv").write_text("old a")
    (tmp_path / "b.zarr").mkdir()
    (tmp_path / "b.zarr" / "x").write_text("old b")
    with pytest.raises(RuntimeError, match="boom"):
        with OutputSet([tmp_path / "a.csv", tmp_path / "b.zarr"]) as outs:
            outs.path(tmp_path / "a.csv").write_text("new a")
            raise RuntimeError("boom")
    assert (tmp_path / "a.csv").read_text() == "old a" and (tmp_path / "b.zarr" / "x").read_text() == "old b"
    assert sorted(os.listdir(tmp_path)) == ["a.csv", "b.zarr"]
    with OutputSet([tmp_path / "a.csv", tmp_path / "b.zarr"]) as outs:
        outs.path(tmp_path / "a.csv").write_text("new a")
        outs.path(tmp_path / "b.zarr").mkdir()
        (outs.path(tmp_path / "b.zarr") / "y").write_text("new b")
        outs.commit()
    assert (tmp_path / "a.csv").read_text() == "new a" and os.listdir(tmp_path / "b.zarr") == ["y"]
    assert sorted(os.listdir(tmp_path)) == ["a.csv", "b.zarr"]
