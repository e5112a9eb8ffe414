"""Fragility and consequence models: collapse-state fragility curves and the probability of death.

- :mod:`fragility.lognormal`: lognormal curves per typology and branch, the exclusive-state algebra;
- :mod:`fragility.groningen`: the public Groningen FCMs (V7, V6, TNO-2020), :func:`load_fcm`;
- :mod:`fragility.demo`: the illustrative curves of the demo region.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # lazy at run time (see __getattr__); visible to type checkers and the API reference
    from fragility.groningen import load_fcm

__all__ = ["load_fcm"]


def __getattr__(name: str):
    if name == "load_fcm":
        from fragility.groningen import load_fcm

        return load_fcm
    raise AttributeError(f"module 'fragility' has no attribute {name!r}")
