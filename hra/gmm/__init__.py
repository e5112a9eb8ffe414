"""Ground-motion models: equations and coefficient handling only (no loops over buildings, no I/O
beyond reading their tables, no dask).

- :mod:`hra.gmm.base`: the interface the engines use (Gaussian mixtures of ln IM at a site);
- :mod:`hra.gmm.parametric`, :mod:`hra.gmm.demo`, :mod:`hra.gmm.dost2004`: closed-form models;
- :mod:`hra.gmm.groningen_v7`, :mod:`hra.gmm.groningen_v6`: the public Groningen GMMs;
- :mod:`hra.gmm.rupture`: the finite-rupture distance model (R_rup given R_hyp);
- :mod:`hra.gmm.registry`: models by name, :func:`load_gmm`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # lazy at run time (see __getattr__); visible to type checkers and the API reference
    from hra.gmm.registry import load_gmm

__all__ = ["load_gmm"]


def __getattr__(name: str):
    if name == "load_gmm":
        from hra.gmm.registry import load_gmm

        return load_gmm
    raise AttributeError(f"module 'hra.gmm' has no attribute {name!r}")
