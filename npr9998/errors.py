"""Errors and warnings of the :mod:`npr9998` package.

Every user mistake (a bad file, a bad row, an impossible parameter) raises
:class:`NPRInputError`, a :class:`ValueError` whose message names *where* the problem is (file,
row, column or key) and *how to fix it*. Programming errors keep their ordinary Python types.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["NPRInputError", "ProvisionalTableWarning", "input_error"]


class NPRInputError(ValueError):
    """An input to an NPR 9998 assessment is invalid.

    Attributes
    ----------
    file
        The file the problem is in, or ``None`` for values passed in Python.
    row
        1-based line number in a CSV file (the header is line 1), or ``None``.
    column
        The column (CSV) or key (TOML, dotted path) at fault, or ``None``.
    problem
        What is wrong.
    fix
        What to do about it.
    """

    def __init__(
        self,
        problem: str,
        *,
        fix: str | None = None,
        file: str | Path | None = None,
        row: int | None = None,
        column: str | None = None,
    ) -> None:
        self.file = None if file is None else str(file)
        self.row = row
        self.column = column
        self.problem = problem
        self.fix = fix
        where = []
        if self.file is not None:
            where.append(self.file)
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column/key {column!r}")
        msg = (", ".join(where) + ": " if where else "") + problem
        if fix:
            msg += f" Fix: {fix}"
        super().__init__(msg)


def input_error(problem: str, **kw) -> NPRInputError:
    """Build an :class:`NPRInputError` (a shorthand used inside the package)."""
    return NPRInputError(problem, **kw)


class ProvisionalTableWarning(UserWarning):
    """The normative tables in use are the package's PROVISIONAL stand-ins, not NPR 9998 values.

    Results computed with them carry ``provisional = True`` and must not be used as a
    normbesluit. Supply the tables of the NPR 9998 edition you hold (see ``docs/npr9998.md``).
    """
