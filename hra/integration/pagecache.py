"""Reading the table store's chunk files into the operating system's page cache ahead of a run.

Standard library only: this file is also run as a script, in a child process of the engine
(:class:`hra.integration.tablestore.ReadAhead`), without importing the package.

Why a child process: a warm run of the whole field reads ~58 GB of stored tables in ~900,000
chunk files (a few hundred kB each), more than a workstation's page cache holds, so the engine
reads each next group of zones while the current one is computed. Each file costs a few system
calls, and between two calls the reading thread needs Python's global interpreter lock (GIL),
which the engine's worker threads hold for stretches between their compiled kernels: measured on
2 cores, a thread asking for 19,000 files took 18.5 s alone and more than 10 minutes beside two
threads running Python code (each call waits for the GIL's 5 ms switch interval). A process has
its own interpreter: the disk streams at its own speed while the run computes.

As a script (``python -I -S pagecache.py``): reads lines from standard input, each a JSON list of
site folders; asks for every chunk file of each folder (:func:`will_need`) and answers with the
number of files asked for, one line per request. Ends at the end of its input.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Callable, Iterable


def chunk_files(site_folder: str) -> list[str]:
    """The chunk files of every entry (typology) of one stored site folder: ``<site>/<typology>/death/c.<g>...``
    (the store's own layout) or the files under ``<site>/<typology>/death/c/`` (zarr's default chunk keys,
    ``c/<g>/0/...``); none where the folder does not exist."""
    out: list[str] = []
    try:
        typologies = os.listdir(site_folder)
    except OSError:
        return out
    for typ in typologies:
        death = os.path.join(site_folder, typ, "death")
        try:
            names = os.listdir(death)
        except OSError:
            continue
        for name in names:
            path = os.path.join(death, name)
            if name == "c" and os.path.isdir(path):
                for folder, _, files in os.walk(path):
                    out.extend(os.path.join(folder, f) for f in files)
            elif name.startswith("c"):
                out.append(path)
    return out


def will_need(site_folders: Iterable[str], stop: Callable[[], bool] | None = None) -> int:
    """Ask the operating system to read the chunk files of ``site_folders`` into its page cache
    (``posix_fadvise(POSIX_FADV_WILLNEED)``; on Linux the call returns once the reads are issued or done).
    ``stop``: asked before each folder; true ends the call. Returns the number of files asked for; a
    hint only (0 without ``posix_fadvise``; files that cannot be opened are skipped)."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is None:
        return 0
    n = 0
    for folder in site_folders:
        if stop is not None and stop():
            break
        for path in chunk_files(folder):
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                advise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
                n += 1
            except OSError:
                pass
            finally:
                os.close(fd)
    return n


def main(stdin=None, stdout=None) -> int:
    """The child process: one request per input line (a JSON list of site folders), one answer per
    request (the number of files asked for)."""
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    for line in stdin:
        line = line.strip()
        if not line:
            continue
        try:
            folders = json.loads(line)
        except ValueError:
            folders = []
        stdout.write(f"{will_need(folders)}\n")
        stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
