"""Stored per-combination tables of a forecast: reruns with the same magnitude basis skip the table stage.

What is stored
--------------
A forecast run (``[source] forecast``) turns the physical death tables of each site and typology
(:mod:`hra.integration.tablestore`) into the tables the building pass reads: per selected model
combination ``u`` (source branch, GMM combination, fragility, consequence) and per (distance,
azimuth, basis function) row ``r``, the integral over magnitude of the death table against the
forecast's magnitude basis, ``q[r, u]``, and the tree mean ``qbar[r, s]`` per source branch
(:func:`hra.integration.engine.zone_tables`). Computing them is most of a warm run's table stage
(expanding the stored magnitude nodes, the basis products, q's layout: ~60 % of a warm field run's
CPU), and they depend on the forecast only through its magnitude basis ``phi[s, k, m]``, not on
its rates, cells or years (those enter the building pass as per-cell coefficients). So a run whose
basis, tree selection and models are those of an earlier run reads q and qbar from here instead:
a rerun after a change of the exposure's buildings (same sites and typologies), of the outputs,
the policy or the quantiles; or a new forecast whose magnitude-frequency shapes are the same.

Layout
------
::

    <store root>/forecast/<forecast key>/forecast.json            what the key stands for
    <store root>/forecast/<forecast key>/z<zone>-w<0|1>/<typology> one entry: one file

An entry file is ``MAGIC``, the length of a JSON header (4 bytes, little-endian), the header
(zone, wierde, typology, and per array its shape, dtype and bytes on disk), then two Blosc frames
(LZ4, byte shuffle, lossless): q (rows, combinations) in the run's ``[run] table_precision`` and
qbar (rows, source branches) in float64. A read decodes straight into the run's table rows.

``<forecast key>`` is the SHA-256 (32 hex digits) of a canonical JSON of :func:`description`: the
physical tables' model key (models, options, grids, table format and package version), this
module's format version, q's dtype, and digests of the magnitude basis, the median map, the
selected combinations, the logic tree's sizes and weights and the azimuth projection: whatever
changes a value of q or qbar changes the key, so a stale entry is never read.

Writes are atomic (a temporary file beside the entry, then :func:`os.replace`; two writers of one
entry write the same bytes); an unreadable entry is removed and computed again. The entries are
kept by ``[compute] table_store_kinds`` (``"forecast"``); ``hra tables info`` lists them and
``hra tables clear`` removes them with the physical tables.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from hra.integration import tablestore
from hra.integration.tablestore import (FORECAST_DIR, MARKS, TMP_GRACE_S, TMP_PREFIX, USED_MARK_S, EntrySet,
                                        StoreStats, safe_name, site_name)

log = logging.getLogger("hra")

#: Version of the entry files' layout and of the code that computes q and qbar (part of every key).
FORECAST_FORMAT_VERSION = 1
#: First bytes of an entry file.
MAGIC = b"HRAQTAB1"
#: Bytes on disk of an entry over its raw bytes: q's float32 values keep every bit of their mantissa, which
#: LZ4 with byte shuffle compresses 1.38-1.45x (20 rows of the field case), 0.706 of the raw bytes on the whole
#: field case's 6,225 entries (17.5 GB; benchmarks/README.md, the nineteenth stop); an estimate used before a
#: run to tell whether its new entries fit on the store's disk.
FORECAST_COMPRESSION = 0.72
#: Largest array an entry holds (one Blosc frame is limited to 2 GB) [bytes].
MAX_ARRAY_BYTES = 1_900_000_000


def description(model_key: str, basis: np.ndarray, median_map, needed: np.ndarray, model_sizes: Iterable[int],
                model_weights: Iterable[np.ndarray], q_dtype, projection: np.ndarray | None,
                files: dict[str, str] | None = None) -> dict[str, Any]:
    """Everything a forecast run's q and qbar depend on besides site and typology, as plain JSON.

    Parameters
    ----------
    model_key
        The physical tables' key (:func:`hra.integration.tablestore.model_key`: models, options,
        magnitude and distance grids, table format and package version).
    basis
        The forecast's magnitude basis ``phi[s, k, m]`` (:class:`hra.inputs.forecast.ForecastMagnitude`).
    median_map
        :class:`hra.chain.MedianMap` of the GMM's magnitude-dependent median weights, or ``None``.
    needed, model_sizes, model_weights
        The selected model combinations (flat indices over ``model_sizes``) and the branch weights of
        the five factors (:func:`hra.integration.engine.model_factors`).
    q_dtype
        ``[run] table_precision``.
    projection
        The strike model's azimuth projection (:func:`hra.integration.condtables.azimuth_projection`).
    files
        name -> sha256 of the run's input files: the forecast's is recorded (what made the basis; not
        part of the key, which holds the basis itself).
    """
    from hra.outputs import package_version

    digest = tablestore._digest_arrays  # (SHA-256 of float64 bytes and shapes, as the physical tables' key)
    mm = None if median_map is None else {"node": median_map.node, "labels": list(median_map.labels),
                                          "sha256": digest(median_map.weights, median_map.mix)}
    return {
        "forecast_format_version": FORECAST_FORMAT_VERSION,
        "package_version": package_version(),
        "model_key": model_key,
        "q_dtype": np.dtype(q_dtype).name,
        "basis": {"shape": [int(n) for n in np.shape(basis)], "sha256": digest(basis)},
        "median_map": mm,
        "combinations": {"n": int(np.size(needed)), "sizes": [int(n) for n in model_sizes],
                         "sha256": digest(np.asarray(needed, dtype=np.int64), *model_weights)},
        "azimuth_projection": None if projection is None else digest(projection),
        "forecast_files": {k: v for k, v in sorted((files or {}).items()) if k.startswith("source:")},
    }


def forecast_key(desc: dict[str, Any]) -> str:
    """SHA-256 (32 hex digits) of the canonical JSON of a :func:`description`, the recorded files left out."""
    keyed = {k: v for k, v in desc.items() if k != "forecast_files"}
    return hashlib.sha256(json.dumps(keyed, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class ForecastTables:
    """The forecast tables of one run: ``<store root>/forecast/<key>``, q's dtype; picklable (sent to the
    table tasks with the :class:`hra.integration.tablestore.StoreHandle`). ``writable=False``: entries are
    read, none written (a run whose new entries would not fit on the disk)."""

    root: Path
    key: str
    dtype: str
    writable: bool = True
    stats: StoreStats = field(default_factory=StoreStats, compare=False, hash=False)

    @property
    def folder(self) -> Path:
        return Path(self.root) / FORECAST_DIR / self.key

    def entry_path(self, zone: int, wierde: bool, typology: str) -> str:
        return os.path.join(os.fspath(self.root), FORECAST_DIR, self.key, site_name(zone, wierde), safe_name(typology))

    def present(self, zone: int, wierde: bool, typology: str) -> bool:
        return os.path.isfile(self.entry_path(zone, wierde, typology))

    def site_folders(self, zones: Iterable[int]) -> list[str]:
        """The entry folders of ``zones`` (both wierde variants; existing or not)."""
        base = os.path.join(os.fspath(self.root), FORECAST_DIR, self.key)
        return [os.path.join(base, site_name(z, w)) for z in zones for w in (False, True)]

    def register(self, desc: dict[str, Any]) -> None:
        """Write ``forecast.json`` (once, atomically) so that ``hra tables info`` can say what the key is."""
        tablestore.write_description(self.folder / "forecast.json", self.key, desc, Path(self.root))

    def read(self, zone: int, wierde: bool, typology: str, q_out: np.ndarray, qbar_out: np.ndarray,
             drop: bool = False) -> bool:
        """Decode one entry into ``q_out`` (rows, combinations) and ``qbar_out`` (rows, source branches), both
        C-contiguous, of the entry's shapes and dtypes; ``False`` (the outputs undefined) where the entry is
        absent, or unreadable (then it is removed: the run computes it and writes it again). ``drop``: the
        file leaves the page cache once read (a streaming read of a store larger than memory)."""
        path = self.entry_path(zone, wierde, typology)
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return False
        try:
            try:
                st = os.fstat(fd)
                raw = _read_all(fd, st.st_size)
                if drop:
                    tablestore.drop_from_page_cache(fd)
            finally:
                os.close(fd)
            header, offset = _parse_header(raw, path)
            if (header.get("typology") != typology or header.get("zone") != int(zone)
                    or header.get("wierde") != bool(wierde)):
                raise ValueError("entry does not match its name")
            for name, dest in (("q", q_out), ("qbar", qbar_out)):
                spec = header[name]
                if (tuple(spec["shape"]) != dest.shape or np.dtype(spec["dtype"]) != dest.dtype
                        or not dest.flags.c_contiguous):
                    raise ValueError(f"{name} of shape {tuple(spec['shape'])} {spec['dtype']}, not {dest.shape} "
                                     f"{dest.dtype} as expected")
                n = int(spec["frame"])
                _decode(raw[offset:offset + n], dest, path)
                offset += n
            if offset != len(raw):
                raise ValueError(f"{len(raw) - offset} bytes after the frames")
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("table store: removing unreadable forecast entry %s (%s); it is computed again", path, exc)
            _unlink(path)
            return False
        if time.time() - st.st_mtime > USED_MARK_S:
            MARKS.put(path)  # "last used" (clear --older-than), set once the run's reads are done
        self.stats.read += 1
        return True

    def write(self, zone: int, wierde: bool, typology: str, q: np.ndarray, qbar: np.ndarray) -> bool:
        """Write one entry atomically (q in this store's dtype, qbar in float64); ``False`` where not written
        (not writable, the disk full, too large)."""
        if not self.writable or self.stats.full:
            return False
        q = np.ascontiguousarray(q, dtype=np.dtype(self.dtype).newbyteorder("<"))
        qbar = np.ascontiguousarray(qbar, dtype=np.dtype("<f8"))
        if max(q.nbytes, qbar.nbytes) > MAX_ARRAY_BYTES:
            return False
        path = self.entry_path(zone, wierde, typology)
        frames = [_encode(q), _encode(qbar)]
        header = {"typology": typology, "zone": int(zone), "wierde": bool(wierde), "key": self.key,
                  "forecast_format_version": FORECAST_FORMAT_VERSION,
                  "q": {"shape": list(q.shape), "dtype": np.dtype(self.dtype).name, "frame": len(frames[0]),
                        "dims": ["row", "combination"]},
                  "qbar": {"shape": list(qbar.shape), "dtype": "float64", "frame": len(frames[1]),
                           "dims": ["row", "source_branch"]}}
        text = json.dumps(header, sort_keys=True).encode()
        blob = b"".join([MAGIC, len(text).to_bytes(4, "little"), text, *frames])
        tmp = os.path.join(os.path.dirname(path), f"{TMP_PREFIX}{os.path.basename(path)}-{os.getpid()}-"
                                                  f"{uuid.uuid4().hex[:8]}")
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(blob)
            os.replace(tmp, path)  # (a second writer of the entry writes the same bytes)
        except OSError as exc:
            _unlink(tmp)
            tablestore.write_failure(self.stats, self.root, path, exc,
                                     'leave "forecast" out of [compute] table_store_kinds')
            return False
        self.stats.written += 1
        self.stats.bytes_written += len(blob)
        return True


def _read_all(fd: int, size: int) -> bytes:
    parts, got = [], 0
    while got < size:
        chunk = os.read(fd, size - got)
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return parts[0] if len(parts) == 1 else b"".join(parts)


def _parse_header(raw: bytes, path: str) -> tuple[dict[str, Any], int]:
    if len(raw) < len(MAGIC) + 4 or raw[:len(MAGIC)] != MAGIC:
        raise ValueError("not a forecast table entry")
    n = int.from_bytes(raw[len(MAGIC):len(MAGIC) + 4], "little")
    start = len(MAGIC) + 4
    if start + n > len(raw):
        raise ValueError("header cut short")
    header = json.loads(raw[start:start + n])
    if not isinstance(header, dict) or header.get("forecast_format_version") != FORECAST_FORMAT_VERSION:
        raise ValueError("another entry format")
    return header, start + n


def _encode(a: np.ndarray) -> bytes:
    """One Blosc frame of ``a``'s bytes: LZ4 level 5, byte shuffle by the item size (lossless)."""
    from numcodecs import blosc

    return blosc.compress(a.tobytes(), b"lz4", 5, blosc.SHUFFLE, 0, a.dtype.itemsize)


def _decode(frame: bytes, dest: np.ndarray, path: str) -> None:
    """Decode a Blosc frame into ``dest`` (its sizes checked first: never a read past the frame)."""
    tablestore.check_frame(frame, dest.nbytes, f"a frame of {len(frame)} bytes of {path}")
    tablestore._decompress_into(frame, dest, path)
    if sys.byteorder != "little":  # pragma: no cover - big-endian hosts
        dest.byteswap(inplace=True)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# ------------------------------------------------------------------------------------------
# listing and cleaning (hra tables info / clear)
# ------------------------------------------------------------------------------------------


def _key_dirs(root: Path) -> list[Path]:
    base = Path(root) / FORECAST_DIR
    if not base.is_dir():
        return []
    return sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(TMP_PREFIX))


def _entries(key_dir: Path) -> list[Path]:
    return [e for site in sorted(key_dir.iterdir()) if site.is_dir() and not site.name.startswith(TMP_PREFIX)
            for e in sorted(site.iterdir()) if e.is_file() and not e.name.startswith(TMP_PREFIX)]


def _temporaries(key_dir: Path) -> list[Path]:
    return [q for site in key_dir.iterdir() if site.is_dir() for q in site.iterdir() if q.name.startswith(TMP_PREFIX)]


def _description(key_dir: Path) -> dict[str, Any]:
    return tablestore.read_description(key_dir / "forecast.json")


def is_stale(desc: dict[str, Any]) -> bool:
    """Whether a forecast key was written by another entry format or package version (never read by this one)."""
    from hra.outputs import package_version

    if not desc:
        return False
    return (desc.get("forecast_format_version") != FORECAST_FORMAT_VERSION
            or desc.get("package_version") != package_version())


def info(root: Path) -> list[EntrySet]:
    """One :class:`hra.integration.tablestore.EntrySet` per forecast key under the store's ``root``."""
    out = []
    for kd in _key_dirs(root):
        entries = _entries(kd)
        stats = [e.stat() for e in entries]
        desc = _description(kd)
        out.append(EntrySet(kd.name, desc, len(entries), sum(s.st_size for s in stats),
                            max((s.st_mtime for s in stats), default=0.0), len(_temporaries(kd)), is_stale(desc)))
    return out


def clear(root: Path, older_than_days: float | None = None, stale: bool = False) -> tuple[int, int]:
    """Remove forecast entries under the store's ``root`` as :meth:`hra.integration.tablestore.TableStore.clear`
    does the physical ones (all, those unused for ``older_than_days``, or those of stale keys); returns
    (entries removed, bytes freed)."""
    MARKS.flush()
    now = time.time()
    n = freed = 0
    for kd in _key_dirs(root):
        if stale and not is_stale(_description(kd)):
            continue
        for tmp in _temporaries(kd):
            try:
                st = tmp.stat()
            except FileNotFoundError:
                continue
            if older_than_days is None or now - st.st_mtime > TMP_GRACE_S:
                _unlink(os.fspath(tmp))
                freed += st.st_size
        for e in _entries(kd):
            try:
                st = e.stat()
            except FileNotFoundError:
                continue
            if older_than_days is None or now - st.st_mtime > older_than_days * 86400.0:
                try:
                    e.unlink()
                except FileNotFoundError:
                    continue
                n += 1
                freed += st.st_size
        tablestore.prune_key_dir(kd)
    return n, freed
