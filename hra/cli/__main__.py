"""``python -m hra.cli``: the ``hra`` command line."""

from hra.cli.main import app

app()
