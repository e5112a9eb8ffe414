"""Suite-wide fixtures."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _table_store_in_tmp(tmp_path_factory, monkeypatch):
    """Every test's default table store is a temporary folder (never the user's cache directory)."""
    monkeypatch.setenv("HRA_TABLE_STORE", str(tmp_path_factory.mktemp("table-store")))
