"""Run the examples in the docstrings of the npr9998 modules (they double as hand checks)."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("module", ["npr9998.spectrum", "npr9998.methods", "npr9998.fragility_link", "npr9998.capacity"])
def test_docstring_examples(module):
    res = doctest.testmod(importlib.import_module(module), optionflags=doctest.NORMALIZE_WHITESPACE)
    assert res.failed == 0
