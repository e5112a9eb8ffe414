"""One format for the errors of every pydantic-validated input (run config, profile rules, plans,
NPR 9998 tables, catalogues and building files).

Each problem reads ``key [section.key]: <what is wrong>; fix: <what to do>``; the caller puts the
file (or other source) in front. :func:`validation_problems` gives the pieces,
:func:`format_validation_error` the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from pydantic import ValidationError

__all__ = ["ValidationProblem", "format_validation_error", "validation_problems"]

_SCALARS = (str, int, float, bool)


@dataclass(frozen=True)
class ValidationProblem:
    """One problem of a validated input.

    Attributes
    ----------
    key
        Dotted key of the value at fault (``""`` for checks of the whole input).
    message
        What is wrong (pydantic's message, with the value given where it is a scalar).
    fix
        What to do about it (``""`` when ``message`` already says it).
    """

    key: str
    message: str
    fix: str

    def __str__(self) -> str:
        if not self.key and self.message.startswith("key ["):  # whole-input checks name key and fix
            return self.message
        text = f"key [{self.key or '(top level)'}]: {self.message}"
        return f"{text}; fix: {self.fix}" if self.fix else text


def _default_fix(err: dict[str, Any], keys_hint: str) -> str:
    t = err.get("type", "")
    if t == "extra_forbidden":
        return "remove it or check its spelling" + (f" ({keys_hint})" if keys_hint else "")
    if t == "missing":
        return "add this key"
    if t.startswith("literal_error") or t in ("union_tag_invalid", "enum"):
        return "use one of the allowed values"
    return "correct the value"


def validation_problems(
    exc: ValidationError,
    *,
    keys_hint: str = "",
    fix_hint: Callable[[dict[str, Any]], str | None] | None = None,
) -> list[ValidationProblem]:
    """The problems of a pydantic ``ValidationError``, one per error.

    Parameters
    ----------
    exc
        The error raised by ``model_validate``.
    keys_hint
        Where the valid keys are listed, added to the fix of an unknown key
        (e.g. ``"run `hra config schema` for the valid keys"``).
    fix_hint
        Optional ``f(error dict) -> fix or None``; ``None`` falls back to the default fix.

    Returns
    -------
    list of ValidationProblem
    """
    out = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-after", "tagged-union")))
        msg = str(err["msg"]).removeprefix("Value error, ")
        if not key and msg.startswith("key ["):
            out.append(ValidationProblem("", msg, ""))
            continue
        value = err.get("input")
        if err.get("type") not in ("missing", "extra_forbidden") and isinstance(value, _SCALARS):
            msg = f"{msg} (got {value!r})"
        fix = (fix_hint(err) if fix_hint is not None else None) or _default_fix(err, keys_hint)
        out.append(ValidationProblem(key, msg, fix))
    return out


def format_validation_error(
    exc: ValidationError,
    header: str | None = None,
    *,
    keys_hint: str = "",
    fix_hint: Callable[[dict[str, Any]], str | None] | None = None,
    one_line: bool = False,
    limit: int | None = None,
) -> str:
    """Text of a pydantic ``ValidationError``: ``key [a.b]: message; fix: ...`` per problem.

    Parameters
    ----------
    exc
        The error raised by ``model_validate``.
    header
        First line (e.g. ``"invalid configuration in run.toml:"``), or ``None``.
    keys_hint, fix_hint
        As in :func:`validation_problems`.
    one_line
        Join the problems with ``"; "`` instead of one ``"  - "`` line each.
    limit
        Report at most this many problems (and say how many more there are).

    Returns
    -------
    str

    Examples
    --------
    >>> from pydantic import BaseModel, ConfigDict, ValidationError
    >>> class Run(BaseModel):
    ...     model_config = ConfigDict(extra="forbid")
    ...     seed: int
    >>> try:
    ...     Run.model_validate({"seed": 1, "sede": 2})
    ... except ValidationError as exc:
    ...     print(format_validation_error(exc, "invalid configuration in run.toml:"))
    invalid configuration in run.toml:
      - key [sede]: Extra inputs are not permitted; fix: remove it or check its spelling
    """
    problems = [str(p) for p in validation_problems(exc, keys_hint=keys_hint, fix_hint=fix_hint)]
    more = ""
    if limit is not None and len(problems) > limit:
        problems, more = problems[:limit], f"(+{len(problems) - limit} more)"
    if one_line:
        body = "; ".join(problems) + (f" {more}" if more else "")
        return f"{header} {body}" if header else body
    lines = ([header] if header else []) + [f"  - {p}" for p in problems] + ([f"  {more}"] if more else [])
    return "\n".join(lines)
