"""Suite-wide fixtures: no test writes into the user's cache directory."""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

_SESSION_STORE: list[str] = []


def pytest_configure(config):
    """A session-wide default table store in a temporary folder, for what runs outside a test
    function's fixtures (notebooks executed by nbmake, subprocesses)."""
    path = tempfile.mkdtemp(prefix="hra-test-table-store-")
    _SESSION_STORE.append(path)
    os.environ["HRA_TABLE_STORE"] = path


def pytest_unconfigure(config):
    for path in _SESSION_STORE:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(autouse=True)
def _table_store_in_tmp(tmp_path_factory, monkeypatch):
    """Every test's default table store is its own temporary folder."""
    monkeypatch.setenv("HRA_TABLE_STORE", str(tmp_path_factory.mktemp("table-store")))
