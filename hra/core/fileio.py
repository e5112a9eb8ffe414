"""File helpers shared by every layer: atomic writing of files and folders, and checksums.

One convention for every output the package writes (risk datasets, CSV tables, plans, registers,
NPR 9998 reports): the target is checked before any work is done (:func:`check_target`), the
content is written to a temporary path in a fresh hidden folder beside the target, and that path
is renamed onto the target only when the writer has finished (:func:`atomic_write`,
:func:`atomic_path`). A failed or interrupted write therefore never leaves a half-written result
where a reader would look, and the temporary folder is always removed. Files are created by the
writer inside that folder, so they get the usual permissions of the process umask.

Several outputs of one run (the zarr store, the CSV summary, the GeoPackage) are committed
together by :class:`OutputSet`: a killed run leaves the complete earlier set or, once the pending
commit journal is rolled forward (:func:`recover`, which every run and reader calls first), the
complete new set. Temporary names carry the host name and process id (``.<name>.tmp-<host>-<pid>-XXXX``),
so that leftovers of dead processes are recognised and removed.
"""

from __future__ import annotations

import ctypes
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

__all__ = ["OutputSet", "atomic_path", "atomic_write", "check_target", "kill_point", "recover", "sha256_file"]

log = logging.getLogger("hra")

#: Environment variable of the fault tests: the name of a :func:`kill_point` at which the process dies.
KILL_ENV = "HRA_TEST_KILL_AT"
#: Environment variable of the fault tests: ``1`` replaces folders without the atomic exchange (the fallback path).
NO_EXCHANGE_ENV = "HRA_TEST_NO_EXCHANGE"
#: Name prefix of the commit journals (``.hra-commit-<host>-<pid>.json``) beside the outputs of a commit.
JOURNAL_PREFIX = ".hra-commit-"

_HOST = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname()) or "host"


def kill_point(name: str) -> None:
    """Die here (``os._exit(137)``, as ``kill -9``) when ``$HRA_TEST_KILL_AT`` equals ``name``.

    Only the fault tests set the variable: they kill a subprocess at each named step of a commit
    or of the building loop and check what it leaves behind.

    Parameters
    ----------
    name
        Name of this point (e.g. ``"commit-journaled"``, ``"chunk-3"``).
    """
    if os.environ.get(KILL_ENV) == name:
        sys.stderr.flush()
        os._exit(137)


def owner_tag() -> str:
    """``<host>-<pid>`` of this process: the part of temporary names that tells whose they are."""
    return f"{_HOST}-{os.getpid()}"


def _owner_alive(host: str, pid: int) -> bool:
    """Whether the process that owns a temporary name may still be running (another host: assumed so)."""
    if host != _HOST:
        return True
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def check_target(
    path: str | os.PathLike,
    overwrite: bool = False,
    *,
    error: Callable[[str], Exception] = OSError,
    overwrite_hint: str = "pass overwrite=True",
) -> Path:
    """Fail early when ``path`` cannot be written.

    The parent must be an existing folder in which a file can actually be created (a probe file is
    created and removed: ``os.access`` says yes to root on read-only mounts), and an existing
    target needs ``overwrite``.

    Parameters
    ----------
    path
        The target file or folder.
    overwrite
        Whether an existing target may be replaced.
    error
        Exception class (or factory) raised with the message, e.g. the caller's own error type.
    overwrite_hint
        How the user allows overwriting, for the message (e.g. ``"pass --overwrite"``).

    Returns
    -------
    pathlib.Path
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise error(f"cannot write {path}: folder {parent} {what}; create the folder or choose another path")
    if path.exists() and not overwrite:
        raise error(f"{path} already exists; remove it, choose another path or {overwrite_hint}")
    try:
        fd, probe = tempfile.mkstemp(prefix=".hra-write-probe-", dir=parent)
    except OSError as exc:
        raise error(f"cannot write {path}: folder {parent} is not writable ({exc.strerror}); "
                    "choose a writable output path") from None
    os.close(fd)
    os.unlink(probe)
    return path


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2(RENAME_EXCHANGE)``); False where the
    system or file system does not offer it."""
    if sys.platform != "linux" or os.environ.get(NO_EXCHANGE_ENV) == "1":
        return False
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def _remove(path: Path) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _backup_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.old-{owner_tag()}")


def _install(staged: Path, target: Path, backup: Path, step: str = "") -> None:
    """Move the complete ``staged`` file or folder onto ``target``.

    A file replaces the target in one ``rename(2)``. An existing folder (a zarr store) cannot be
    replaced by a rename, so the two folders are exchanged in one atomic ``renameat2`` (Linux),
    after which ``staged`` holds the old content and is removed: ``target`` never ceases to exist.
    Where the exchange is not available the old folder is renamed to ``backup`` and the new one
    moved in (two renames; a commit journal, :class:`OutputSet`, makes a kill between them
    recoverable) and ``backup`` removed.
    """
    if os.path.isdir(target) and not os.path.islink(target):
        if _exchange(staged, target):
            kill_point(f"commit-swapped{step}")
            _remove(staged)
            return
        os.replace(target, backup)
        kill_point(f"commit-aside{step}")
        os.replace(staged, target)
        _remove(backup)
    else:
        os.replace(staged, target)


def _replace(tmp: Path, path: Path) -> None:
    """Move ``tmp`` onto ``path`` (:func:`_install`)."""
    _install(tmp, path, _backup_name(path))


def _stage_folder(path: Path) -> Path:
    """A fresh hidden folder ``.<name>.tmp-<host>-<pid>-XXXX`` beside ``path``."""
    return Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-{owner_tag()}-", dir=path.parent if str(path.parent) else "."))


@contextmanager
def atomic_path(
    path: str | os.PathLike,
    overwrite: bool = True,
    *,
    error: Callable[[str], Exception] = OSError,
    overwrite_hint: str = "pass overwrite=True",
) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is renamed onto ``path``.

    The temporary path ``.<name>.tmp-<host>-<pid>-XXXX/<name>`` lies in a fresh hidden folder beside ``path``
    (same file system, so the rename is atomic), and keeps the target's name and suffix (writers
    that choose the format by suffix still work). The folder is removed whatever happens. The
    body may write a file or a folder. The target is checked first (:func:`check_target`).

    Parameters
    ----------
    path
        The target file or folder.
    overwrite, error, overwrite_hint
        As in :func:`check_target`.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "a.txt"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> target.read_text()
    'done'
    """
    path = check_target(path, overwrite, error=error, overwrite_hint=overwrite_hint)
    recover(path.parent if str(path.parent) else Path("."))
    folder = _stage_folder(path)
    tmp = folder / path.name
    try:
        yield tmp
        if not os.path.lexists(tmp):
            raise error(f"cannot write {path}: the writer produced nothing")
        if path.exists() and not overwrite:  # appeared while writing
            raise error(f"{path} already exists; remove it, choose another path or {overwrite_hint}")
        _replace(tmp, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def atomic_write(
    path: str | os.PathLike,
    writer: Callable[[Path], object],
    overwrite: bool = False,
    *,
    error: Callable[[str], Exception] = OSError,
    overwrite_hint: str = "pass overwrite=True",
) -> Path:
    """Write a file or folder atomically: ``writer(tmp)`` writes a temporary path, then it is renamed.

    Parameters
    ----------
    path
        The target file or folder.
    writer
        Called with the temporary path (same name and suffix as ``path``); writes the content.
    overwrite, error, overwrite_hint
        As in :func:`check_target`; the target is checked before ``writer`` runs.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    with atomic_path(path, overwrite, error=error, overwrite_hint=overwrite_hint) as tmp:
        writer(tmp)
    return Path(path)


# ------------------------------------------------------------------------------------------
# output sets: several files and folders committed together
# ------------------------------------------------------------------------------------------

_STALE = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<host>[A-Za-z0-9._]+)-(?P<pid>\d+)(?:-[A-Za-z0-9_]+)?$")
_JOURNAL = re.compile(r"^\.hra-commit-(?P<host>[A-Za-z0-9._]+)-(?P<pid>\d+)\.json(?P<tmp>\.tmp)?$")


def _ident(path: Path) -> list[int] | None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    return [st.st_dev, st.st_ino]


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. a platform without directory descriptors
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    """Flush a written file, or every file and folder of a written folder, to the disk."""
    paths = [path] if not path.is_dir() else [p for p in path.rglob("*")] + [path]
    for p in paths:
        if p.is_dir():
            _fsync_dir(p)
        elif p.is_file():
            fd = os.open(p, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


def _roll_forward(journal: dict[str, Any]) -> None:
    """Finish the commit a journal describes (idempotent: each step checks where the new content is).

    The journal records the inode of each staged item; renames keep it, so a target that already
    has it is installed, and a staged path that still has it is installed now. Leftovers (the
    old content after an exchange, a backup, the staging folder) are removed.
    """
    for st in journal["steps"]:
        target, staged, backup, stage_dir = (Path(st[k]) for k in ("target", "staged", "backup", "stage_dir"))
        new = st["inode"]
        if _ident(target) == new:
            pass
        elif _ident(staged) == new:
            _install(staged, target, backup)
        elif not os.path.lexists(target) and os.path.lexists(backup):  # new content lost: keep the old
            os.replace(backup, target)
            log.warning("commit journal: the new %s was lost; the earlier one is kept", target)
        _remove(backup)
        _remove(stage_dir)
    for p in journal.get("obsolete", ()):
        _remove(Path(p))
    for j in journal["journals"]:
        _remove(Path(j))


def recover(folder: str | os.PathLike) -> int:
    """Roll forward the pending commits of dead runs in ``folder`` and remove their leftovers.

    A commit journal ``.hra-commit-<host>-<pid>.json`` whose process is no longer running (on this
    host; journals of other hosts are left alone) is rolled forward, so the output set it
    describes becomes the complete new set. Then temporary folders ``.<name>.tmp-<host>-<pid>-*``
    and backups ``.<name>.old-<host>-<pid>`` of dead processes are removed (a backup whose
    target is missing is first moved back: the earlier output).

    Parameters
    ----------
    folder
        Folder of an output (every run and every reader of an output calls this first).

    Returns
    -------
    int
        Number of journals rolled forward.
    """
    folder = Path(folder)
    try:
        names = sorted(os.listdir(folder))
    except OSError:
        return 0
    rolled = 0
    for name in names:
        m = _JOURNAL.match(name)
        if not m or _owner_alive(m["host"], int(m["pid"])):
            continue
        if m["tmp"]:  # never completed: the commit had not begun
            _remove(folder / name)
            continue
        try:
            journal = json.loads((folder / name).read_text())
        except (OSError, ValueError):
            continue  # removed meanwhile by another reader
        log.info("rolling forward the interrupted commit %s", folder / name)
        try:
            _roll_forward(journal)
        except OSError as exc:  # e.g. a target made read-only meanwhile: left for a later try
            log.warning("cannot complete the interrupted commit %s (%s); fix that and run again", folder / name, exc)
            continue
        rolled += 1
    clean_stale(folder)
    return rolled


def clean_stale(folder: str | os.PathLike) -> None:
    """Remove the temporary folders and backups of dead processes in ``folder`` (see :func:`recover`)."""
    folder = Path(folder)
    try:
        names = os.listdir(folder)
    except OSError:
        return
    if any(_JOURNAL.match(n) and not _JOURNAL.match(n)["tmp"] for n in names):
        pending = True  # a live commit: its backups may still be needed
    else:
        pending = False
    for name in names:
        m = _STALE.match(name)
        if not m or _owner_alive(m["host"], int(m["pid"])):
            continue
        path = folder / name
        target = folder / m["name"]
        if m["kind"] == "old":
            if pending:
                continue
            if not os.path.lexists(target):
                os.replace(path, target)
                log.warning("restored %s from the backup of an interrupted run", target)
                continue
        log.debug("removing %s (left by a dead process)", path)
        _remove(path)


class OutputSet:
    r"""Files and folders of one run, written beside their targets and committed together.

    Usage: ``with OutputSet(targets, overwrite) as outs:``, write each target ``t`` to
    ``outs.path(t)``, then ``outs.commit()``; leaving the block without a commit removes the
    temporaries (the earlier outputs are untouched).

    The commit, in order: every staged item is flushed to the disk; a journal
    ``.hra-commit-<host>-<pid>.json`` listing each ``staged -> target`` move (with the staged
    item's inode) is written atomically into the folder of every target; the items are
    installed one by one (a file by ``rename(2)``; a folder by an atomic exchange with the old
    folder, or where that is unavailable by moving the old folder to a backup first, see
    :func:`_install`); the journals are removed. A process killed before the journals exist
    leaves the earlier set (and temporaries that :func:`recover` removes); killed after, the
    journal is rolled forward by the next run or reader (:func:`recover`): the new set. POSIX
    guarantees each rename atomic; the exchange is Linux's ``renameat2``.

    Parameters
    ----------
    targets
        The output paths (files or folders; their folders must exist).
    overwrite, error, overwrite_hint
        As in :func:`check_target`.
    obsolete
        Files or folders that the committed set makes obsolete (a run's chunk checkpoints): removed
        with the commit, or when its journal is rolled forward.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with OutputSet([d / "a.csv", d / "b.txt"]) as outs:
    ...     _ = outs.path(d / "a.csv").write_text("x\n1\n")
    ...     _ = outs.path(d / "b.txt").write_text("done")
    ...     outs.commit()
    >>> sorted(p.name for p in d.iterdir())
    ['a.csv', 'b.txt']
    """

    def __init__(self, targets, overwrite: bool = True, *, error: Callable[[str], Exception] = OSError,
                 overwrite_hint: str = "pass overwrite=True", obsolete=()) -> None:
        self.targets = [Path(t) for t in targets]
        self.obsolete = [Path(p) for p in obsolete]
        self.overwrite = overwrite
        self.error = error
        self.overwrite_hint = overwrite_hint
        self._stage: dict[Path, Path] = {}
        self.committed = False
        self._journaled = False

    def __enter__(self) -> "OutputSet":
        for t in self.targets:
            check_target(t, self.overwrite, error=self.error, overwrite_hint=self.overwrite_hint)
        for folder in {t.parent for t in self.targets}:
            recover(folder)
        for t in self.targets:
            self._stage[t] = _stage_folder(t)
        return self

    def __exit__(self, *exc) -> None:
        if self._journaled and not self.committed:
            # failed part-way through the installs: the journal and the temporaries stay, so that
            # the next run or reader (recover) completes the set
            log.warning("the commit of %s failed part-way; the next run or reader completes it",
                        ", ".join(str(t) for t in self.targets))
            return
        if not self.committed:
            for folder in self._stage.values():
                _remove(folder)

    def path(self, target: str | os.PathLike) -> Path:
        """The temporary path to write ``target`` to (same name and suffix)."""
        target = Path(target)
        return self._stage[target] / target.name

    def commit(self) -> None:
        """Install every written target together (see the class docstring)."""
        steps = []
        for t in self.targets:
            staged = self.path(t)
            if not os.path.lexists(staged):
                raise self.error(f"cannot write {t}: the writer produced nothing")
            if os.path.lexists(t) and not self.overwrite:  # appeared while writing
                raise self.error(f"{t} already exists; remove it, choose another path or {self.overwrite_hint}")
            _fsync_tree(staged)
            steps.append({"target": str(t.absolute()), "staged": str(staged.absolute()),
                          "backup": str(_backup_name(t).absolute()), "stage_dir": str(self._stage[t].absolute()),
                          "inode": _ident(staged)})
        kill_point("commit-staged")
        folders = sorted({t.parent.absolute() for t in self.targets})
        journals = [f / f"{JOURNAL_PREFIX}{owner_tag()}.json" for f in folders]
        text = json.dumps({"format": "hra-commit/1", "owner": owner_tag(), "journals": [str(j) for j in journals],
                           "steps": steps, "obsolete": [str(p.absolute()) for p in self.obsolete]}, indent=1)
        for j in journals:
            tmp = j.with_name(j.name + ".tmp")
            with open(tmp, "w") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            kill_point("commit-journal-tmp")
            os.replace(tmp, j)
            _fsync_dir(j.parent)
        self._journaled = True
        kill_point("commit-journaled")
        for i, st in enumerate(steps):
            _install(Path(st["staged"]), Path(st["target"]), Path(st["backup"]), step=f"-{i}")
            kill_point(f"commit-installed-{i}")
        for f in folders:
            _fsync_dir(f)
        for p in self.obsolete:
            _remove(p)
        for j in journals:
            _remove(j)
        self.committed = True
        kill_point("commit-done")
        for folder in self._stage.values():
            _remove(folder)


def sha256_file(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file, or of a folder (e.g. a ``.zarr`` store).

    A folder's digest covers the relative name and the bytes of every file in it, in sorted order.

    Parameters
    ----------
    path
        A file or a folder.

    Returns
    -------
    str
        The hex digest (64 characters).
    """
    h = hashlib.sha256()
    p = Path(path)
    files = [(f, str(f.relative_to(p)).encode()) for f in sorted(p.rglob("*")) if f.is_file()] if p.is_dir() else [(p, b"")]
    for f, name in files:
        h.update(name)
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()
