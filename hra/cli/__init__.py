"""The ``hra`` command line: a thin Typer app over the Python API; it parses, calls :mod:`hra` and prints.

One module per command group: :mod:`~hra.cli.run` (``hra demo``, ``hra run``), :mod:`~hra.cli.config`,
:mod:`~hra.cli.hazard`, :mod:`~hra.cli.events`, :mod:`~hra.cli.inspect`, :mod:`~hra.cli.models`,
:mod:`~hra.cli.profiles` (``hra profiles``, ``hra plan``); shared options and the error convention in
:mod:`~hra.cli.common`; the app that mounts them in :mod:`~hra.cli.main`.
"""

from __future__ import annotations


def __getattr__(name: str):  # `hra.cli:app` (console script) without importing every command on `import hra.cli.x`
    if name == "app":
        from hra.cli.main import app

        return app
    if name == "schema_markdown":
        from hra.cli.config import schema_markdown

        return schema_markdown
    raise AttributeError(f"module 'hra.cli' has no attribute {name!r}")
