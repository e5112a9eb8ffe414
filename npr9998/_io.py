"""Small I/O helpers: TOML and CSV reading with located errors, atomic writes, checksums.

CSV files are read with the standard library (no pandas), so the behaviour does not depend on
the pandas version. A file whose header uses ``;`` as the delimiter (Dutch spreadsheet export)
is accepted, and then a decimal comma (``0,25``) is read as a decimal point.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import tomllib
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence, TypeVar

from pydantic import BaseModel, ValidationError

from hra.core import fileio
from hra.core.validation import format_validation_error, validation_problems
from npr9998.errors import NPRInputError

__all__ = [
    "atomic_path",
    "atomic_write_text",
    "load_validated",
    "pydantic_to_input_error",
    "read_toml",
    "read_csv_table",
    "CsvTable",
    "package_data_bytes",
    "sha256_bytes",
]


def sha256_bytes(data: bytes) -> str:
    """SHA-256 hex digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def package_data_bytes(name: str) -> bytes:
    """Bytes of ``npr9998/data/<name>`` read through :mod:`importlib.resources`."""
    return resources.files("npr9998").joinpath("data", name).read_bytes()


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success rename it onto ``path``.

    The parent folders are created; the rest is :func:`hra.core.fileio.atomic_path` (a fresh
    hidden folder beside the target, removed if the body raises), so a failed run never leaves a
    half-written result where a user would read it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with fileio.atomic_path(path, overwrite=True, error=NPRInputError) as tmp:
        yield tmp


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def read_toml(path: str | Path) -> dict:
    """Read a TOML file; syntax errors become :class:`NPRInputError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise NPRInputError("file not found.", file=path, fix="check the path (relative paths are relative to the current directory or, inside a building file, to that file's folder).")
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise NPRInputError(f"not valid TOML ({exc}).", file=path, fix="correct the TOML syntax at the line and column given.") from None
    except UnicodeDecodeError:
        raise NPRInputError("not a UTF-8 text file.", file=path, fix="save the file as UTF-8 text.") from None


class CsvTable:
    """Rows of a CSV file with canonical column names and line numbers for error messages.

    Attributes
    ----------
    path
        File name (for messages).
    columns
        Canonical column names present.
    rows
        List of ``(line_number, {canonical_column: raw_string})``; the header is line 1.
    decimal_comma
        True when the file is ``;``-delimited, in which case ``0,25`` reads as 0.25.
    """

    def __init__(self, path: str, columns: list[str], rows: list[tuple[int, dict[str, str]]], decimal_comma: bool):
        self.path = path
        self.columns = columns
        self.rows = rows
        self.decimal_comma = decimal_comma

    def __len__(self) -> int:
        return len(self.rows)

    def float(self, line: int, row: Mapping[str, str], column: str, *, required: bool = True, default: float | None = None) -> float | None:
        """Parse ``row[column]`` as a finite float, or raise an error naming file, row and column."""
        raw = (row.get(column) or "").strip()
        if raw == "":
            if required:
                raise NPRInputError("value is missing.", file=self.path, row=line, column=column, fix=f"fill in {column!r} for this row.")
            return default
        text = raw.replace(",", ".") if self.decimal_comma else raw
        try:
            value = float(text)
        except ValueError:
            hint = " (a decimal comma is only accepted in ';'-separated files)" if "," in raw else ""
            raise NPRInputError(f"{raw!r} is not a number{hint}.", file=self.path, row=line, column=column, fix="write a plain decimal number with a decimal point, e.g. 0.25.") from None
        if not math.isfinite(value):
            raise NPRInputError(f"{raw!r} is not a finite number.", file=self.path, row=line, column=column, fix="replace NaN/inf by a real value.")
        return value

    def floats(self, line: int, row: Mapping[str, str], column: str, *, required: bool = True) -> list[float] | None:
        """Parse a list of numbers separated by ``;`` or spaces (``"60;45.5"``)."""
        raw = (row.get(column) or "").strip()
        if raw == "":
            if required:
                raise NPRInputError("value is missing.", file=self.path, row=line, column=column, fix=f"fill in {column!r} as numbers separated by ';' (e.g. 60;45).")
            return None
        parts = [p for p in raw.replace(";", " ").split() if p]
        out = []
        for p in parts:
            text = p.replace(",", ".") if self.decimal_comma else p
            try:
                v = float(text)
            except ValueError:
                raise NPRInputError(f"{p!r} in {raw!r} is not a number.", file=self.path, row=line, column=column, fix="separate numbers by ';' or spaces and use a decimal point.") from None
            if not math.isfinite(v):
                raise NPRInputError(f"{p!r} is not finite.", file=self.path, row=line, column=column, fix="replace NaN/inf by a real value.")
            out.append(v)
        return out

    @staticmethod
    def text(row: Mapping[str, str], column: str) -> str:
        """Stripped text of ``row[column]`` ('' when absent)."""
        return (row.get(column) or "").strip()


def read_csv_table(
    path: str | Path,
    *,
    required: Sequence[str] = (),
    optional: Sequence[str] = (),
    aliases: Mapping[str, Sequence[str]] | None = None,
    allow_extra: bool = True,
    what: str = "CSV file",
) -> CsvTable:
    """Read a CSV file into a :class:`CsvTable`, mapping header aliases onto canonical names.

    Parameters
    ----------
    path
        CSV file with a header row; ``,`` or ``;`` delimited; ``#`` lines before the header are
        comments.
    required, optional
        Canonical column names.
    aliases
        Other accepted header spellings per canonical name (compared case-insensitively).
    allow_extra
        Whether unknown columns are ignored (True) or rejected.
    what
        What the file is, for messages.
    """
    path = Path(path)
    if not path.is_file():
        raise NPRInputError(f"{what} not found.", file=path, fix="check the path (relative paths are relative to the file that names them).")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise NPRInputError("not a UTF-8 text file.", file=path, fix="export the CSV as UTF-8.") from None
    lines = text.splitlines()
    # skip leading comment / blank lines, keeping line numbers
    first = 0
    while first < len(lines) and (not lines[first].strip() or lines[first].lstrip().startswith("#")):
        first += 1
    if first >= len(lines):
        raise NPRInputError(f"{what} is empty.", file=path, fix="add a header row and data rows.")
    header_line = lines[first]
    delimiter = ";" if header_line.count(";") > header_line.count(",") else ","
    reader = csv.reader(io.StringIO("\n".join(lines[first:])), delimiter=delimiter)
    header = [h.strip() for h in next(reader)]
    lookup: dict[str, str] = {}
    canon = list(required) + [c for c in optional if c not in required]
    for c in canon:
        lookup[c.lower()] = c
        for a in (aliases or {}).get(c, ()):
            lookup[a.lower()] = c
    mapped: list[str | None] = []
    seen: dict[str, str] = {}
    for h in header:
        c = lookup.get(h.lower())
        if c is None:
            if not allow_extra:
                raise NPRInputError(f"unknown column {h!r}.", file=path, row=first + 1, column=h, fix=f"use only the columns {canon}.")
        elif c in seen:
            raise NPRInputError(f"columns {seen[c]!r} and {h!r} both mean {c!r}.", file=path, row=first + 1, column=h, fix="keep only one of them.")
        else:
            seen[c] = h
        mapped.append(c)
    missing = [c for c in required if c not in seen]
    if missing:
        raise NPRInputError(
            f"required column(s) {missing} missing; header is {header}.",
            file=path,
            row=first + 1,
            fix=f"add the column(s) {missing} (accepted spellings: " + "; ".join(f"{c}: {[c, *(aliases or {}).get(c, ())]}" for c in missing) + ").",
        )
    rows: list[tuple[int, dict[str, str]]] = []
    for i, rec in enumerate(reader):
        line = first + 2 + i
        if not rec or all(not f.strip() for f in rec) or rec[0].lstrip().startswith("#"):
            continue
        if len(rec) > len(header) and any(f.strip() for f in rec[len(header):]):
            raise NPRInputError(f"row has {len(rec)} fields but the header has {len(header)}.", file=path, row=line, fix=f"remove the extra fields or quote values that contain {delimiter!r}.")
        row = {}
        for c, v in zip(mapped, rec):
            if c is not None:
                row[c] = v
        rows.append((line, row))
    return CsvTable(str(path), [c for c in canon if c in seen], rows, decimal_comma=(delimiter == ";"))


def pydantic_to_input_error(exc: ValidationError, *, file: str | None, what: str, schema_hint: str) -> NPRInputError:
    """Turn a pydantic ``ValidationError`` into an :class:`NPRInputError` naming file and key
    (the format of :func:`hra.core.validation.format_validation_error`)."""
    problems = validation_problems(exc)
    text = format_validation_error(exc, f"invalid {what}:", one_line=True, limit=6)
    return NPRInputError(text, file=file, column=problems[0].key or None, fix=f"see the {schema_hint} schema in docs/npr9998.md.")


_M = TypeVar("_M", bound=BaseModel)


def load_validated(
    path_str: str | None,
    model: type[_M],
    *,
    default: str,
    what: str,
    schema_hint: str,
    not_found_fix: str = "check the path.",
    read: Callable[[Path], dict[str, Any]] | None = None,
) -> _M:
    """Read a versioned input file (or the package default) and validate it with ``model``.

    The one loading shape of the NPR 9998 tables, decision tables and catalogues: the package's
    ``npr9998/data/<default>`` when ``path_str`` is None, else the user's file; the loader sets
    ``source`` and ``sha256`` (reserved: a file may not give them); errors name file and key.

    Parameters
    ----------
    path_str
        The file, or ``None`` for the package default.
    model
        The pydantic model (with ``source`` and ``sha256`` fields).
    default
        File name of the package default under ``npr9998/data``.
    what, schema_hint
        For the messages, e.g. ``"typology catalogue"``, ``"'npr9998-catalogue/1'"``.
    not_found_fix
        The fix given when the file does not exist.
    read
        Reader of the user's file to a mapping (default :func:`read_toml`).

    Returns
    -------
    The validated model.
    """
    if path_str is None:
        raw = package_data_bytes(default)
        source = f"package:npr9998/data/{default}"
        data = tomllib.loads(raw.decode("utf-8"))
    else:
        path = Path(path_str)
        if not path.is_file():
            raise NPRInputError(f"{what} not found.", file=path, fix=not_found_fix)
        raw = path.read_bytes()
        source = str(path)
        data = (read or read_toml)(path)
    for k in ("source", "sha256"):
        if k in data:
            raise NPRInputError(f"key {k!r} is reserved (set by the loader).", file=source, column=k, fix=f"remove {k!r} from the file.")
    try:
        return model.model_validate({**data, "source": source, "sha256": sha256_bytes(raw)})
    except ValidationError as exc:
        raise pydantic_to_input_error(exc, file=source, what=what, schema_hint=schema_hint) from None
