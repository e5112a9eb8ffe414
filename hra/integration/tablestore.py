"""Persistent store of the physical death tables (computed once, reused by every later run).

What is stored
--------------
The tables that :func:`hra.integration.engine.zone_tables` collects *before* magnitude
integration: for one site (site-response zone, wierde flag), one typology and every physical
GMM branch ``g``, the expected probability of death per event ``death[g, f, c, m, r]`` over
(fragility branch, consequence branch, magnitude node, hypocentral-distance node). They depend
on the ground-motion model, the fragility/consequence model and the two node grids, not on the
source model (rates, b-values, forecast), the buildings or the logic-tree sampling, so the
annual update reuses them.

Layout
------
::

    <root>/<model key>/model.json                 what the key stands for (models, options, grids)
    <root>/<model key>/z<zone>-w<0|1>/<typology>  one entry: a zarr group with the arrays
                                                  ``death`` (g, f, c, m, r) float32, one chunk
                                                  per GMM branch g (the file ``death/c.<g>.0.0.0.0``), and
                                                  ``branch`` (g, n_gmm_nodes) int64

An entry can be read for a subset of its branches (only their chunks are read) and is written a
group of branches at a time (:meth:`TableStore.writer`), so that the engine never holds every
branch's table at once (it streams them per group of branches, :func:`hra.integration.engine.zone_tables`).
The entries are ordinary zarr v3 groups (zarr reads them); where an array's metadata shows exactly
this module's layout, its chunk files are compressed and decoded here with Blosc (numcodecs)
instead of through zarr's per-call machinery, which cost ~3x more than the decoding itself
(:func:`_direct_layout`, :func:`_read_chunk`, :func:`_write_chunk`).

``<model key>`` is the SHA-256 (first 32 hex digits) of a canonical JSON of :func:`model_description`:
the table-format version :data:`TABLE_FORMAT_VERSION` and the package version, the GMM class,
its options and the SHA-256 of every GMM table read (``gmm.file_checksums``), the fragility model,
its file checksums, ``presence_inside``, the consequence factors and a digest of every fragility
value, and the magnitude and distance node grids (digests of their float64 bytes). A changed table
or option changes the key, so a stale entry is never read.

Atomicity and concurrency
-------------------------
An entry is written into a temporary folder beside it (``.tmp-<name>-<pid>-<random>``) and
renamed into place with :func:`os.rename`, atomic on a POSIX file system: a reader sees either
no entry or a complete one. When two runs write the same entry at once, the second rename fails
(the target exists and is not empty); that writer drops its temporary copy and both succeed with
one valid entry. A killed writer leaves only a temporary folder, which readers ignore and
:meth:`TableStore.clear` removes. The store is a cache: a failure to write it is logged and the
run continues.

The default location is ``$HRA_TABLE_STORE`` if set (``false``/``off``/``0``: no store), else
``platformdirs.user_cache_dir("groningen-hra")/tables``; ``[compute] table_store`` overrides both.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import json
import logging
import math
import os
import re
import shutil
import stat
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from hra.integration import pagecache

log = logging.getLogger("hra")

#: Version of the stored tables' layout *and* of the code that computes them. Bump it whenever a
#: change of the engine changes table values (it is part of every key). 2: R_rup grid of step 0.1 in
#: ln R with cubic interpolation, contributions below 1e-20 dropped (2026-12-04). 3: grid products in
#: float32 (relative changes ~1e-6), log1p of the moments kernel by its series for small arguments.
#: 4: one chunk per GMM branch (entries read per group of branches), the R_rup interpolation's
#: vectorised exp (values moved in the last bits, <= 7e-16 relative). 5: the physical tables rounded to
#: float32 (:data:`TABLE_DTYPE`) and stored as float32 with LZ4 (half the size, ~3x faster to write and read).
#: 6: chunk keys ``c.<branch>.0.0.0.0`` (:data:`CHUNK_KEY_ENCODING`: a file per chunk, no folders),
#: the moments kernel vectorised over the leading-factor nodes (values move by rounding). 7: the tables
#: rounded to 16 significant bits (:data:`hra.integration.kernels.TABLE_SIGNIFICANT_BITS`; <= 1.5e-5
#: relative): every value's low byte is zero, the store ~0.69x the size. 8: with ``[source]
#: magnitude_table_stride`` 2 an entry holds the tables at the computed magnitude nodes only (~0.55x the
#: size; expanded as read), and the table stage's float32 R_rup interpolation and magnitude expansion.
TABLE_FORMAT_VERSION = 8
#: zarr chunk-key encoding of the stored ``death`` arrays: every chunk one file in the array's folder
#: (zarr's default ``/`` makes a folder per chunk and axis, ~7 ``mkdir`` per chunk written).
CHUNK_KEY_ENCODING = {"name": "default", "separator": "."}
#: Type of the physical death tables, in the engine and in the store. The engine rounds every physical
#: table as soon as it is computed to 16 significant bits (:func:`hra.integration.kernels.round_table`,
#: in :func:`hra.integration.engine.physical_death_tables`; relative change <= 1.5e-5 per value, values
#: below ~1e-45 become 0), float32 values, so that the float32 entries hold the tables exactly: a run with
#: the store gives the same bits as one without, cold or warm.
TABLE_DTYPE = np.float32
#: Environment variable with the default store folder (``false``, ``off``, ``no`` or ``0``: no store).
ENV_VAR = "HRA_TABLE_STORE"
#: Name prefix of the temporary folders of writers.
TMP_PREFIX = ".tmp-"
#: Temporary folders younger than this are left alone by :meth:`TableStore.clear` with
#: ``older_than_days`` (a writer may still be busy with them). [s]
TMP_GRACE_S = 3600.0
#: A read marks its entry used (its folder's modification time, which :meth:`TableStore.clear` with
#: ``older_than_days`` goes by) only where the last mark is older than this [s]: a run reads ~7,000
#: entries of the field (the marks are queued and set once the reads are done: :class:`UsedMarks`).
USED_MARK_S = 3600.0
_OFF = {"false", "off", "no", "0"}
#: Folder under the store's root that holds the forecast tables (:mod:`hra.integration.forecaststore`).
FORECAST_DIR = "forecast"


class UsedMarks:
    """The "last used" marks of the entries a process reads, set after the reading, not during it.

    A mark is a metadata write (:func:`os.utime` of the entry's folder). While a run reads its store,
    that write waits for the file system's journal, which waits behind the reads the disk has queued
    (the read-ahead's next group): ~20 ms per entry, 0.6-0.8 s per zone on a warm run of the field,
    on the zone task's path; set from a thread beside the run, the ~7,000 writes still slowed its reads.
    32 mid-size zones of the field case, warm, every mark due (single runs): tables 81.7 s with each mark
    set by its read, 77.5 s with the marks set by a thread, 72.3 s with them set at the run's end, 70.6 s
    with no mark due. Without reads queued, the field's ~7,000 writes take ~0.02 s. So a read only
    queues its mark here (:meth:`put`), and the run sets them once its reads are done (:meth:`flush`:
    the engine at the end of a run, ``hra tables clear`` before it looks at ages, a table task in a
    worker process at its end, and every process at its exit). The marks are what ``hra tables clear
    --older-than`` goes by, nothing else: no value depends on them; a mark lost with a killed process
    only makes its entry look older than it is. One instance per process (:data:`MARKS`)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._queue: list[str] = []
        self._exit_hook = False
        #: marks set and failed (an entry removed meanwhile) since the process started
        self.done = 0
        self.failed = 0
        if hasattr(os, "register_at_fork"):  # a forked child neither inherits the queue nor a held lock
            os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        self._lock = threading.Lock()
        self._queue = []
        self._exit_hook = False

    def put(self, path: str | os.PathLike) -> None:
        """Queue a mark of ``path`` (set by the next :meth:`flush`)."""
        with self._lock:
            if not self._exit_hook:
                import atexit

                atexit.register(self.flush)
                self._exit_hook = True
            self._queue.append(os.fspath(path))

    def __len__(self) -> int:
        return len(self._queue)

    def flush(self) -> int:
        """Set every queued mark (the time now); returns how many were set."""
        with self._lock:
            todo, self._queue = self._queue, []
        n = 0
        for path in dict.fromkeys(todo):  # (each once, in the order read)
            try:
                os.utime(path)
                n += 1
            except OSError:  # removed meanwhile (a clear, an unreadable entry): nothing to mark
                self.failed += 1
        self.done += n
        return n


#: The process's :class:`UsedMarks`.
MARKS = UsedMarks()


# ------------------------------------------------------------------------------------------
# location
# ------------------------------------------------------------------------------------------


def default_store_path() -> Path | None:
    """``$HRA_TABLE_STORE`` (``None`` if it says off), else the user cache dir's ``tables`` folder."""
    env = os.environ.get(ENV_VAR)
    if env is not None and env.strip():
        if env.strip().lower() in _OFF:
            return None
        return Path(os.path.expanduser(env.strip()))
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("groningen-hra")) / "tables"


def store_for_config(cfg) -> "TableStore | None":
    """The store of ``[compute] table_store`` (``false``: ``None``; unset: :func:`default_store_path`)."""
    setting = cfg.compute.table_store
    if setting is False:
        return None
    root = cfg.resolve(setting) if setting is not None else default_store_path()
    return None if root is None else TableStore(root)


# ------------------------------------------------------------------------------------------
# keys
# ------------------------------------------------------------------------------------------


def _digest_arrays(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        if a is None:
            h.update(b"none")
            continue
        a = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
        h.update(str(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _plain(value: Any) -> Any:
    """JSON-able form of an option value (paths as strings, tuples as lists)."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return repr(value)


#: ``[ground_motion]`` keys that do not change a table value (where the tables are, checks, the
#: zone geometry that assigns sites, the engine's treatment of w(M) after the tables).
_GM_KEYS_NOT_IN_KEY = {"model_dir", "verify", "zones", "zone_field", "median_weights"}


def gmm_options(gmm) -> dict[str, Any]:
    """Public scalar attributes of a GMM object (its effective options, whatever the config said)."""
    out = {}
    for k, v in sorted(vars(gmm).items()):
        if k.startswith("_"):
            continue
        if isinstance(v, (str, int, float, bool, type(None))) or (
                isinstance(v, tuple) and all(isinstance(x, (str, int, float, bool)) for x in v)):
            out[k] = _plain(v)
    return out


def model_description(gmm, fragility, mag_nodes: np.ndarray, r_nodes_km: np.ndarray, cfg=None,
                      files: dict[str, str] | None = None, magnitude_stride: int = 1) -> dict[str, Any]:
    """Everything the physical death tables depend on (besides site and typology), as plain JSON.

    Parameters
    ----------
    gmm, fragility
        The ground-motion model and :class:`fragility.lognormal.FragilityModel` of the run.
    mag_nodes
        Magnitude nodes of the tables. [magnitude]
    r_nodes_km
        Hypocentral-distance nodes of the tables. [km]
    cfg
        The run's config (adds the ``[ground_motion]`` and ``[fragility]`` options).
    files
        name -> sha256 of the input files (``Prepared.files``); the ``fcm:`` and ``fragility:``
        entries are used.
    magnitude_stride
        ``[source] magnitude_table_stride`` (:mod:`hra.integration.magnitudes`).
    """
    from hra.outputs import package_version

    gm_cfg: dict[str, Any] = {}
    fr_cfg: dict[str, Any] = {}
    if cfg is not None:
        gm_cfg = {k: _plain(v) for k, v in cfg.ground_motion.model_dump().items() if k not in _GM_KEYS_NOT_IN_KEY}
        fr = cfg.fragility
        fr_cfg = {"model": fr.model, "curves": None if fr.curves is None else Path(fr.curves).name,
                  "presence_inside": fr.presence_inside, "consequence_factors": [c.factor for c in fr.consequence]}
    fr_files = {k: v for k, v in sorted((files or {}).items()) if k.startswith(("fcm:", "fragility:"))}
    mag_nodes = np.asarray(mag_nodes, dtype=np.float64)
    r_nodes_km = np.asarray(r_nodes_km, dtype=np.float64)
    return {
        "table_format_version": TABLE_FORMAT_VERSION,
        "package_version": package_version(),
        "gmm": {
            "class": f"{type(gmm).__module__}.{type(gmm).__qualname__}",
            "config": gm_cfg,
            "options": gmm_options(gmm),
            "imt": fragility.imt,
            "direct_imt": fragility.direct_imt,
            "file_checksums": dict(sorted(getattr(gmm, "file_checksums", {}).items())),
            "tree": [[n.name, list(n.labels)] for n in gmm.tree.nodes],
        },
        "fragility": {
            "name": fragility.name,
            "config": fr_cfg,
            "presence_inside": float(fragility.presence_inside),
            "file_checksums": fr_files,
            "values_sha256": _digest_arrays(fragility.median_g, fragility.beta, fragility.p_death_inside,
                                            fragility.p_death_outside, fragility.direct_median_g,
                                            fragility.direct_beta, [fragility.presence_inside]),
            "typologies": len(fragility.typologies),
        },
        "grids": {
            "magnitude_nodes": [int(mag_nodes.size), float(mag_nodes.min()), float(mag_nodes.max()),
                                _digest_arrays(mag_nodes)],
            # every other node computed, the others interpolated (absent at 1: the keys of such runs unchanged)
            **({"magnitude_table_stride": int(magnitude_stride)} if magnitude_stride != 1 else {}),
            "distance_nodes_km": [int(r_nodes_km.size), float(r_nodes_km.min()), float(r_nodes_km.max()),
                                  _digest_arrays(r_nodes_km)],
            # the strike model's relative-azimuth axis (absent without one: keys of azimuth-free models unchanged)
            **({"azimuth_nodes_deg": [float(a) for a in gmm.azimuth_nodes_deg],
                "rupture_strike": [float(v) for v in gmm.rupture_strike]}
               if getattr(gmm, "azimuth_nodes_deg", None) is not None else {}),
        },
    }


def model_key(description: dict[str, Any]) -> str:
    """SHA-256 (32 hex digits) of the canonical JSON of a :func:`model_description`."""
    text = json.dumps(description, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def safe_name(name: str) -> str:
    """A file-name form of a typology name (plus a short hash where characters were replaced)."""
    clean = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    if clean != name or clean.startswith("."):
        clean = f"{clean.lstrip('.')}~{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return clean


def site_name(zone: int, wierde: bool) -> str:
    return f"z{int(zone)}-w{int(bool(wierde))}"


# ------------------------------------------------------------------------------------------
# the store
# ------------------------------------------------------------------------------------------


@dataclass
class EntrySet:
    """One model key of a store: what it stands for, its entries and their size."""

    key: str
    description: dict[str, Any]
    entries: int
    bytes: int
    last_used: float  # POSIX time of the most recently used entry [s]
    temporary: int  # leftover temporary folders
    stale: bool = False  # written by another table format or package version: never read by this one (:func:`is_stale`)


def is_stale(description: dict[str, Any]) -> bool:
    """Whether a model key's description (its ``model.json``) was written by another table format or
    package version than this one's: both are part of every key (:func:`model_description`), so this
    version never reads such entries (after an upgrade they are dead weight in the store). A key without
    a readable description is not called stale (nothing is known of it)."""
    from hra.outputs import package_version

    if not description:
        return False
    return (description.get("table_format_version") != TABLE_FORMAT_VERSION
            or description.get("package_version") != package_version())


def write_description(path: Path, key: str, description: dict[str, Any], root: Path) -> None:
    """Write a key's description file ``path`` (JSON with the key and its time of creation) once, atomically
    (a temporary file beside it, then renamed); a failure is logged (the store is a cache)."""
    if path.is_file():
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f"{TMP_PREFIX}{path.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.write_text(json.dumps({"key": key, "created": time.time(), **description}, indent=1, sort_keys=True))
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("table store %s: cannot write %s (%s); continuing without it", root, path, exc)


def read_description(path: Path) -> dict[str, Any]:
    """A key's description file (:func:`write_description`) as a dict; ``{}`` where missing or unreadable."""
    try:
        desc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return desc if isinstance(desc, dict) else {}


@dataclass
class StoreStats:
    """Counters of one process (the engine logs them): entries read, written, and lost races."""

    read: int = 0
    written: int = 0
    raced: int = 0
    bytes_written: int = 0
    #: a write found the disk full: no further entries are started in this process
    full: bool = False


def write_failure(stats: StoreStats, root: Path, path, exc: OSError, fix: str) -> None:
    """Log a failed write of the store at ``root`` (the run goes on without that entry); a full disk (or
    quota) stops all further writes counted by ``stats`` of this process, with one warning that names the
    fix (``fix``: the last way out, e.g. "set table_store = false")."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        if not stats.full:
            log.warning("table store %s: the disk is full (%s); the run goes on without storing more tables "
                        "(the entries stored so far stay); fix: free space on that disk, point [compute] "
                        "table_store at a larger one, or %s", root, exc, fix)
        stats.full = True
        return
    log.warning("table store %s: cannot write %s (%s); continuing without it", root, path, exc)


@dataclass(frozen=True)
class TableStore:
    """A folder of death tables; see the module docstring for layout, keys and atomicity."""

    root: Path
    stats: StoreStats = field(default_factory=StoreStats, compare=False, hash=False)
    #: ``False``: entries are read but no new ones written (a run whose tables would not fit on the disk)
    writable: bool = True
    #: per entry path read from this process: (identity of its metadata file, branch keys, shape, chunk
    #: layout or None); entries are immutable once in place, so an entry read a group of branches at a
    #: time opens zarr once
    _opened: dict = field(default_factory=dict, compare=False, hash=False, repr=False)
    #: (key, zone, wierde, typology) -> :meth:`entry_path`
    _paths: dict = field(default_factory=dict, compare=False, hash=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    # -- paths ---------------------------------------------------------------------------------

    def entry_path(self, key: str, zone: int, wierde: bool, typology: str) -> Path:
        k = (key, int(zone), bool(wierde), typology)
        path = self._paths.get(k)
        if path is None:  # (pathlib's joins cost ~10 us each: a warm zone asks ~1,000 times)
            if len(self._paths) >= 65536:
                self._paths.clear()
            path = self._paths[k] = self.root / key / site_name(zone, wierde) / safe_name(typology)
        return path

    def site_folders(self, key: str, zones: Iterable[int]) -> list[str]:
        """The stored site folders of ``zones`` under model ``key`` (both wierde variants; existing or not)."""
        base = os.path.join(os.fspath(self.root), key)
        return [os.path.join(base, site_name(zone, wierde)) for zone in zones for wierde in (False, True)]

    def prefetch(self, key: str, zones: Iterable[int], stop: Callable[[], bool] | None = None) -> int:
        """Ask the operating system to read the stored files of ``zones`` (both wierde variants, every
        typology of model ``key``; each site's metadata files, then its chunk files) into its page cache
        (:func:`hra.integration.pagecache.will_need`), so that a later :meth:`read` of them does not wait
        for the disk; a run reads its groups of zones ahead this way from a child process
        (:class:`ReadAhead`). ``stop``: asked before each site folder; true ends the call. Returns the
        number of files asked for; a hint only (no effect on any value; without ``posix_fadvise``, or for
        files that cannot be opened, nothing happens)."""
        return pagecache.will_need(self.site_folders(key, zones), stop=stop)

    # -- model metadata --------------------------------------------------------------------------

    def register(self, key: str, description: dict[str, Any]) -> None:
        """Write ``<key>/model.json`` (once, atomically) so that ``hra tables info`` can say what the key is."""
        write_description(self.root / key / "model.json", key, description, self.root)

    # -- entries -------------------------------------------------------------------------------

    def read(self, key: str, zone: int, wierde: bool, typology: str,
             branches: Iterable[tuple[int, ...]] | None = None, count: bool = True,
             as_stored: bool = False,
             out: dict[tuple[int, ...], np.ndarray] | None = None,
             drop: bool = False) -> dict[tuple[int, ...], np.ndarray] | None:
        """Tables of one entry (physical GMM branch -> (f, c, m, r)), or ``None`` if absent or unreadable.

        ``branches``: only these branches (only their chunks are read); ``None``: all. An entry that
        lacks one of them is unreadable (recomputed). ``count``: count the read in ``stats.read`` and
        mark the entry used where its last mark is older than :data:`USED_MARK_S` (the mark is queued and
        set once the run's reads are done: :class:`UsedMarks`, :meth:`flush_marks`; the engine, which reads
        an entry a group of branches at a time, counts it once). ``as_stored``: the tables as stored
        (:data:`TABLE_DTYPE`) instead of float64 (the same values). ``out``: branch -> C-contiguous
        :data:`TABLE_DTYPE` array of the table's shape, for every branch read: the tables are decoded
        straight into these (no intermediate copies) and returned; their contents are undefined when the
        read fails (``None``). ``drop``: each chunk file is dropped from the operating system's page cache
        once read (``posix_fadvise(DONTNEED)``): a streaming read of a store larger than memory, which would
        otherwise fill the page cache at a cost (reclaim) to every later allocation; no effect on any value."""
        import zarr

        path = self.entry_path(key, zone, wierde, typology)
        try:
            entry_st = os.stat(path)  # (its modification time: the last "used" mark)
        except OSError:
            return None
        if not stat.S_ISDIR(entry_st.st_mode):
            return None
        if out is not None and not all(a.dtype == TABLE_DTYPE and a.flags.c_contiguous and a.flags.writeable
                                       for a in out.values()):
            raise ValueError(f"read(out=...) needs writable C-contiguous {np.dtype(TABLE_DTYPE).name} arrays")
        try:
            arr = None
            # an entry written anew is a new file: not the cached one (os.path: no pathlib joins per read)
            st = os.stat(os.path.join(path, "death", "zarr.json"))
            if self._opened.get(path, (None,))[0] != (st.st_ino, st.st_mtime_ns):
                # from the metadata and chunk files where laid out as this module writes them (zarr's
                # opening costs ~2 ms per entry, ~0.08 s per zone of 35 typologies), else through zarr
                direct = _open_direct(path)
                if direct is not None:
                    attrs, branch, shape, layout = direct
                else:
                    grp = zarr.open_group(str(path), mode="r")
                    branch = np.asarray(grp["branch"][...], dtype=np.int64)
                    arr = grp["death"]
                    attrs, shape = dict(grp.attrs), arr.shape
                    layout = _direct_layout(path / "death", arr.shape, arr.dtype)
                if attrs.get("typology") != typology or shape[0] != branch.shape[0]:
                    raise ValueError("entry does not match its name")
                if len(self._opened) >= 4096:
                    self._opened.clear()
                self._opened[path] = ((st.st_ino, st.st_mtime_ns), branch, tuple(shape), layout,
                                      bool(attrs.get("all_chunks_written", False)),
                                      {tuple(int(v) for v in b): i for i, b in enumerate(branch)})
            _, branch, shape, layout, complete, row = self._opened[path]
            if layout is None and arr is None:
                arr = zarr.open_array(str(path / "death"), mode="r")
            death_dir = os.path.join(os.fspath(path), "death")  # a string: no pathlib per chunk
            if branches is None:
                want = [tuple(int(v) for v in b) for b in branch]
                idx = list(range(branch.shape[0]))
            else:
                want = sorted(tuple(int(v) for v in b) for b in branches)
                missing = [b for b in want if b not in row]
                if missing:
                    raise ValueError(f"entry lacks GMM branch {missing[0]}")
                idx = [row[b] for b in want]
            if out is not None:
                death = [out[b] for b in want]
                if any(d.shape != tuple(shape[1:]) for d in death):
                    raise ValueError(f"tables of shape {tuple(shape[1:])}, not {death[0].shape} as expected")
            else:
                death = np.empty((len(idx),) + shape[1:], dtype=TABLE_DTYPE if as_stored else np.float64)
            for n, i in enumerate(idx):
                # chunk by chunk (one per branch): from the chunk file where the layout is this module's
                # (~3x cheaper than through zarr's per-call machinery; into the destination itself where
                # it is of the stored type), else through zarr
                if layout is None:
                    death[n][...] = arr[i]
                elif death[n].dtype == TABLE_DTYPE and death[n].flags.c_contiguous:
                    _read_chunk(death_dir, i, layout, complete, dest=death[n], drop=drop)
                else:
                    death[n][...] = _read_chunk(death_dir, i, layout, complete, drop=drop)
        except Exception as exc:  # noqa: BLE001 - an unreadable entry is recomputed, never trusted
            log.warning("table store: removing unreadable entry %s (%s); it is computed again", path, exc)
            self._opened.pop(path, None)
            _remove(path)
            return None
        if count and time.time() - entry_st.st_mtime > USED_MARK_S:
            MARKS.put(path)  # "last used", for clear --older-than (USED_MARK_S), set once the reads are done
        self.stats.read += int(count)
        return {b: death[i] for i, b in enumerate(want)}

    @staticmethod
    def flush_marks() -> int:
        """Set this process's queued "used" marks (:class:`UsedMarks`); returns how many were set."""
        return MARKS.flush()

    def write(self, key: str, zone: int, wierde: bool, typology: str,
              tables: dict[tuple[int, ...], np.ndarray]) -> bool:
        """Write one entry atomically (temporary folder, then rename); ``False`` if another writer won
        the race or the store is not writable (then the run continues without storing)."""
        w = self.writer(key, zone, wierde, typology, sorted(tables), np.shape(next(iter(tables.values()))))
        if w is None:
            return False
        w.put(tables)
        return w.commit()

    def writer(self, key: str, zone: int, wierde: bool, typology: str, branches: list[tuple[int, ...]],
               shape: tuple[int, ...]) -> "EntryWriter | None":
        """An :class:`EntryWriter` of one entry with the tables (``shape`` (f, c, m, r) each) of
        ``branches``, filled a group of branches at a time and renamed into place by its
        :meth:`EntryWriter.commit` once all are there; ``None`` if the entry exists or cannot be
        started (the run continues without storing it)."""
        import zarr

        if not self.writable or self.stats.full:
            return None
        path = self.entry_path(key, zone, wierde, typology)
        if path.is_dir():
            return None
        keys = sorted(tuple(int(v) for v in b) for b in branches)
        branch = np.asarray(keys, dtype=np.int64).reshape(len(keys), -1)
        tmp = path.parent / f"{TMP_PREFIX}{path.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            grp = zarr.open_group(str(tmp), mode="w")
            grp.attrs.update({"typology": typology, "zone": int(zone), "wierde": bool(wierde), "key": key,
                              "dims": ["gmm_branch", "fragility", "consequence", "magnitude", "distance"],
                              "table_format_version": TABLE_FORMAT_VERSION, "created": time.time()})
            shape = tuple(int(n) for n in shape)
            arr = grp.create_array("death", shape=(len(keys),) + shape, chunks=(1,) + shape,
                                   dtype=np.dtype(TABLE_DTYPE).name, compressors=_compressor(),
                                   chunk_key_encoding=CHUNK_KEY_ENCODING)
            grp.create_array("branch", data=branch, chunks=branch.shape)
            layout = _direct_layout(tmp / "death", arr.shape, arr.dtype)
            # chunk files written here exist for every branch (zarr leaves out all-zero chunks): a
            # reader then takes a missing one for a damaged entry, not for zeros
            grp.attrs["all_chunks_written"] = layout is not None
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            self.write_failed(path, exc)
            return None
        return EntryWriter(self, path, tmp, arr, {k: i for i, k in enumerate(keys)}, layout=layout)

    def write_failed(self, path: Path, exc: OSError) -> None:
        """Log a failed write (the run goes on without that entry); a full disk (or quota) stops all
        further writes of this process, with one warning that names the fix."""
        write_failure(self.stats, self.root, path, exc, "set table_store = false")

    def free_bytes(self) -> int | None:
        """Free bytes on the disk of the store's folder (of its nearest existing parent before it is made);
        ``None`` where that cannot be told."""
        p = self.root
        while not p.exists() and p != p.parent:
            p = p.parent
        try:
            return int(shutil.disk_usage(p).free)
        except OSError:
            return None

    # -- listing and cleaning -------------------------------------------------------------------

    def _key_dirs(self) -> list[Path]:
        if not self.root.is_dir():
            return []
        # (the forecast tables' folder is not a model key: hra.integration.forecaststore)
        return sorted(p for p in self.root.iterdir()
                      if p.is_dir() and not p.name.startswith(TMP_PREFIX) and p.name != FORECAST_DIR)

    @staticmethod
    def _entries(key_dir: Path) -> Iterable[Path]:
        for site in sorted(key_dir.iterdir()):
            if site.is_dir() and not site.name.startswith(TMP_PREFIX):
                for e in sorted(site.iterdir()):
                    if e.is_dir() and not e.name.startswith(TMP_PREFIX):
                        yield e

    @staticmethod
    def _temporaries(key_dir: Path) -> Iterable[Path]:
        for p in key_dir.iterdir():
            if p.name.startswith(TMP_PREFIX):
                yield p
            elif p.is_dir():
                yield from (q for q in p.iterdir() if q.name.startswith(TMP_PREFIX))

    @staticmethod
    def _size(path: Path) -> int:
        """Bytes of a file or folder (0 for what another process removes meanwhile)."""
        total = 0
        for f in ([path] if path.is_file() else path.rglob("*")):
            try:
                total += f.stat().st_size if f.is_file() else 0
            except FileNotFoundError:
                pass
        return total

    @staticmethod
    def _description(key_dir: Path) -> dict[str, Any]:
        return read_description(key_dir / "model.json")

    def info(self) -> list[EntrySet]:
        """One :class:`EntrySet` per model key in the store."""
        out = []
        for kd in self._key_dirs():
            desc = self._description(kd)
            entries = list(self._entries(kd))
            size = sum(self._size(e) for e in entries)
            last = max((e.stat().st_mtime for e in entries), default=0.0)
            out.append(EntrySet(kd.name, desc, len(entries), size, last, sum(1 for _ in self._temporaries(kd)),
                                is_stale(desc)))
        return out

    def stale_keys(self) -> list[str]:
        """The model keys that this version never reads (:func:`is_stale`; reads only their ``model.json``)."""
        return [kd.name for kd in self._key_dirs() if is_stale(self._description(kd))]

    def clear(self, older_than_days: float | None = None, stale: bool = False) -> tuple[int, int]:
        """Remove entries (all, or those not used for ``older_than_days``) and leftover temporary
        folders (all with a full clear, else those older than :data:`TMP_GRACE_S`). ``stale``: only in
        the model keys that this version never reads (:func:`is_stale`: another table format or package
        version), the others are left as they are.

        Returns
        -------
        (entries removed, bytes freed)
        """
        MARKS.flush()  # this process's reads count as uses
        now = time.time()
        n = freed = 0

        def age(p: Path) -> float:
            try:
                return now - p.stat().st_mtime
            except FileNotFoundError:  # renamed or removed meanwhile by another process
                return -np.inf

        for kd in self._key_dirs():
            if stale and not is_stale(self._description(kd)):
                continue
            for tmp in list(self._temporaries(kd)):
                if older_than_days is None or age(tmp) > TMP_GRACE_S:
                    freed += self._size(tmp)
                    _remove(tmp)
            for e in list(self._entries(kd)):
                if older_than_days is None or age(e) > older_than_days * 86400.0:
                    size = self._size(e)
                    if _remove(e):
                        freed += size
                        n += 1
            prune_key_dir(kd)
        return n, freed


@dataclass
class EntryWriter:
    """One entry being written (:meth:`TableStore.writer`): :meth:`put` its tables a group of
    branches at a time into the temporary folder, then :meth:`commit` (atomic rename) or
    :meth:`abort`. A failure to write is logged and makes :meth:`commit` return ``False``."""

    store: TableStore
    path: Path
    tmp: Path
    array: Any
    row: dict[tuple[int, ...], int]
    done: set = field(default_factory=set)
    failed: bool = False
    #: the array's chunk layout where it is this module's (:func:`_direct_layout`): chunks are then
    #: compressed and written as files here (~3x cheaper than through zarr's per-call machinery)
    layout: tuple | None = None

    def put(self, tables: dict[tuple[int, ...], np.ndarray]) -> None:
        if self.failed:
            return
        try:
            for k, d in tables.items():
                i = self.row[tuple(int(v) for v in k)]
                d32 = np.asarray(d, dtype=TABLE_DTYPE)
                # the engine rounds its tables (physical_death_tables); float64 tables given here are checked
                if d32 is not d and not np.array_equal(_round_table(d), d):
                    raise ValueError(f"table store entry {self.path}: GMM branch {k} is not at the store's "
                                     f"precision ({np.dtype(TABLE_DTYPE).name} of 16 significant bits); round it "
                                     f"first (hra.integration.kernels.round_table)")
                if self.layout is None:
                    self.array[i] = d32
                else:
                    _write_chunk(self.tmp / "death", i, self.layout, d32)
                self.done.add(i)
        except OSError as exc:
            self.store.write_failed(self.path, exc)
            self.abort()
        except ValueError:
            self.abort()
            raise

    def abort(self) -> None:
        self.failed = True
        shutil.rmtree(self.tmp, ignore_errors=True)

    def commit(self) -> bool:
        """Rename the complete entry into place; ``False`` if it is incomplete, failed, or another
        writer was first (then its entry is kept and this one dropped)."""
        if self.failed:
            return False
        if len(self.done) != len(self.row):
            self.abort()
            raise ValueError(f"table store entry {self.path}: {len(self.row) - len(self.done)} GMM branches "
                             "never written")
        try:
            os.rename(self.tmp, self.path)
        except OSError:  # another writer was first (target exists, not empty): keep its entry
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.store.stats.raced += 1
            return False
        self.store.stats.written += 1
        self.store.stats.bytes_written += self.store._size(self.path)
        return True


class ReadAhead:
    """Reads the stored tables of a run's groups of zones into the page cache, in the run's order and
    at most ``ahead`` groups before the group the run is at.

    A run whose tables do not fit its memory computes its zones in groups (each group's tables, then
    its buildings; :func:`hra.integration.engine.zone_groups`). A warm run of the whole field reads
    ~58 GB of stored tables, more than a workstation's page cache, so each group's chunk files come
    from the disk. Reading group ``g + 1`` from the moment the run starts group ``g`` (its tables and
    its buildings), one group after the other, keeps the disk reading while both stages compute; the
    run's own reads then find their files in the page cache: the chunks, and the metadata files that a
    read opens first (one of those not in the page cache waits behind every read the disk has queued for
    the next group: 1-7 s per zone on subsets of the field case before they were read ahead too). With
    ``ahead = 1`` and no byte budget at most two groups' files are in the page cache at once (a run reading
    its store as a stream drops each chunk once decoded); with a budget, the groups read ahead hold at most
    that many bytes more.

    The files are asked for by a child process (``process=True``: :mod:`hra.integration.pagecache` run as
    a script, one request per group), so that the reading does not wait for the engine's threads to let
    go of the interpreter lock between its ~4,000 system calls per zone (see that module); a thread of
    this process only schedules the requests. Where the child cannot be started, the thread asks itself.

    ``groups``: the zones of each group in the run's order (an empty list: a group the run skips).
    :meth:`reached` says which group the run has started; :meth:`close` ends the reading (the child is
    stopped at once). A hint only: no value depends on it (:meth:`TableStore.prefetch`).

    ``sizes`` and ``budget_bytes``: each group's stored bytes (an estimate) and how many bytes may be
    read ahead of the run: groups past the ``ahead`` ones are read too while the groups read ahead of the
    run (after the group it is at) hold at most ``budget_bytes``. The engine reads its table memory budget
    (``[compute] table_memory_gb``) ahead: with the field's ~0.6 GB groups one group ahead left the disk
    idle while a group computed and then the next group's tables waiting for it (iowait ~1 core for a
    minute and more of a 332 s warm run); reading ~2 GB ahead keeps the disk busy through both stages.
    """

    def __init__(self, store: TableStore, key: str, groups: list[list[int]], ahead: int = 1, process: bool = True,
                 sizes: Iterable[float] | None = None, budget_bytes: float = 0.0,
                 folders: Callable[[list[int]], list[str]] | None = None):
        self.store, self.key, self.groups, self.ahead = store, key, [list(g) for g in groups], int(ahead)
        #: zones -> the folders to read (default: their physical tables' site folders, :meth:`TableStore.site_folders`)
        self.folders = folders if folders is not None else (lambda zones: store.site_folders(key, zones))
        self.sizes = None if sizes is None else [float(b) for b in sizes]
        if self.sizes is not None and len(self.sizes) != len(self.groups):
            raise ValueError(f"{len(self.sizes)} group sizes for {len(self.groups)} groups")
        self.budget = float(budget_bytes)
        self.process = process
        self._cv = threading.Condition()
        self._at = -1  # the group the run has started (-1: none yet: the first group is read at once)
        self._closed = False
        self._ended = False
        self._child = None
        #: the groups asked for so far, in order, and the number of files of each (metadata and chunks)
        self.asked: list[int] = []
        self.files: list[int] = []
        #: the groups read so far, in order
        self.done: list[int] = []
        self._thread = threading.Thread(target=self._run, daemon=True, name="hra-table-read-ahead")

    def start(self) -> "ReadAhead":
        self._thread.start()
        return self

    def reached(self, g: int) -> None:
        """The run has started group ``g``: groups up to ``g + ahead`` may be read."""
        with self._cv:
            self._at = max(self._at, int(g))
            self._cv.notify_all()

    def wait_asked(self, g: int, timeout: float | None = None) -> bool:
        """Wait until every file of group ``g`` has been asked for (or the reading has ended): whether it was.

        A run that starts a group's tables before then reads the files not yet asked for itself, one at a
        time, beside the read-ahead's stream: on a disk that serves a few thousand requests a second the
        two streams of small reads then take longer together than the stream alone (measured: both cores
        waiting for the disk at 20-140 MB/s for a minute of a warm field run whose tables computed faster
        than the disk read them ahead). Call :meth:`reached` first (the group may not be read before)."""
        with self._cv:
            self._cv.wait_for(lambda: self._closed or self._ended or g in self.done or self._thread.ident is None,
                              timeout)
            return g in self.done

    @property
    def ended(self) -> bool:
        """Whether the reading has ended (every group asked for, stopped, or closed)."""
        with self._cv:
            return self._ended or self._closed

    def close(self, wait: bool = False) -> None:
        """End the reading (a group being read stops at once); ``wait``: until the thread has ended."""
        with self._cv:
            self._closed = True
            child = self._child
            self._cv.notify_all()
        if child is not None:
            try:
                child.kill()
            except OSError:
                pass
        if wait and self._thread.is_alive():
            self._thread.join()

    def _stopped(self) -> bool:
        return self._closed

    def _may_read(self, g: int) -> bool:
        """Group ``g`` may be read now: at most ``ahead`` groups past the run's, or more while the groups
        ahead of the run up to ``g`` hold at most the byte budget (called with the lock held)."""
        if g <= self._at + self.ahead:
            return True
        return self.sizes is not None and sum(self.sizes[self._at + 1:g + 1]) <= self.budget

    def _start_child(self):
        import subprocess

        script = getattr(pagecache, "__file__", None)
        if not sys.executable or not script or not os.path.isfile(script):
            return None
        try:
            return subprocess.Popen([sys.executable, "-I", "-S", script], stdin=subprocess.PIPE,
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        except OSError:
            return None

    def _ask(self, zones: list[int]) -> int | None:
        """Ask for the files of ``zones``: their number, ``None`` where the child ended (closed)."""
        folders = self.folders(zones)
        child = self._child
        if child is None:
            return pagecache.will_need(folders, stop=self._stopped)
        try:
            child.stdin.write(json.dumps(folders) + "\n")
            child.stdin.flush()
            line = child.stdout.readline()  # (waits without the interpreter lock)
            return int(line) if line.strip() else None
        except (OSError, ValueError):
            return None

    def _run(self) -> None:
        try:
            self._read_groups()
        finally:
            with self._cv:  # (wait_asked returns)
                self._ended = True
                self._cv.notify_all()

    def _read_groups(self) -> None:
        if not hasattr(os, "posix_fadvise"):
            return  # nothing to ask for
        if self.process:
            child = self._start_child()
            with self._cv:
                if self._closed and child is not None:
                    child.kill()
                self._child = child
        try:
            for g, zones in enumerate(self.groups):
                with self._cv:
                    self._cv.wait_for(lambda: self._closed or self._may_read(g))
                    if self._closed:
                        return
                if zones:
                    self.asked.append(g)
                    t = time.perf_counter()
                    n = self._ask(zones)
                    if n is None or self._closed:  # stopped part-way
                        return
                    self.files.append(n)
                    log.debug("table store read-ahead: group %d of %d (%d files) in %.1f s, the run at group %d",
                              g + 1, len(self.groups), n, time.perf_counter() - t, self._at + 1)
                with self._cv:
                    self.done.append(g)
                    self._cv.notify_all()
        finally:
            child = self._child
            if child is not None:
                try:
                    child.stdin.close()  # the child ends at the end of its input
                except OSError:
                    pass
                child.wait()
                child.stdout.close()


def _round_table(d: np.ndarray) -> np.ndarray:
    """:func:`hra.integration.kernels.round_table` (imported when needed: numba only then)."""
    from hra.integration.kernels import round_table

    return round_table(d)


def _compressor():
    """Blosc LZ4 level 5 with byte shuffle (lossless). Codecs measured on the 2,520 chunks of a V7 field zone
    (35 typologies x 72 branches of 3 x 3 x 102 x 144 float32, 1.33 GB; 1 thread, 2 shared cores):

    ============================  =========  ==============  ==============
    codec (Blosc, typesize 4)     size       decode [CPU s]  encode [CPU s]
    ============================  =========  ==============  ==============
    LZ4 5 + shuffle (this)        1.00       0.21            1.1
    LZ4HC 4 + shuffle             0.84       0.17            12.8
    LZ4HC 2 + shuffle             0.95-1.01  0.21-0.23       4.6
    zstd 1-3 + shuffle            1.11-1.12  0.46-0.72       2.7-5.0
    zstd 1-3 + bitshuffle         1.18-1.21  1.0-1.5         3.3-6.5
    zstd 1 + shuffle, 512 kB blk  0.83       0.39            2.1
    delta(int32, r) + LZ4HC 5     0.79       0.33 (+cumsum)  11.6
    ============================  =========  ==============  ==============

    The low half of a float32 mantissa is noise to every codec (the best lossless ratio is ~2.3). Since
    format 7 the tables keep 16 significant bits (:data:`hra.integration.kernels.TABLE_SIGNIFICANT_BITS`):
    every value's low byte is zero, one of the four byte planes that the shuffle makes, which LZ4 stores
    for nothing: 150 chunks of a field zone 0.596 -> 0.412 of the raw size with LZ4 5 + shuffle, decoded
    and encoded as fast (bitshuffle 0.438, zstd 1 0.444, LZ4HC 4 + bitshuffle 0.379 at ~15x the encoding
    time; 13 significant bits would gain < 1 % more with byte shuffle). LZ4HC 4
    is 16 % smaller and decodes ~0.04 s faster per zone, but its ~11 CPU s more per zone to encode would
    add ~15 min to the field's cold run (160 zones on 2 cores), whose table stage is already the larger
    part of its budget; zstd's entropy stage decodes ~2x slower than LZ4 (a warm run reads every entry).
    The chunks are ordinary Blosc frames (zarr and :func:`_read_chunk` decode any Blosc codec from the
    frame header)."""
    from zarr.codecs import BloscCodec

    return BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")


def _direct_layout(death_dir: Path, shape: tuple[int, ...], dtype) -> tuple[tuple[int, ...], int, str] | None:
    """``(chunk shape, bytes per chunk, key separator)`` where the ``death`` array is laid out as
    :meth:`TableStore.writer` writes it - zarr v3, :data:`TABLE_DTYPE`, one chunk per GMM branch,
    default chunk keys with separator ``.`` (``c.<branch>.0.0.0.0``: :data:`CHUNK_KEY_ENCODING`) or
    ``/`` (``c/<branch>/0/0/0/0``, zarr's default), codecs ``bytes`` (little-endian) then ``blosc``,
    fill value 0 - so that :meth:`TableStore.read` can decode the chunk files itself
    (:func:`_read_chunk`); ``None`` otherwise (read through zarr). The check reads the array's own
    metadata (``zarr.json``)."""
    try:
        meta = json.loads((death_dir / "zarr.json").read_text())
        codecs = meta.get("codecs", [])
        ok = (meta.get("zarr_format") == 3 and meta.get("node_type") == "array"
              and np.dtype(dtype) == np.dtype(TABLE_DTYPE) and meta.get("data_type") == np.dtype(TABLE_DTYPE).name
              and meta.get("chunk_grid") == {"name": "regular", "configuration": {"chunk_shape": [1, *shape[1:]]}}
              and meta.get("chunk_key_encoding", {}).get("name") == "default"
              and meta["chunk_key_encoding"].get("configuration", {}).get("separator") in (".", "/")
              and [c.get("name") for c in codecs] == ["bytes", "blosc"]
              and codecs[0].get("configuration", {}).get("endian", "little") == "little"
              and meta.get("fill_value") == 0.0 and not meta.get("storage_transformers"))
    except (OSError, ValueError, TypeError, AttributeError):
        return None
    if not ok:
        return None
    chunk = tuple(int(n) for n in shape[1:])
    return chunk, int(np.prod(chunk)) * np.dtype(TABLE_DTYPE).itemsize, meta["chunk_key_encoding"]["configuration"]["separator"]


def _open_direct(path: Path) -> tuple[dict, np.ndarray, tuple[int, ...], tuple] | None:
    """``(group attributes, branch array, death shape, death layout)`` of an entry read from its
    metadata and chunk files, where both arrays are laid out as :meth:`TableStore.writer` writes them:
    ``death`` as :func:`_direct_layout` checks, ``branch`` zarr v3 int64 in one chunk, codecs ``bytes``
    (little-endian) then ``zstd``; ``None`` otherwise (or a file missing or unreadable: then zarr opens
    the entry, and says what is wrong)."""
    from numcodecs import Zstd

    try:
        attrs = json.loads((path / "zarr.json").read_text()).get("attributes", {})
        shape = tuple(int(n) for n in json.loads((path / "death" / "zarr.json").read_text())["shape"])
        layout = _direct_layout(path / "death", shape, TABLE_DTYPE)
        meta = json.loads((path / "branch" / "zarr.json").read_text())
        bshape = tuple(int(n) for n in meta["shape"])
        codecs = meta.get("codecs", [])
        sep = meta.get("chunk_key_encoding", {}).get("configuration", {}).get("separator")
        if not (layout is not None and isinstance(attrs, dict) and meta.get("zarr_format") == 3
                and meta.get("node_type") == "array" and meta.get("data_type") == "int64" and len(bshape) == 2
                and meta.get("chunk_grid") == {"name": "regular", "configuration": {"chunk_shape": list(bshape)}}
                and meta["chunk_key_encoding"].get("name") == "default" and sep in (".", "/")
                and [c.get("name") for c in codecs] == ["bytes", "zstd"]
                and codecs[0].get("configuration", {}).get("endian", "little") == "little"
                and not meta.get("storage_transformers")):
            return None
        raw = Zstd().decode((path / "branch" / sep.join(("c", "0", "0"))).read_bytes())
        if len(raw) != 8 * math.prod(bshape):
            return None
        branch = np.frombuffer(raw, dtype="<i8").astype(np.int64).reshape(bshape)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RuntimeError):
        return None
    return attrs, branch, shape, layout


def _chunk_path(death_dir: Path, i: int, layout: tuple[tuple[int, ...], int, str]) -> Path:
    """The file of branch ``i``'s chunk: ``c.<i>.0...`` (one file in the array's folder, no
    sub-folders to create) or ``c/<i>/0/...`` (zarr's default keys)."""
    chunk, _, sep = layout
    return death_dir / sep.join(("c", str(i)) + ("0",) * len(chunk))


def _read_chunk(death_dir: Path | str, i: int, layout: tuple[tuple[int, ...], int], complete: bool,
                dest: np.ndarray | None = None, drop: bool = False) -> np.ndarray:
    """Branch ``i`` of an entry's ``death`` array from its chunk file (:func:`_direct_layout`). A missing
    chunk file is zeros (the fill value) where zarr wrote the entry, which leaves out all-zero
    chunks; an error where every chunk was written as a file (``complete``: the entry is damaged).
    ``dest``: a C-contiguous :data:`TABLE_DTYPE` array of the chunk's shape to decode into (and return).
    ``drop``: the file is dropped from the page cache once read (:meth:`TableStore.read`)."""
    chunk, nbytes, sep = layout
    path = os.path.join(os.fspath(death_dir), sep.join(("c", str(i)) + ("0",) * len(chunk)))  # = _chunk_path
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        if complete:
            raise
        if dest is None:
            return np.zeros(chunk, dtype=TABLE_DTYPE)
        dest[...] = 0
        return dest
    try:
        # a Blosc frame holds at most nbytes + 16 bytes: one read takes all of it (a longer file fails
        # the size check below)
        raw = os.read(fd, nbytes + _BLOSC_OVERHEAD + 1)
        if drop:
            drop_from_page_cache(fd)
    finally:
        os.close(fd)
    check_frame(raw, nbytes, f"chunk {path}")
    if dest is None:
        dest = np.empty(chunk, dtype=TABLE_DTYPE)
    elif dest.nbytes != nbytes or dest.dtype != TABLE_DTYPE or not dest.flags.c_contiguous:
        raise ValueError(f"destination of {dest.nbytes} bytes for a chunk of {nbytes}")
    _decompress_into(raw, dest, path)
    return dest if sys.byteorder == "little" else dest.byteswap(inplace=True)


def prune_key_dir(key_dir: Path) -> None:
    """After a clear: remove a key folder's empty site folders, and the key folder (its description file
    with it) once it holds no folder."""
    for site in list(key_dir.iterdir()):
        if site.is_dir():
            try:
                site.rmdir()  # only if empty
            except OSError:
                pass
    if not any(p.is_dir() for p in key_dir.iterdir()):
        _remove(key_dir)


def drop_from_page_cache(fd: int) -> None:
    """Ask the operating system to drop an open file's pages from its page cache (a hint: a streaming read
    of a store larger than memory, whose files are read once; nothing where ``posix_fadvise`` is missing)."""
    if hasattr(os, "posix_fadvise"):
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass


def check_frame(frame: bytes, nbytes: int, what: str) -> None:
    """Check a Blosc frame's header before decoding it: its uncompressed size (bytes 4-7, little-endian) is
    ``nbytes`` and its compressed size (bytes 12-15) the frame's length, so that a truncated or overlong file
    is an error, never a read past its bytes (``what``: the file or part, for the message)."""
    if (len(frame) < 16 or int.from_bytes(frame[4:8], "little") != nbytes
            or int.from_bytes(frame[12:16], "little") != len(frame)):
        raise ValueError(f"{what} does not hold {nbytes} bytes")


#: Most bytes a Blosc frame adds to its data (c-blosc's ``BLOSC_MAX_OVERHEAD``).
_BLOSC_OVERHEAD = 16


@functools.lru_cache(maxsize=1)
def _blosc_decompress_ctx():
    """c-blosc's ``blosc_decompress_ctx`` from the library that numcodecs carries, as a ctypes function
    (which lets go of the interpreter's lock for the call, where numcodecs' ``decompress`` holds it: the
    other worker of a warm table stage runs meanwhile), or ``None`` where it cannot be found (then
    numcodecs decodes). The ``_ctx`` functions keep no global state: safe from several threads."""
    import ctypes

    from numcodecs import blosc

    try:
        fn = ctypes.CDLL(blosc.__file__).blosc_decompress_ctx
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def _decompress_into(raw: bytes, dest: np.ndarray, path: str) -> None:
    """Decode the Blosc frame ``raw`` (sizes checked by the caller) into the C-contiguous ``dest``."""
    fn = _blosc_decompress_ctx()
    if fn is None:
        from numcodecs import blosc

        blosc.decompress(raw, dest)
        return
    n = fn(raw, dest.ctypes.data, dest.nbytes, 1)
    if n != dest.nbytes:
        raise ValueError(f"chunk {path} could not be decoded (Blosc returned {n})")


def _write_chunk(death_dir: Path, i: int, layout: tuple[tuple[int, ...], int], data: np.ndarray) -> None:
    """Write branch ``i`` of an entry's ``death`` array as its chunk file (:func:`_direct_layout`):
    the little-endian bytes compressed as one Blosc frame with the settings of :func:`_compressor`
    (which zarr, or :func:`_read_chunk`, decodes)."""
    from numcodecs import blosc

    chunk, nbytes, sep = layout
    raw = np.ascontiguousarray(data, dtype=np.dtype(TABLE_DTYPE).newbyteorder("<")).tobytes()
    if len(raw) != nbytes:
        raise ValueError(f"a table of {len(raw)} bytes for a chunk of {nbytes}")
    c = _compressor()
    shuffle = {"noshuffle": blosc.NOSHUFFLE, "shuffle": blosc.SHUFFLE, "bitshuffle": blosc.BITSHUFFLE}[c.shuffle.value]
    frame = blosc.compress(raw, c.cname.value.encode(), c.clevel, shuffle, 0, np.dtype(TABLE_DTYPE).itemsize)
    path = _chunk_path(death_dir, i, layout)
    if sep == "/":
        path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(frame)


def _remove(path: Path) -> bool:
    """Remove a file or folder (``False`` if it was gone already); a folder is first renamed to a
    temporary name, so that a reader never sees a half-removed entry."""
    if path.is_dir():
        tmp = path.parent / f"{TMP_PREFIX}rm-{path.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            os.rename(path, tmp)
        except OSError:
            return False
        shutil.rmtree(tmp, ignore_errors=True)
        return True
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


# ------------------------------------------------------------------------------------------
# what the engine passes to its table tasks
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreHandle:
    """A store and the model key of one run (picklable: sent to the table tasks). ``physical``: the
    physical tables are read from and written to the store (``[compute] table_store_kinds`` holds
    "physical"); ``forecast``: the run's forecast tables (:mod:`hra.integration.forecaststore`), or
    ``None`` (no forecast, or "forecast" not in the kinds)."""

    store: TableStore
    key: str
    physical: bool = True
    forecast: Any = None  # hra.integration.forecaststore.ForecastTables (that module builds on this one)


def handle_for(prep, store: TableStore | None, register: bool = True) -> StoreHandle | None:
    """The handle the table tasks use (the run's model key), the key registered in ``store`` (``register``)."""
    if store is None:
        return None
    desc = model_description(prep.gmm, prep.fragility, prep.magnitude.nodes, prep.distance_nodes_km, prep.cfg,
                             prep.files, getattr(prep.magnitude, "table_stride", 1))
    key = model_key(desc)
    if register:
        store.register(key, desc)
    return StoreHandle(store, key)


#: Bytes on disk of a stored entry over its raw float32 bytes (Blosc LZ4 + byte shuffle of 16-bit tables): 0.41
#: measured on the GMM V7 field zones (benchmarks/README.md, table format 7), 0.403 on the whole field case's
#: 6,980 entries at stride 2 (57.8 GB; format 8); an estimate, used before a run or a build to tell whether its
#: new entries fit on the store's disk.
STORE_COMPRESSION = 0.42
#: Free space a run or a build leaves on the table store's disk: a run whose new entries would leave less stores
#: none, a build refuses. [bytes]
STORE_RESERVE_BYTES = 2_000_000_000


def entry_bytes(gmm, fragility, mag, r_nodes: np.ndarray) -> float:
    """Estimated bytes on disk of one (site, typology) entry: every physical GMM branch's table
    (f, c, m, r x azimuth) in float32 times :data:`STORE_COMPRESSION`, at the magnitude nodes of ``mag``
    (:class:`hra.inputs.source.MagnitudeBins`) where its tables are computed (with ``[source]
    magnitude_table_stride`` 2 an entry holds those only: :func:`hra.integration.magnitudes.computed_nodes`)."""
    from hra.integration.condtables import n_azimuth
    from hra.integration.magnitudes import computed_nodes

    raw = (4 * gmm.tree.enumerate().n * fragility.fragility_node.size * fragility.consequence_node.size
           * computed_nodes(gmm, mag).size * np.asarray(r_nodes).size * n_azimuth(gmm))
    return raw * STORE_COMPRESSION


def count_missing(store: TableStore, key: str, typologies, items: Iterable[tuple[int, bool, int]]) -> int:
    """How many of the (zone, wierde, typology index) entries ``items`` are not in the store under ``key``."""
    return sum(1 for z, w, t in items if not store.entry_path(key, int(z), bool(w), typologies[int(t)]).is_dir())
