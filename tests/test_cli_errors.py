"""One CLI error convention (hra.cli.common.cli_errors) for every command group and ``npr9998``:
exit 2 and ``error: <message naming file/key and fix>`` for input errors, exit 1 for runtime errors."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from hra.cli import app
from hra.cli.common import cli_errors
from npr9998.cli import app as npr_app

runner = CliRunner()


def _raiser(exc: BaseException):
    probe = typer.Typer()

    @probe.command()
    def boom() -> None:
        with cli_errors():
            raise exc

    return probe


@pytest.mark.parametrize("exc, code, text", [
    (ValueError("bad.csv, row 3: fix it"), 2, "error: bad.csv, row 3: fix it"),
    (KeyError("unknown typology 'NOPE'"), 2, "error: unknown typology 'NOPE'"),
    (FileNotFoundError("missing.toml"), 2, "error: missing.toml"),
    (RuntimeError("disk on fire"), 1, "runtime error: RuntimeError: disk on fire"),
])
def test_cli_errors_exit_codes(exc, code, text):
    res = runner.invoke(_raiser(exc), [])
    assert res.exit_code == code and text in res.output and "Traceback" not in res.output


def test_commands_share_the_convention(tmp_path):
    missing = tmp_path / "nope.toml"
    for application, args in ((npr_app, ["tables", str(missing)]),
                              (app, ["profiles", "show", "--register", str(tmp_path / "none" / "r.db"), "B"]),
                              (app, ["inspect", "conditional", "--model", "demo", "-m", "4.5", "--rrup", "5",
                                     "--zone", "1", "--typology", "NOPE"])):
        res = runner.invoke(application, args)
        assert res.exit_code == 2, res.output
        assert res.output.lstrip().startswith("error: ") and "Traceback" not in res.output


def test_hazard_curves_checks_the_output_before_computing(tmp_path):
    (tmp_path / "run.toml").write_text("this is not read")  # the target check comes first
    (tmp_path / "sites.csv").write_text("id,x,y\nS,250000,590000\n")
    (tmp_path / "h.nc").write_text("old")
    res = runner.invoke(app, ["hazard", "curves", str(tmp_path / "run.toml"), "--sites", str(tmp_path / "sites.csv"),
                              "--out", str(tmp_path / "h.nc")])
    assert res.exit_code == 2 and "already exists" in res.output and (tmp_path / "h.nc").read_text() == "old"
