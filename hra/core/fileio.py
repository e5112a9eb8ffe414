"""File helpers shared by every layer: atomic writing of files and folders, and checksums.

One convention for every output the package writes (risk datasets, CSV tables, plans, registers,
NPR 9998 reports): the target is checked before any work is done (:func:`check_target`), the
content is written to a temporary path in a fresh hidden folder beside the target, and that path
is renamed onto the target only when the writer has finished (:func:`atomic_write`,
:func:`atomic_path`). A failed or interrupted write therefore never leaves a half-written result
where a reader would look, and the temporary folder is always removed. Files are created by the
writer inside that folder, so they get the usual permissions of the process umask.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

__all__ = ["atomic_path", "atomic_write", "check_target", "sha256_file"]


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


def _replace(tmp: Path, path: Path) -> None:
    """Move ``tmp`` onto ``path``; an existing folder is moved aside first and removed after."""
    if path.is_dir() and not path.is_symlink():
        old = path.with_name(f".{path.name}.old-{os.getpid()}")
        os.replace(path, old)
        os.replace(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, path)


@contextmanager
def atomic_path(
    path: str | os.PathLike,
    overwrite: bool = True,
    *,
    error: Callable[[str], Exception] = OSError,
    overwrite_hint: str = "pass overwrite=True",
) -> Iterator[Path]:
    """Yield a temporary path to write; on success it is renamed onto ``path``.

    The temporary path ``.<name>.tmp-XXXX/<name>`` lies in a fresh hidden folder beside ``path``
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
    folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent if str(path.parent) else "."))
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
