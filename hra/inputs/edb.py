"""Exposure database (EDB) in the Groningen chain's format, and the V6 site-response zones.

EDB (docs/model-chain.md §5; upstream ``tests/res/example_EDB.csv``): one row per BAG building with
``bag_building_id, point_x, point_y`` (RD New, EPSG:28992, m), ``main_use, secondary_use``,
``system_1..10`` / ``s_probability_1..10`` (candidate FCM classes and their probabilities),
``community``, ``wiede_flag`` (1 = on a wierde; the misspelling is upstream's, ``wierde_flag`` is
accepted too) and population columns ``sum_pop_*`` (persons). The file may start with a UTF-8
byte-order mark.

:func:`read_edb` returns a pandas DataFrame with normalised columns:

===================== ==========================================================================
``id``                building id (string)
``x``, ``y``          RD New coordinates [m]
``system_i``          candidate typology i (string, ``""`` where absent), i = 1..n
``s_probability_i``   its probability (float, 0 where absent)
``wierde``            bool
``municipality``      from ``community`` (string, may be empty)
``main_use``, ``secondary_use``  as in the file (strings)
``sum_pop_*``         population columns as in the file (float) [persons]
===================== ==========================================================================

Validation errors name the file, the row (file line), the column and the fix: ids unique,
coordinates finite, probabilities in [0, 1] summing to 1 within 1e-6, no probability without a
typology and vice versa, optionally typologies known to the FCM.

Zones: :func:`assign_zones_v6` maps points to the GMM V6/V7 site-response zones (field ``ID_V6``
of ``Geological_zones_V6.zip``, a zipped ESRI shapefile in RD New), read with pyogrio (no
geopandas needed). Rules:

* zones without coefficients (the lakes 2813 and 3411, or any id not in ``valid_zones``) are
  dropped first, so a point in a lake gets the nearest valid zone;
* a point inside or on the boundary of valid polygons gets their zone; **tie rule**: a point on
  a shared boundary (or in one of the tiny sliver overlaps of the shapefile) gets the **lowest**
  zone id among the polygons that contain it;
* a point outside every valid polygon gets the zone of the nearest polygon (ties: lowest id),
  as the chain's ``sjoin_nearest`` does.
"""

from __future__ import annotations

import functools
import io
import os
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

from hra.inputs.modeldata import LAKE_ZONES

#: Probabilities of the candidate typologies must sum to 1 within this.
PROBABILITY_TOLERANCE = 1e-6

_SYSTEM_RE = re.compile(r"^system_(\d+)$")
_PROB_RE = re.compile(r"^s_probability_(\d+)$")


class EDBError(ValueError):
    """The exposure file is malformed; the message names file, row, column and fix."""


def _err(path, row: int | None, column: str | None, what: str, fix: str) -> EDBError:
    where = f"{path}"
    if row is not None:
        where += f", row {row} (file line)"
    if column is not None:
        where += f", column {column!r}"
    return EDBError(f"{where}: {what}. Fix: {fix}")


def read_edb(path: str | os.PathLike, typologies: Iterable[str] | None = None) -> pd.DataFrame:
    """Read and validate an EDB file (see the module docstring for the output columns).

    Parameters
    ----------
    path
        CSV file in the chain's EDB layout (UTF-8, optional BOM).
    typologies
        If given, every candidate typology must be one of these (e.g. an FCM's typologies).
    """
    path = Path(path)
    data = path.read_bytes()
    raw = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding="utf-8-sig", skipinitialspace=True)
    raw.columns = [str(c).strip() for c in raw.columns]
    return normalise_edb(raw, source=str(path), typologies=typologies, strip=_needs_strip(data))


#: Whitespace that ``str.strip`` removes besides the space, as UTF-8 bytes: ASCII (without the line
#: ends) and the Unicode spaces (NEL, NBSP, U+1680, U+2000-200A, U+2028/2029, U+202F, U+205F, U+3000).
_RARE_WS = (b"\t", b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e", b"\x1f")
_UNICODE_WS = (b"\xc2\x85", b"\xc2\xa0", b"\xe1\x9a\x80", *(b"\xe2\x80" + bytes([c]) for c in range(0x80, 0x8b)),
               b"\xe2\x80\xa8", b"\xe2\x80\xa9", b"\xe2\x80\xaf", b"\xe2\x81\x9f", b"\xe3\x80\x80")
_PADDING = (b" ,", b", ", b" \n", b" \r", b"\n ")


def _needs_strip(data: bytes) -> bool:
    """Whether any value of the CSV bytes may carry whitespace that ``str.strip`` would remove.

    ``False`` only when no space touches a delimiter or a line end, no other whitespace character
    (tab, Unicode spaces, ...) and no quote character occur anywhere: then stripping every value
    changes nothing, and the reader skips it (about a third of the reading time of a large EDB).
    Conservative: ``True`` whenever unsure. A few substring searches over the bytes (fast).
    """
    body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    if b'"' in body or body[:1] == b" " or body.endswith(b" "):
        return True
    if any(p in body for p in _PADDING) or any(w in body for w in _RARE_WS):
        return True
    return not body.isascii() and any(u in body for u in _UNICODE_WS)


def normalise_edb(raw: pd.DataFrame, source: str = "<EDB>", typologies: Iterable[str] | None = None,
                  strip: bool = True) -> pd.DataFrame:
    """Normalise and validate an EDB table of strings (as read by :func:`read_edb`).

    ``strip=False`` skips stripping whitespace from the values (for a table known to carry none,
    as :func:`read_edb` checks on the file's bytes); the result is then the same, only faster.
    """
    cols = list(raw.columns)

    def text(col: str) -> pd.Series:
        v = raw[col].astype(str)
        return v.str.strip() if strip else v

    for c in ("bag_building_id", "point_x", "point_y"):
        if c not in cols:
            raise _err(source, 1, c, f"required column {c!r} missing (found {cols})", "use the EDB layout of example_EDB.csv")
    line = np.arange(len(raw)) + 2  # file line of each row (header = line 1)
    out = pd.DataFrame(index=pd.RangeIndex(len(raw)))
    ids = text("bag_building_id")
    if (ids == "").any():
        i = int(np.flatnonzero((ids == "").to_numpy())[0])
        raise _err(source, int(line[i]), "bag_building_id", "empty building id", "give every building an id")
    dup = ids.duplicated(keep="first").to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        first = int(np.flatnonzero((ids == ids.iloc[i]).to_numpy())[0])
        raise _err(source, int(line[i]), "bag_building_id", f"id {ids.iloc[i]!r} repeats row {int(line[first])}",
                   "make building ids unique")
    out["id"] = ids.to_numpy()
    for src, dst in (("point_x", "x"), ("point_y", "y")):
        v = pd.to_numeric(text(src), errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(v)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise _err(source, int(line[i]), src, f"coordinate {raw[src].iloc[i]!r} is not a finite number",
                       "give RD New (EPSG:28992) coordinates in metres")
        out[dst] = v

    sys_idx = sorted(int(m.group(1)) for c in cols if (m := _SYSTEM_RE.match(c)))
    prob_idx = sorted(int(m.group(1)) for c in cols if (m := _PROB_RE.match(c)))
    if not sys_idx:
        raise _err(source, 1, "system_1", "no typology columns system_i", "add system_1 and s_probability_1")
    if sys_idx != prob_idx:
        raise _err(source, 1, None, f"typology columns system_{sys_idx} and probability columns s_probability_{prob_idx} do not match",
                   "give each system_i its s_probability_i")
    known = None if typologies is None else set(typologies)
    total = np.zeros(len(raw))
    for i in sys_idx:
        sc, pc = f"system_{i}", f"s_probability_{i}"
        s = text(sc)
        ptxt = text(pc)
        p = pd.to_numeric(ptxt, errors="coerce").to_numpy(dtype=float)
        empty_p = (ptxt == "").to_numpy()
        bad_num = ~empty_p & ~np.isfinite(p)
        if bad_num.any():
            r = int(np.flatnonzero(bad_num)[0])
            raise _err(source, int(line[r]), pc, f"{ptxt.iloc[r]!r} is not a number", "give a probability in [0, 1]")
        p = np.where(empty_p, 0.0, p)
        has_s = (s != "").to_numpy()
        orphan = ~has_s & (p != 0)
        if orphan.any():
            r = int(np.flatnonzero(orphan)[0])
            raise _err(source, int(line[r]), sc, f"probability {p[r]} given without a typology", f"fill {sc} or clear {pc}")
        missing = has_s & empty_p
        if missing.any():
            r = int(np.flatnonzero(missing)[0])
            raise _err(source, int(line[r]), pc, f"typology {s.iloc[r]!r} has no probability", f"fill {pc}")
        out_of = (p < 0) | (p > 1)
        if out_of.any():
            r = int(np.flatnonzero(out_of)[0])
            raise _err(source, int(line[r]), pc, f"probability {p[r]} outside [0, 1]", "give a probability in [0, 1]")
        if known is not None:
            unk = has_s & ~s.isin(known).to_numpy()
            if unk.any():
                r = int(np.flatnonzero(unk)[0])
                raise _err(source, int(line[r]), sc, f"typology {s.iloc[r]!r} is not in the fragility model",
                           f"use one of {sorted(known)}")
        out[sc] = s.to_numpy()
        out[pc] = p
        total += p
    off = np.abs(total - 1.0) > PROBABILITY_TOLERANCE
    if off.any():
        r = int(np.flatnonzero(off)[0])
        raise _err(source, int(line[r]), "s_probability_*", f"typology probabilities sum to {total[r]:.9g}, not 1",
                   f"make s_probability_1..{sys_idx[-1]} add up to 1 (within {PROBABILITY_TOLERANCE})")

    flag_col = "wiede_flag" if "wiede_flag" in cols else ("wierde_flag" if "wierde_flag" in cols else None)
    if flag_col is None:
        out["wierde"] = np.zeros(len(raw), dtype=bool)
    else:
        f = text(flag_col).str.lower()
        truthy = f.isin(["1", "1.0", "true", "yes", "y", "t"]).to_numpy()
        falsy = f.isin(["0", "0.0", "false", "no", "n", "f", ""]).to_numpy()
        bad = ~(truthy | falsy)
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise _err(source, int(line[r]), flag_col, f"{raw[flag_col].iloc[r]!r} is not 0/1", "use 1 for a building on a wierde, else 0")
        out["wierde"] = truthy
    out["municipality"] = text("community").to_numpy() if "community" in cols else ""
    for c in ("main_use", "secondary_use"):
        if c in cols:
            out[c] = text(c).to_numpy()
    for c in cols:
        if c.startswith("sum_pop_") or c.startswith("population"):
            txt = text(c)
            v = pd.to_numeric(txt, errors="coerce").to_numpy(dtype=float)
            v = np.where((txt == "").to_numpy(), 0.0, v)
            bad = ~np.isfinite(v) | (v < 0)
            if bad.any():
                r = int(np.flatnonzero(bad)[0])
                raise _err(source, int(line[r]), c, f"{txt.iloc[r]!r} is not a number >= 0", "give a number of persons")
            out[c] = v
    return out


def typology_probabilities(edb: pd.DataFrame, typologies: Sequence[str]) -> np.ndarray:
    """Matrix (n_buildings, n_typologies) of typology probabilities from ``system_i``/``s_probability_i``.

    Vectorised over buildings; raises ``KeyError`` for a typology not in ``typologies``.
    """
    index = {t: j for j, t in enumerate(typologies)}
    n = len(edb)
    out = np.zeros((n, len(typologies)))
    rows = np.arange(n)
    i = 1
    while f"system_{i}" in edb.columns:
        s = edb[f"system_{i}"].to_numpy()
        p = edb[f"s_probability_{i}"].to_numpy(dtype=float)
        has = s != ""
        unknown = sorted(set(s[has]) - set(index))
        if unknown:
            raise KeyError(f"typologies {unknown} (column system_{i}) are not among {list(typologies)}")
        cols = np.array([index.get(v, 0) for v in s], dtype=np.int64)
        np.add.at(out, (rows[has], cols[has]), p[has])
        i += 1
    return out


# ---------------------------------------------------------------------------------------------
# Zones
# ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _read_zone_polygons(path: str, field: str) -> tuple[np.ndarray, np.ndarray]:
    import pyogrio.raw
    import shapely

    uri = path if path.startswith(("zip://", "/vsizip/")) else (f"zip://{path}" if path.lower().endswith(".zip") else path)
    meta, _, geom, fields = pyogrio.raw.read(uri)
    names = [str(f) for f in meta["fields"]]
    if field not in names:
        raise KeyError(f"{path}: no field {field!r}; fields are {names}")
    ids = np.asarray(fields[names.index(field)]).astype(np.int64)
    polys = shapely.make_valid(shapely.from_wkb(geom))
    return ids, polys


def read_zones_v6(zip_path: str | os.PathLike, field: str = "ID_V6") -> tuple[np.ndarray, np.ndarray]:
    """Zone ids and (made-valid) shapely polygons of ``Geological_zones_V6.zip`` (RD New)."""
    return _read_zone_polygons(str(zip_path), field)


def assign_zones_v6(
    x: np.ndarray,
    y: np.ndarray,
    zip_path: str | os.PathLike,
    valid_zones: Iterable[int] | None = None,
    field: str = "ID_V6",
) -> np.ndarray:
    """Site-response zone (ID_V6) of each point, with the rules of the module docstring.

    Parameters
    ----------
    x, y
        RD New coordinates (EPSG:28992). [m]
    zip_path
        ``Geological_zones_V6.zip`` (zipped shapefile).
    valid_zones
        Zones with coefficients (e.g. ``GroningenV7().zones``); default: all but the lakes
        2813 and 3411.

    Returns
    -------
    np.ndarray of int64, one zone per point.
    """
    import shapely

    xa = np.asarray(x, float).ravel()
    ya = np.asarray(y, float).ravel()
    if xa.shape != ya.shape:
        raise ValueError("x and y must have the same length")
    if not (np.all(np.isfinite(xa)) and np.all(np.isfinite(ya))):
        raise ValueError("coordinates must be finite")
    ids, polys = read_zones_v6(zip_path, field)
    keep = ~np.isin(ids, LAKE_ZONES) if valid_zones is None else np.isin(ids, np.asarray(list(valid_zones), np.int64))
    ids, polys = ids[keep], polys[keep]
    if ids.size == 0:
        raise ValueError("no valid zone polygons")
    tree = shapely.STRtree(polys)
    pts = shapely.points(xa, ya)
    out = np.full(xa.size, np.iinfo(np.int64).max, dtype=np.int64)
    ip, jg = tree.query(pts, predicate="intersects")  # inside or on the boundary
    np.minimum.at(out, ip, ids[jg])  # tie rule: lowest zone id
    missing = np.flatnonzero(out == np.iinfo(np.int64).max)
    if missing.size:
        ip2, jg2 = tree.query_nearest(pts[missing], all_matches=True)
        np.minimum.at(out, missing[ip2], ids[jg2])
    return out.reshape(np.shape(x))
