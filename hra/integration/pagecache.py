"""Reading the table store's files into the operating system's page cache ahead of a run.

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
site folders; asks for every file of each folder (:func:`will_need`) and answers with the
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
    return site_files(site_folder)[1]


def site_files(site_folder: str) -> tuple[list[str], list[str]]:
    """``(metadata files, chunk files)`` of every entry (typology) of one stored site folder: the small
    files a read opens first (each entry's ``zarr.json`` files and its ``branch`` array) and the ``death``
    array's chunk files (:func:`chunk_files`); both empty where the folder does not exist."""
    meta: list[str] = []
    chunks: list[str] = []
    try:
        typologies = sorted(os.listdir(site_folder))
    except OSError:
        return meta, chunks
    for typ in typologies:
        entry = os.path.join(site_folder, typ)
        if os.path.isfile(entry):  # an entry of one file (the forecast tables: hra.integration.forecaststore)
            if not typ.startswith("."):
                chunks.append(entry)
            continue
        for folder, dirs, files in os.walk(entry):
            dirs.sort()
            rel = os.path.relpath(folder, entry).split(os.sep)
            in_death = rel[0] == "death"
            for name in sorted(files):
                path = os.path.join(folder, name)
                # death/c.<g>... (this store's keys) or anything under death/c/ (zarr's default keys)
                if in_death and ((len(rel) == 1 and name.startswith("c")) or (len(rel) > 1 and rel[1] == "c")):
                    chunks.append(path)
                else:
                    meta.append(path)
    return meta, chunks


def will_need(site_folders: Iterable[str], stop: Callable[[], bool] | None = None) -> int:
    """Ask the operating system to read the files of ``site_folders`` into its page cache
    (``posix_fadvise(POSIX_FADV_WILLNEED)``; on Linux the call returns once the reads are issued or done):
    per folder the metadata files first, then the chunk files (:func:`site_files`). The metadata too: a
    read opens them first, and a read of one that is not in the page cache waits behind every read
    already queued (measured on subsets of the field case: 1-7 s per zone while the next group was read).
    ``stop``: asked before each folder; true ends the call. Returns the number of files asked for; a
    hint only (0 without ``posix_fadvise``; files that cannot be opened are skipped)."""
    advise = getattr(os, "posix_fadvise", None)
    if advise is None:
        return 0
    n = 0
    for folder in site_folders:
        if stop is not None and stop():
            break
        meta, chunks = site_files(folder)
        for path in meta + chunks:
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
