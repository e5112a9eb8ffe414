"""Exposure: reading, validating and normalising building data, and arrays for the engine.

An exposure file lists buildings, one per row:

=====================  ========  ==========================================================
column                 required  meaning
=====================  ========  ==========================================================
``id``                 yes       building id, any non-empty text, unique
``x``, ``y``           yes       location [m, EPSG:28992] (RD New)
``typology``           one of    the building's structural system (typology), certain
``system_i``,          these     up to 10 candidate systems ``i = 1..10`` with their
``s_probability_i``    two       assignment probabilities (summing to 1 per building)
``zone``               no        site-response zone id (integer >= 0)
``municipality``       no        municipality name
``population_inside``  no        persons inside on average [persons], >= 0
``wierde``             no        1 if the building stands on a wierde (dwelling mound), else 0
=====================  ========  ==========================================================

Column names are matched after stripping blanks and lower-casing; other columns are ignored.
CSV files may be comma- or semicolon-separated (Dutch spreadsheet exports use ``;``) and may start
with a UTF-8 byte-order mark. Parquet files need ``pyarrow`` (or ``fastparquet``).

:func:`read_exposure` (a file) and :func:`validate_exposure` (a DataFrame) return the
**normalised layout**: columns ``id`` (str), ``x``, ``y`` (float64), ``zone`` (Int64, only when
given), ``municipality`` (str, ``""`` when unknown), ``population_inside`` (float64, NaN when
unknown), ``wierde`` (bool), then ``system_1, s_probability_1, ..., system_K, s_probability_K``.
Each building's candidates are packed to the front in the order given; ``K`` is the largest number
of candidates of any building; unused slots hold ``""`` and ``0.0``. A single ``typology`` column
becomes ``system_1`` with probability 1.

Every problem raises :class:`ExposureError` naming the file, the row, the column and the fix.
**Row numbering**: in a CSV file, rows are counted as a spreadsheet shows them, the header being
row 1, so the first building is row 2. In a Parquet file or a DataFrame there is no header row and
records are counted from 1 (the first building is record 1).

:func:`exposure_arrays` turns the normalised table into the plain numpy arrays the engine uses,
and :func:`building_keys` gives every building a stable 64-bit key for its random streams.
"""

from __future__ import annotations

import csv
import difflib
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd

from hra.core.fileio import atomic_write

#: Largest number of typology candidates per building (``system_1..system_10``).
MAX_CANDIDATES = 10
#: Tolerance on the sum of a building's typology probabilities.
PROBABILITY_TOLERANCE = 1e-6
#: Plausible RD New box [m, EPSG:28992]: the Netherlands with a margin.
RD_X_RANGE_M = (0.0, 300_000.0)
RD_Y_RANGE_M = (289_000.0, 629_000.0)

REQUIRED_COLUMNS = ("id", "x", "y")
OPTIONAL_COLUMNS = ("zone", "municipality", "population_inside", "wierde")

_PAIR_RE = re.compile(r"^(system|s_probability)_(\d+)$")
_TRUE_WORDS = {"1", "1.0", "true", "yes", "ja", "y", "j"}
_FALSE_WORDS = {"0", "0.0", "false", "no", "nee", "n"}


def system_column(i: int) -> str:
    """Name of the ``i``-th (1-based) typology candidate column."""
    return f"system_{i}"


def probability_column(i: int) -> str:
    """Name of the ``i``-th (1-based) typology probability column."""
    return f"s_probability_{i}"


class ExposureError(ValueError):
    """A problem in exposure data, with where it is and how to fix it.

    Attributes
    ----------
    source
        File path (or ``"<DataFrame>"``) the data came from.
    row
        Row number as shown in the message (see the module docstring for the numbering), or None.
    column
        Column name(s) concerned, or None.
    problem, fix
        What is wrong, and what to do about it.
    """

    def __init__(
        self,
        source: str | os.PathLike,
        problem: str,
        fix: str,
        *,
        row: str | None = None,
        column: str | None = None,
    ) -> None:
        self.source = str(source)
        self.row = row
        self.column = column
        self.problem = problem
        self.fix = fix
        where = [self.source]
        if row is not None:
            where.append(row)
        if column is not None:
            where.append(f"column {column!r}" if "," not in column else f"columns {column}")
        super().__init__(f"{', '.join(where)}: {problem}. Fix: {fix}")


# --------------------------------------------------------------------------------------------
# Row numbering
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Rows:
    """User-facing numbers of the data rows and how to describe them."""

    numbers: np.ndarray  # (n,) int64, the number a user sees for each remaining data row
    spreadsheet: bool  # True: spreadsheet numbering (header = row 1); False: records from 1

    def label(self, i: int, more: int = 0) -> str:
        """Text for data row ``i`` (0-based position), noting ``more`` further offending rows."""
        n = int(self.numbers[i])
        text = f"row {n} (spreadsheet numbering, header = row 1)" if self.spreadsheet else f"record {n} (first record = 1)"
        if more > 0:
            text += f" and {more} more row{'s' if more > 1 else ''}"
        return text

    def pair(self, i: int, j: int) -> str:
        a, b = int(self.numbers[i]), int(self.numbers[j])
        if self.spreadsheet:
            return f"rows {a} and {b} (spreadsheet numbering, header = row 1)"
        return f"records {a} and {b} (first record = 1)"

    @property
    def header(self) -> str:
        return "row 1 (the header)" if self.spreadsheet else "the column names"


def _first(mask: np.ndarray) -> tuple[int, int]:
    """Index of the first True and the number of further True entries."""
    idx = np.flatnonzero(mask)
    return int(idx[0]), int(idx.size - 1)


# --------------------------------------------------------------------------------------------
# Cell parsing (vectorised)
# --------------------------------------------------------------------------------------------


def _as_text(values: pd.Series) -> np.ndarray:
    """Cells as stripped Python strings (object array); missing cells become ``""``."""
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_integer_dtype(dtype):
        arr = values.to_numpy(dtype=object, na_value=None)
        return np.array(["" if v is None else str(v) for v in arr], dtype=object)
    if pd.api.types.is_float_dtype(dtype):
        arr = values.to_numpy(dtype=np.float64, na_value=np.nan)
        # 12.0 -> "12" so that numeric ids read from Parquet look as they were typed
        return np.array(
            ["" if v != v else (str(int(v)) if float(v).is_integer() else repr(float(v))) for v in arr], dtype=object
        )
    arr = values.to_numpy(dtype=object)
    missing = pd.isna(arr)
    if missing.any():
        arr = arr.copy()
        arr[missing] = ""
    out = np.empty(arr.size, dtype=object)
    out[:] = [str(v).strip() for v in arr]
    return out


def _as_float(values: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cells as float64.

    Returns ``(value, empty, bad)``: ``empty`` marks missing cells, ``bad`` cells that hold text
    that is not a number; both are NaN in ``value``. Text ``"nan"``/``"inf"`` parses to NaN/inf.
    """
    if pd.api.types.is_bool_dtype(values.dtype):
        v = values.to_numpy(dtype=float, na_value=np.nan)
        return v, np.isnan(v), np.zeros(v.shape, bool)
    if pd.api.types.is_numeric_dtype(values.dtype):
        v = values.to_numpy(dtype=float, na_value=np.nan)
        return v, np.isnan(v), np.zeros(v.shape, bool)
    text = _as_text(values)
    empty = text == ""
    parsed = pd.to_numeric(pd.Series(np.where(empty, "nan", text), dtype=object), errors="coerce")
    v = parsed.to_numpy(dtype=float, na_value=np.nan)
    lowered = np.char.lower(text.astype(str))
    literal_nan = np.isin(lowered, ["nan", "+nan", "-nan"])
    bad = np.isnan(v) & ~empty & ~literal_nan
    return v, empty, bad


def _check_parsed(
    name: str, value: np.ndarray, bad: np.ndarray, text: np.ndarray | None, rows: _Rows, source: str, fix: str
) -> None:
    if bad.any():
        i, more = _first(bad)
        shown = f" ({text[i]!r})" if text is not None else ""
        raise ExposureError(source, f"not a number{shown}", fix, row=rows.label(i, more), column=name)


# --------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------


def _is_text_column(name: str) -> bool:
    """Columns read as text from CSV (all others are left to pandas' number parsing)."""
    name = name.strip().lower()
    return name in ("id", "municipality", "typology") or re.match(r"^system_\d+$", name) is not None


def _read_csv(path: Path) -> pd.DataFrame:
    """Read a CSV file: text columns as str, other columns parsed by pandas (fast), blanks as NaN.

    A column that holds something other than numbers comes back as text; the validation then
    reports the offending cell.
    """
    empty_fix = "write a header line such as 'id,x,y,typology' and one row per building"
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            header = fh.readline()
    except UnicodeDecodeError as exc:
        raise ExposureError(path, f"not UTF-8 text ({exc.reason})", "save the file as CSV UTF-8") from None
    if not header.strip():
        raise ExposureError(path, "the file is empty (no header, no rows)", empty_fix, row="row 1 (the header)")
    sep = ";" if header.count(";") > header.count(",") else ","
    names = next(csv.reader([header], delimiter=sep))
    try:
        return pd.read_csv(
            path,
            sep=sep,
            dtype={nm: str for nm in names if _is_text_column(nm)},
            keep_default_na=False,
            na_values=[""],
            skip_blank_lines=False,
            encoding="utf-8-sig",
        )
    except pd.errors.EmptyDataError:
        raise ExposureError(path, "the file is empty (no header, no rows)", empty_fix, row="row 1 (the header)") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise ExposureError(
            path, f"cannot be parsed as CSV ({exc})", f"check that every row has as many {sep!r}-separated cells as the header"
        ) from None


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except ImportError as exc:
        raise ExposureError(
            path,
            f"reading Parquet needs the optional package pyarrow (or fastparquet), which is not installed ({exc})",
            "install it (pip install pyarrow) or save the buildings as CSV",
        ) from None
    except Exception as exc:  # noqa: BLE001 - any engine error means the file is not readable Parquet
        raise ExposureError(path, f"cannot be read as Parquet ({type(exc).__name__}: {exc})", "check the file") from None


def read_exposure(path: str | os.PathLike, known_typologies: Iterable[str] | None = None) -> pd.DataFrame:
    """Read, validate and normalise an exposure file.

    Parameters
    ----------
    path
        CSV (``.csv``, ``.txt``) or Parquet (``.parquet``, ``.pq``) file, columns as in the module
        docstring; coordinates [m, EPSG:28992].
    known_typologies
        If given, every typology named in the file must be one of these (e.g. the typologies of the
        fragility set); otherwise any non-empty name is accepted.

    Returns
    -------
    pandas.DataFrame
        The normalised layout (module docstring); ``df.attrs["source"]`` holds the path.

    Raises
    ------
    ExposureError
        With file, row (CSV: spreadsheet numbering, header = row 1; Parquet: records from 1),
        column and fix.
    """
    path = Path(path)
    if not path.is_file():
        raise ExposureError(path, "file not found", "check the path (relative paths are taken from the working directory)")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt"):
        raw = _read_csv(path)
        is_csv = True
    elif suffix in (".parquet", ".pq"):
        raw = _read_parquet(path)
        is_csv = False
    else:
        raise ExposureError(path, f"unsupported file type {suffix!r}", "give a .csv or .parquet file")
    return _normalise(raw, str(path), header_row=is_csv, known_typologies=known_typologies)


def is_edb(path: str | os.PathLike) -> bool:
    """An exposure file in the Groningen EDB layout (``bag_building_id, point_x, point_y, ...``)."""
    path = Path(path)
    if path.suffix.lower() not in (".csv", ".txt") or not path.is_file():
        return False
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        header = fh.readline()
    return "bag_building_id" in header and "point_x" in header


#: EDB population columns averaged into ``population_inside`` (persons inside by day and by night).
EDB_POPULATION_INSIDE = ("sum_pop_in_day", "sum_pop_in_night")


def read_buildings(path: str | os.PathLike, known_typologies: Iterable[str] | None = None) -> pd.DataFrame:
    """Read an exposure file of either layout, the one reader of every entry point (run, events, hazard).

    The plain layout (``id, x, y, typology`` or ``system_i/s_probability_i``, optional ``zone,
    municipality, population_inside, wierde``) goes through :func:`read_exposure`; the Groningen EDB
    layout (``bag_building_id, point_x, point_y, system_1..10, s_probability_1..10, community,
    wiede_flag, sum_pop_*``, :mod:`hra.inputs.edb`) is normalised to the same columns:
    ``community`` -> ``municipality``, ``wiede_flag`` -> ``wierde`` and ``population_inside`` = the mean
    of ``sum_pop_in_day`` and ``sum_pop_in_night`` (average persons inside over day and night; a file
    with only one of the two columns uses that one).

    The LPR is per person and does not use the population; expected fatalities and the F-N curve of the
    event-based engine do (:mod:`hra.eventbased.risk`).
    """
    path = Path(path)
    if not is_edb(path):
        return read_exposure(path, known_typologies=known_typologies)
    from hra.inputs.edb import read_edb

    edb = read_edb(path, typologies=list(known_typologies) if known_typologies is not None else None)
    keep = ["id", "x", "y", "wierde", "municipality"] + [c for c in edb.columns if c.startswith(("system_", "s_probability_"))]
    df = edb[keep].copy()
    pops = [c for c in EDB_POPULATION_INSIDE if c in edb.columns]
    if pops:
        df["population_inside"] = edb[pops].astype(float).mean(axis=1, skipna=True)
    return validate_exposure(df, known_typologies=list(known_typologies) if known_typologies is not None else None,
                             source=str(path))


def validate_exposure(
    df: pd.DataFrame, known_typologies: Iterable[str] | None = None, source: str | None = None
) -> pd.DataFrame:
    """Validate and normalise an exposure table held in memory.

    Same checks and result as :func:`read_exposure`; rows are reported as records counted from 1.

    Parameters
    ----------
    df
        Buildings, columns as in the module docstring; coordinates [m, EPSG:28992].
    known_typologies
        Optional list of accepted typology names.
    source
        Name used in error messages; default ``df.attrs["source"]`` or ``"<DataFrame>"``.

    Returns
    -------
    pandas.DataFrame
        A new DataFrame in the normalised layout.
    """
    src = source if source is not None else str(df.attrs.get("source", "<DataFrame>"))
    return _normalise(df.reset_index(drop=True), src, header_row=False, known_typologies=known_typologies)


# --------------------------------------------------------------------------------------------
# Validation and normalisation
# --------------------------------------------------------------------------------------------


def _normalise(
    raw: pd.DataFrame, source: str, *, header_row: bool, known_typologies: Iterable[str] | None
) -> pd.DataFrame:
    first_number = 2 if header_row else 1
    # -- column names ------------------------------------------------------------------------
    names = [str(c).strip().lower() for c in raw.columns]
    seen: dict[str, str] = {}
    for orig, nm in zip(raw.columns, names):
        if nm in seen:
            raise ExposureError(
                source,
                f"column names {seen[nm]!r} and {orig!r} are the same after ignoring case and blanks",
                "remove or rename one of them",
                row="row 1 (the header)" if header_row else "the column names",
                column=nm,
            )
        seen[nm] = str(orig)
    raw = raw.set_axis(names, axis=1)

    # -- drop rows that are entirely blank (spreadsheet leftovers), keep the user's numbering ----
    numbers = np.arange(len(raw), dtype=np.int64) + first_number
    if len(raw) and header_row:
        blank = raw.isna().all(axis=1).to_numpy()
        if blank.any():
            raw = raw.loc[~blank].reset_index(drop=True)
            numbers = numbers[~blank]
    rows = _Rows(numbers, header_row)

    for col in REQUIRED_COLUMNS:
        if col not in raw.columns:
            raise ExposureError(
                source,
                f"required column {col!r} is missing (columns found: {', '.join(map(repr, names)) or 'none'})",
                f"add a column {col!r}" + (" with RD New coordinates in metres (EPSG:28992)" if col in "xy" else " with a unique building id"),
                row=rows.header,
                column=col,
            )
    if len(raw) == 0:
        first = "row 2 (spreadsheet numbering, header = row 1)" if header_row else "record 1 (first record = 1)"
        raise ExposureError(
            source,
            "no buildings: the table has column names but no data rows",
            "add one row per building below the header",
            row=first,
        )
    n = len(raw)

    # -- id ----------------------------------------------------------------------------------
    ids = _as_text(raw["id"])
    empty = ids == ""
    if empty.any():
        i, more = _first(empty)
        raise ExposureError(source, "building id is empty", "give every building a unique id (or delete the row)", row=rows.label(i, more), column="id")
    dup = pd.Series(ids).duplicated(keep=False).to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        same = np.flatnonzero(ids == ids[i])
        n_dup_ids = int(pd.Series(ids[dup]).nunique())
        extra = f"; {n_dup_ids - 1} more id(s) are duplicated too" if n_dup_ids > 1 else ""
        raise ExposureError(
            source,
            f"duplicate building id {ids[i]!r} (it occurs {same.size} times){extra}",
            "make every id unique (merge the rows if they are the same building)",
            row=rows.pair(int(same[0]), int(same[1])),
            column="id",
        )

    # -- coordinates ---------------------------------------------------------------------------
    coords = {}
    for col, (lo, hi) in (("x", RD_X_RANGE_M), ("y", RD_Y_RANGE_M)):
        text = _as_text(raw[col]) if not pd.api.types.is_numeric_dtype(raw[col].dtype) else None
        v, empty, bad = _as_float(raw[col])
        fix = f"give {col} in RD New metres (EPSG:28992), a number between {lo:.0f} and {hi:.0f}"
        _check_parsed(col, v, bad, text, rows, source, fix)
        if empty.any():
            i, more = _first(empty)
            raise ExposureError(source, "coordinate is empty", fix, row=rows.label(i, more), column=col)
        nonfinite = ~np.isfinite(v)
        if nonfinite.any():
            i, more = _first(nonfinite)
            raise ExposureError(source, f"coordinate is not a finite number ({float(v[i])})", fix, row=rows.label(i, more), column=col)
        out = (v < lo) | (v > hi)
        if out.any():
            i, more = _first(out)
            hint = ""
            if abs(v[i]) <= 180:
                hint = "; values this small look like degrees: convert WGS84 lon/lat with hra.inputs.sites.wgs84_to_rd"
            elif abs(v[i]) > 1e6:
                hint = "; values this large look like millimetres or another projection"
            raise ExposureError(
                source,
                f"{col} = {v[i]:.6g} m is outside the plausible RD New range {lo:.0f}..{hi:.0f} m{hint}",
                fix,
                row=rows.label(i, more),
                column=col,
            )
        coords[col] = v

    result: dict[str, object] = {"id": ids, "x": coords["x"], "y": coords["y"]}

    # -- zone ----------------------------------------------------------------------------------
    if "zone" in raw.columns:
        text = None if pd.api.types.is_numeric_dtype(raw["zone"].dtype) else _as_text(raw["zone"])
        v, empty, bad = _as_float(raw["zone"])
        fix = "give the site-response zone as a whole number >= 0, or leave the cell empty if unknown"
        _check_parsed("zone", v, bad, text, rows, source, fix)
        wrong = ~empty & (~np.isfinite(v) | (v < 0) | (np.round(v) != v))
        if wrong.any():
            i, more = _first(wrong)
            raise ExposureError(source, f"zone {float(v[i]):g} is not a whole number >= 0", fix, row=rows.label(i, more), column="zone")
        zone = pd.array(np.where(empty, 0, v).astype(np.int64), dtype="Int64")
        zone[empty] = pd.NA
        result["zone"] = zone

    # -- municipality --------------------------------------------------------------------------
    result["municipality"] = _as_text(raw["municipality"]) if "municipality" in raw.columns else np.full(n, "", dtype=object)

    # -- population ----------------------------------------------------------------------------
    if "population_inside" in raw.columns:
        col = raw["population_inside"]
        text = None if pd.api.types.is_numeric_dtype(col.dtype) else _as_text(col)
        v, empty, bad = _as_float(col)
        fix = "give the average number of persons inside as a number >= 0, or leave the cell empty if unknown"
        _check_parsed("population_inside", v, bad, text, rows, source, fix)
        wrong = ~empty & (~np.isfinite(v) | (v < 0))
        if wrong.any():
            i, more = _first(wrong)
            raise ExposureError(
                source, f"population_inside = {float(v[i]):g} is negative or not finite", fix, row=rows.label(i, more), column="population_inside"
            )
        result["population_inside"] = v
    else:
        result["population_inside"] = np.full(n, np.nan)

    # -- wierde --------------------------------------------------------------------------------
    if "wierde" in raw.columns:
        text = _as_text(raw["wierde"])
        low = np.char.lower(text.astype(str))
        is_true = np.isin(low, list(_TRUE_WORDS))
        ok = is_true | np.isin(low, list(_FALSE_WORDS)) | (low == "")
        if not ok.all():
            i, more = _first(~ok)
            raise ExposureError(
                source,
                f"wierde must be 0 or 1, got {text[i]!r}",
                "write 1 for a building on a wierde (dwelling mound), 0 (or nothing) otherwise",
                row=rows.label(i, more),
                column="wierde",
            )
        result["wierde"] = is_true
    else:
        result["wierde"] = np.zeros(n, dtype=bool)

    # -- typologies ----------------------------------------------------------------------------
    known = None if known_typologies is None else [str(t) for t in known_typologies]
    systems, probs = _typologies(raw, source, rows, known)

    k = systems.shape[1]
    for j in range(k):
        result[system_column(j + 1)] = systems[:, j]
        result[probability_column(j + 1)] = probs[:, j]
    return _assemble(result, source)


def _assemble(columns: dict[str, object], source: str) -> pd.DataFrame:
    """Build the normalised DataFrame with the documented dtypes and column order."""
    data: dict[str, object] = {}
    for name, values in columns.items():
        if name == "id" or name == "municipality" or name.startswith("system_"):
            data[name] = pd.Series(values, dtype=object).astype(str)
        elif name == "zone":
            data[name] = pd.Series(values, dtype="Int64")
        elif name == "wierde":
            data[name] = pd.Series(np.asarray(values, dtype=bool))
        else:
            data[name] = pd.Series(np.asarray(values, dtype=np.float64))
    df = pd.DataFrame(data)
    df.attrs["source"] = source
    return df


def _typologies(
    raw: pd.DataFrame, source: str, rows: _Rows, known: list[str] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Parse ``typology`` or the ``system_i``/``s_probability_i`` pairs; pack candidates to the front.

    Returns ``(systems, probs)``: (n, K) object and float64 arrays, padding ``""`` and ``0.0``.
    With ``known`` given, every named typology must be in it.
    """
    n = len(raw)
    pair_cols: dict[int, dict[str, str]] = {}
    for c in raw.columns:
        m = _PAIR_RE.match(c)
        if m:
            pair_cols.setdefault(int(m.group(2)), {})[m.group(1)] = c
    has_single = "typology" in raw.columns
    if has_single and pair_cols:
        raise ExposureError(
            source,
            "both a 'typology' column and system_i/s_probability_i columns are given",
            "keep either the single 'typology' column or the system_i/s_probability_i pairs",
            row=rows.header,
            column="typology",
        )
    if has_single:
        text = _as_text(raw["typology"])
        empty = text == ""
        if empty.any():
            i, more = _first(empty)
            raise ExposureError(source, "typology is empty", "give the building's structural system (typology)", row=rows.label(i, more), column="typology")
        if known is not None:
            _check_known(text, known, source, rows, "typology")
        return text.reshape(n, 1), np.ones((n, 1))
    if not pair_cols:
        raise ExposureError(
            source,
            "no typology column: neither 'typology' nor 'system_1'/'s_probability_1' is present",
            "add a 'typology' column, or pairs system_1, s_probability_1, system_2, s_probability_2, ...",
            row=rows.header,
            column="typology",
        )
    for i in sorted(pair_cols):
        if not 1 <= i <= MAX_CANDIDATES:
            col = next(iter(pair_cols[i].values()))
            raise ExposureError(
                source, f"candidate number {i} is out of range 1..{MAX_CANDIDATES}", f"use at most {MAX_CANDIDATES} pairs, numbered from 1", row=rows.header, column=col
            )
        for kind, other in (("system", "s_probability"), ("s_probability", "system")):
            if kind not in pair_cols[i]:
                raise ExposureError(
                    source,
                    f"column {other}_{i} has no partner column {kind}_{i}",
                    f"add column {kind}_{i} (or remove {other}_{i})",
                    row=rows.header,
                    column=f"{kind}_{i}",
                )
    order = sorted(pair_cols)
    p_n = len(order)
    systems = np.empty((n, p_n), dtype=object)
    probs = np.zeros((n, p_n))
    p_empty = np.zeros((n, p_n), dtype=bool)
    for j, i in enumerate(order):
        scol, pcol = f"system_{i}", f"s_probability_{i}"
        systems[:, j] = _as_text(raw[scol])
        text = None if pd.api.types.is_numeric_dtype(raw[pcol].dtype) else _as_text(raw[pcol])
        v, empty, bad = _as_float(raw[pcol])
        fix = "give the probability as a number between 0 and 1 (not a percentage)"
        _check_parsed(pcol, v, bad, text, rows, source, fix)
        probs[:, j] = np.where(empty, 0.0, v)
        p_empty[:, j] = empty
    s_empty = systems == ""
    if known is not None:
        for j, i in enumerate(order):
            _check_known(systems[:, j], known, source, rows, f"system_{i}")
    # One check at a time over all candidate columns (lowest candidate number first), so that the
    # reported problem is the most basic one: not finite, negative, unpaired, larger than 1.
    def first_problem(mask_of: Callable[[int], np.ndarray]) -> tuple[int, int, int] | None:
        for j in range(p_n):
            mask = mask_of(j)
            if mask.any():
                r, more = _first(mask)
                return j, r, more
        return None

    checks = (
        (
            lambda j: ~np.isfinite(probs[:, j]),
            lambda j, r: (f"probability {float(probs[r, j])} is not a finite number", "give a probability between 0 and 1", "p"),
        ),
        (
            lambda j: probs[:, j] < 0,
            lambda j, r: (f"negative probability {probs[r, j]:g}", "probabilities must be between 0 and 1 and sum to 1 per building", "p"),
        ),
        (
            lambda j: ~s_empty[:, j] & p_empty[:, j],
            lambda j, r: (
                f"system {systems[r, j]!r} is given without a probability",
                f"fill in s_probability_{order[j]} (or remove system_{order[j]})",
                "p",
            ),
        ),
        (
            lambda j: s_empty[:, j] & ~p_empty[:, j] & (probs[:, j] != 0),
            lambda j, r: (
                f"probability {probs[r, j]:g} is given without a system",
                f"fill in system_{order[j]} (or clear s_probability_{order[j]})",
                "s",
            ),
        ),
        (
            lambda j: probs[:, j] > 1 + PROBABILITY_TOLERANCE,
            lambda j, r: (f"probability {probs[r, j]:g} is larger than 1", "give probabilities as fractions (0.25, not 25)", "p"),
        ),
    )
    for mask_of, describe in checks:
        found = first_problem(mask_of)
        if found is not None:
            j, r, more = found
            problem, fix, which = describe(j, r)
            column = f"s_probability_{order[j]}" if which == "p" else f"system_{order[j]}"
            raise ExposureError(source, problem, fix, row=rows.label(r, more), column=column)
    filled = ~s_empty
    none = ~filled.any(axis=1)
    if none.any():
        r, more = _first(none)
        raise ExposureError(
            source, "no typology candidate is given", "fill in system_1 and s_probability_1 (probability 1 if certain)", row=rows.label(r, more), column=f"system_{order[0]}"
        )
    total = np.where(filled, probs, 0.0).sum(axis=1)
    off = np.abs(total - 1.0) > PROBABILITY_TOLERANCE
    if off.any():
        r, more = _first(off)
        cols = ", ".join(repr(f"s_probability_{i}") for i in order)
        raise ExposureError(
            source,
            f"typology probabilities sum to {total[r]:.10g}, not 1 (tolerance {PROBABILITY_TOLERANCE:g})",
            "scale the probabilities of this building so that they add up to 1",
            row=rows.label(r, more),
            column=cols if len(order) > 1 else f"s_probability_{order[0]}",
        )
    # duplicate system names within a building
    for a in range(p_n):
        for b in range(a + 1, p_n):
            same = filled[:, a] & filled[:, b] & (systems[:, a] == systems[:, b])
            if same.any():
                r, more = _first(same)
                raise ExposureError(
                    source,
                    f"typology {systems[r, a]!r} is listed twice (system_{order[a]} and system_{order[b]})",
                    "list each typology once and add up its probabilities",
                    row=rows.label(r, more),
                    column=f"system_{order[b]}",
                )
    # pack candidates to the front, keeping their order
    perm = np.argsort(~filled, axis=1, kind="stable")
    k = max(int(filled.sum(axis=1).max()), 1)
    systems = np.take_along_axis(systems, perm, axis=1)[:, :k]
    probs = np.take_along_axis(np.where(filled, probs, 0.0), perm, axis=1)[:, :k]
    probs = np.where(systems == "", 0.0, probs)
    return systems, probs


def _check_known(names: np.ndarray, known: list[str], source: str, rows: _Rows, column: str) -> None:
    """Raise if a non-empty name in ``names`` (one column) is not in ``known``."""
    if not known:
        raise ValueError("known_typologies is empty")
    listed = sorted(set(known))
    unknown = (names != "") & ~pd.Series(names, dtype=object).isin(listed).to_numpy()
    if unknown.any():
        r, more = _first(unknown)
        name = str(names[r])
        close = difflib.get_close_matches(name, listed, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        few = ", ".join(repr(t) for t in listed[:6]) + (f", ... ({len(listed)} in all)" if len(listed) > 6 else "")
        raise ExposureError(
            source,
            f"unknown typology {name!r}{hint}; known typologies: {few}",
            "use a typology of the fragility set, spelled exactly (case matters)",
            row=rows.label(r, more),
            column=column,
        )


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def write_exposure(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write an exposure table in the normalised layout, atomically.

    The table is written to ``PATH.tmp-<pid>`` in the same directory and moved onto ``path`` with
    :func:`os.replace`, so a reader never sees a half-written file. Unused candidate slots are
    written as empty cells, ``wierde`` as 0/1, unknown zone/population as empty cells; floats are
    written with full precision, so :func:`read_exposure` gives the same table back.

    Parameters
    ----------
    df
        Exposure in the normalised layout (e.g. from :func:`read_exposure` or
        :func:`hra.demo.exposure.synthetic_exposure`); coordinates [m, EPSG:28992].
    path
        Target ``.csv`` file (``.parquet`` also works where pyarrow is installed).

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    missing = [c for c in (*REQUIRED_COLUMNS, "system_1", "s_probability_1") if c not in df.columns]
    if missing:
        raise ExposureError("<DataFrame>", f"cannot write: columns {missing} are missing", "pass a table in the normalised layout (see hra.inputs.exposure)")
    out = df.copy()
    k = 1
    while system_column(k + 1) in out.columns:
        k += 1
    for j in range(1, k + 1):
        pad = out[system_column(j)].astype(str) == ""
        out[probability_column(j)] = out[probability_column(j)].astype(float).mask(pad)
    if "wierde" in out.columns:
        out["wierde"] = out["wierde"].astype(bool).astype(np.int64)

    def write(tmp: Path) -> None:
        if path.suffix.lower() in (".parquet", ".pq"):
            try:
                out.to_parquet(tmp, index=False)
            except ImportError as exc:
                raise ExposureError(path, f"writing Parquet needs pyarrow, which is not installed ({exc})", "install pyarrow or write a .csv file") from None
        else:
            out.to_csv(tmp, index=False, lineterminator="\n", na_rep="")

    atomic_write(path, write, overwrite=True)
    return path


# --------------------------------------------------------------------------------------------
# Arrays for the engine
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExposureArrays:
    """Exposure as plain, read-only numpy arrays (b = buildings, k = candidate slot).

    Attributes
    ----------
    ids : (b,) object
        Building ids (str).
    x, y : (b,) float64
        Location. [m, EPSG:28992]
    zone : (b,) int64
        Site-response zone id; -1 where unknown.
    wierde : (b,) bool
        On a wierde (dwelling mound).
    municipality : (b,) object
        Municipality name (str, ``""`` if unknown).
    population_inside : (b,) float64
        Average persons inside [persons]; NaN if unknown.
    typology_index : (b, K) int64
        Index into the ``typologies`` list passed to :func:`exposure_arrays` of each candidate with
        probability > 0, ascending per building; -1 padding.
    typology_prob : (b, K) float64
        Probability of each candidate; 0 padding. Rows sum to 1.
    typologies : tuple of str
        The typology list the indices refer to.
    """

    ids: np.ndarray
    x: np.ndarray
    y: np.ndarray
    zone: np.ndarray
    wierde: np.ndarray
    municipality: np.ndarray
    population_inside: np.ndarray
    typology_index: np.ndarray
    typology_prob: np.ndarray
    typologies: tuple[str, ...] = ()

    @property
    def n_buildings(self) -> int:
        return int(self.x.shape[0])

    def keys(self) -> np.ndarray:
        """Stable 64-bit key per building, :func:`building_keys` of ``ids``."""
        return building_keys(self.ids)


def exposure_arrays(df: pd.DataFrame, typologies: Sequence[str]) -> ExposureArrays:
    """Convert a normalised exposure table into engine arrays.

    Parameters
    ----------
    df
        Exposure in the normalised layout (:func:`read_exposure`, :func:`validate_exposure`,
        or the demo generator).
    typologies
        The engine's typology list (e.g. the fragility set's); ``typology_index`` refers to it.
        Every candidate with probability > 0 must be in it.

    Returns
    -------
    ExposureArrays
        Candidates with probability 0 are dropped; the remaining ones are sorted by typology index;
        ``K`` is the largest number of remaining candidates of any building (at least 1).

    Raises
    ------
    ExposureError
        A required column is missing, or a candidate is not in ``typologies``.
    """
    source = str(df.attrs.get("source", "<DataFrame>"))
    typologies = [str(t) for t in typologies]
    if len(set(typologies)) != len(typologies):
        raise ValueError(f"typologies contain duplicates: {typologies}")
    for col in (*REQUIRED_COLUMNS, "system_1", "s_probability_1"):
        if col not in df.columns:
            raise ExposureError(source, f"column {col!r} is missing", "pass a table from read_exposure or validate_exposure", column=col)
    n = len(df)
    kk = 1
    while system_column(kk + 1) in df.columns:
        kk += 1
    sys_names = df[[system_column(j) for j in range(1, kk + 1)]].astype(str).to_numpy(dtype=object)
    probs = df[[probability_column(j) for j in range(1, kk + 1)]].to_numpy(dtype=np.float64, na_value=0.0)
    index = pd.Index(typologies).get_indexer(sys_names.ravel()).reshape(n, kk)
    used = probs > 0
    unknown = used & (index < 0)
    if unknown.any():
        r, c = np.argwhere(unknown)[0]
        close = difflib.get_close_matches(str(sys_names[r, c]), typologies, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ExposureError(
            source,
            f"typology {sys_names[r, c]!r} is not in the model's typology list{hint} (known: {', '.join(typologies[:6])}{', ...' if len(typologies) > 6 else ''})",
            "use the typology names of the fragility set",
            row=f"record {r + 1} (first record = 1)",
            column=system_column(int(c) + 1),
        )
    k = max(int(used.sum(axis=1).max()) if n else 1, 1)
    big = np.iinfo(np.int64).max
    sort_key = np.where(used, index, big)
    order = np.argsort(sort_key, axis=1, kind="stable")[:, :k]
    t_index = np.take_along_axis(np.where(used, index, -1), order, axis=1).astype(np.int64)
    t_prob = np.take_along_axis(np.where(used, probs, 0.0), order, axis=1)

    if "zone" in df.columns:
        zone = pd.array(df["zone"], dtype="Int64").to_numpy(dtype=np.int64, na_value=-1)
    else:
        zone = np.full(n, -1, dtype=np.int64)
    wierde = df["wierde"].to_numpy(dtype=bool) if "wierde" in df.columns else np.zeros(n, dtype=bool)
    if "municipality" in df.columns:
        municipality = df["municipality"].fillna("").astype(str).to_numpy(dtype=object)
    else:
        municipality = np.full(n, "", dtype=object)
    if "population_inside" in df.columns:
        population = df["population_inside"].to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        population = np.full(n, np.nan)
    arrays = dict(
        ids=df["id"].astype(str).to_numpy(dtype=object),
        x=df["x"].to_numpy(dtype=np.float64),
        y=df["y"].to_numpy(dtype=np.float64),
        zone=zone,
        wierde=wierde,
        municipality=municipality,
        population_inside=population,
        typology_index=t_index,
        typology_prob=t_prob,
    )
    for a in arrays.values():
        a.setflags(write=False)
    return ExposureArrays(**arrays, typologies=tuple(typologies))


def building_keys(ids: Iterable[str]) -> np.ndarray:
    """Stable 64-bit key of each building id, for per-building random streams.

    ``key = int.from_bytes(blake2b(id.encode("utf-8"), digest_size=8).digest(), "little")``:
    BLAKE2b with an 8-byte digest, no key, salt or personalisation, read as a little-endian
    unsigned integer. It depends only on the id text, never on the position of the building, the
    chunking or the platform, so ``SeedSequence(seed, spawn_key=(purpose, key))`` gives each
    building the same stream in every run.

    Parameters
    ----------
    ids
        Building ids (str).

    Returns
    -------
    numpy.ndarray
        (b,) uint64.
    """
    digests = []
    for i in ids:
        if not isinstance(i, str):
            raise TypeError(f"building ids must be str, got {type(i).__name__} ({i!r})")
        digests.append(hashlib.blake2b(i.encode("utf-8"), digest_size=8).digest())
    return np.frombuffer(b"".join(digests), dtype="<u8").astype(np.uint64)
