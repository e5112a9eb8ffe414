"""What every ``hra`` command shares: options, logging, consoles and the error convention.

Exit codes: 0 ok; 2 usage or input error (bad option, invalid config, bad input file, output not
writable: the message is printed in red, without a traceback); 1 runtime error (``-v`` shows the
traceback); 130 interrupted. Wrap a command's body in ``with cli_errors():`` to get it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional

import typer

log = logging.getLogger("hra")


EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

#: click's exception classes as typer uses them (typer >= 0.2x vendors its own click): they carry
#: their own exit codes (usage errors: 2) and pass through :func:`cli_errors` untouched.
_CLICK_EXCEPTIONS = (typer.Exit, typer.Abort) + tuple(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")

#: Global options of the current invocation (set by :func:`main`).
_STATE: dict[str, Any] = {"verbose": False}


# ------------------------------------------------------------------------------------------
# shared options (defined once, reused by every command)
# ------------------------------------------------------------------------------------------


def _parse_realisations(value: Optional[str]) -> Optional[int | str]:
    if value is None:
        return None
    text = str(value).strip().lower()
    if text == "all":
        return "all"
    try:
        n = int(text)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is neither an integer nor 'all'") from None
    if n < 1:
        raise typer.BadParameter(f"{n} must be at least 1 (or 'all' to enumerate the logic tree)")
    return n


OutOpt = Annotated[Optional[Path], typer.Option(
    "--out", "-o", help="Output store (.zarr or .nc); relative to the current directory.", show_default=False)]
CsvOpt = Annotated[Optional[Path], typer.Option(
    "--csv", help="Also write the per-building CSV summary here.", show_default=False)]
WorkersOpt = Annotated[Optional[int], typer.Option(
    "--workers", "-w", min=1, help="Threads (or, with --processes, worker processes) of the local executor "
    "(default: [compute] workers, else the CPU cores; 1: serially in this process).", show_default=False)]
ProcessesOpt = Annotated[Optional[bool], typer.Option(
    "--processes/--threads", help="Run the tasks on a local dask cluster of worker processes, or on threads of "
    "this process (default: [compute] executor, else threads).", show_default=False)]
SchedulerOpt = Annotated[Optional[str], typer.Option(
    "--scheduler", metavar="ADDRESS", help="dask.distributed scheduler address, e.g. tcp://host:8786: run the "
    "tasks on its cluster (excludes --workers and --processes/--threads).", show_default=False)]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace existing outputs.")]
RealisationsOpt = Annotated[Optional[str], typer.Option(
    "--realisations", "-r", metavar="N|all", callback=_parse_realisations,
    help="Monte-Carlo realisations of the logic tree, or 'all' to enumerate it.", show_default=False)]
ProgressOpt = Annotated[Optional[bool], typer.Option(
    "--progress/--no-progress", help="Progress bar (default: on a terminal).", show_default=False)]
ConfigArg = Annotated[Path, typer.Argument(metavar="CONFIG.toml", help="Run configuration (TOML).", show_default=False)]


# ------------------------------------------------------------------------------------------
# logging, consoles, errors
# ------------------------------------------------------------------------------------------


def _console(stderr: bool = False):
    from rich.console import Console

    return Console(stderr=stderr, highlight=False)


def setup_logging(level: int = logging.INFO) -> None:
    """INFO (or ``level``) log lines of hra, fragility and npr9998 to stderr, short format.

    On a terminal the lines go through rich so they scroll above the progress bar.
    """
    if sys.stderr.isatty():
        import rich
        from rich.logging import RichHandler

        handler: logging.Handler = RichHandler(console=rich.get_console(), show_path=False, markup=False,
                                               log_time_format="%H:%M:%S")
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S"))
    handler._hra_cli = True  # type: ignore[attr-defined]
    for name in ("hra", "fragility", "npr9998"):
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            if getattr(h, "_hra_cli", False):
                lg.removeHandler(h)
        lg.addHandler(handler)
        lg.setLevel(level)


class _StderrHandler(logging.StreamHandler):
    """A StreamHandler on whatever ``sys.stderr`` is at the time of each record (test runners swap it)."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def _error(message: str) -> None:
    _console(stderr=True).print(message, style="red", markup=False, soft_wrap=True)


def _is_user_error(exc: BaseException) -> bool:
    """Input/usage problems (exit 2): our error classes (ValueError subclasses), OutputError, missing files,
    and the ``KeyError`` of a model, typology, zone or IM the user named that a model does not know."""
    from pydantic import ValidationError

    try:
        from hra.outputs import OutputError
    except Exception:  # pragma: no cover - broken install
        OutputError = ()  # type: ignore[assignment]
    return isinstance(exc, (ValueError, KeyError, ValidationError, OutputError, FileNotFoundError, NotADirectoryError,
                            IsADirectoryError, PermissionError))


@contextlib.contextmanager
def cli_errors() -> Iterator[None]:
    """Map exceptions to the exit-code convention: 2 input/usage error, 1 runtime error."""
    try:
        yield
    except _CLICK_EXCEPTIONS:
        raise
    except KeyboardInterrupt:
        _error("interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except Exception as exc:  # noqa: BLE001 - the CLI boundary
        if _is_user_error(exc):
            message = exc.args[0] if isinstance(exc, KeyError) and len(exc.args) == 1 else exc  # no repr quotes
            _error(f"error: {message}")
            log.debug("input error", exc_info=True)
            raise typer.Exit(EXIT_USAGE) from None
        verbose = bool(_STATE.get("verbose", False))
        if verbose:
            import traceback

            traceback.print_exc(file=sys.stderr)
        _error(f"runtime error: {type(exc).__name__}: {exc}" + ("" if verbose else "  (run `hra -v ...` for the traceback)"))
        raise typer.Exit(EXIT_RUNTIME) from None


def _quiet_library_warnings() -> None:
    """Hide warnings of libraries that say nothing to a user of the CLI (zarr v3 string dtypes)."""
    import warnings

    warnings.filterwarnings("ignore", message=r".*does not have a Zarr V3 specification.*")
    warnings.filterwarnings("ignore", message=r"Consolidated metadata is currently not part.*")


def _version_callback(value: bool) -> None:
    if value:
        from hra.outputs import package_version

        typer.echo(f"hra (groningen-hra) {package_version()}")
        raise typer.Exit()


# ------------------------------------------------------------------------------------------
# helpers shared by the run commands
# ------------------------------------------------------------------------------------------


def _abspath(p: Path | None) -> Path | None:
    """A command-line path: relative to the current directory (not to the config file)."""
    return None if p is None else Path(os.path.abspath(os.path.expanduser(str(p))))


def _with_updates(cfg, **sections):
    """``cfg.with_updates`` with validation errors reported as a ConfigError naming the options."""
    from pydantic import ValidationError

    from hra.config import ConfigError, format_validation_error

    try:
        return cfg.with_updates(**sections)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, "the command-line options")) from None


def _compute_updates(workers: int | None, scheduler: str | None, processes: bool | None = None) -> dict[str, Any]:
    """``[compute]`` keys from ``--workers``, ``--processes/--threads`` and ``--scheduler``."""
    if scheduler is not None and (workers is not None or processes is not None):
        given = "'--workers'" if workers is not None else "'--processes' / '--threads'"
        raise typer.BadParameter("they are mutually exclusive: give the local executor (number of workers, threads "
                                 "or processes) or the address of a running dask scheduler, not both",
                                 param_hint=f"{given} / '--scheduler'")
    if scheduler is not None:
        return {"scheduler": scheduler}
    out: dict[str, Any] = {}
    if workers is not None or processes is not None:
        out["scheduler"] = None  # a local executor replaces a scheduler address of the file
    if workers is not None:
        out["workers"] = workers
    if processes is not None:
        out["executor"] = "processes" if processes else "threads"
    return out


def check_writable(path: Path, overwrite: bool) -> None:
    """Fail early (OutputError) when ``path`` cannot be written (:func:`hra.core.fileio.check_target`)."""
    from hra.core.fileio import check_target
    from hra.outputs import OutputError

    check_target(path, overwrite, error=OutputError, overwrite_hint="pass --overwrite")
