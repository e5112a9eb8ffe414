"""Interoperability with OpenQuake.

- :mod:`hra.openquake.export`: a run's inputs as OpenQuake input files (no OpenQuake needed);
- :mod:`hra.openquake.gsim`: our ground-motion models as OpenQuake GSIMs (needs openquake).

The GSIM classes stay importable as ``hra.openquake.GroningenHraV7Reference`` (and the other
``GroningenHra*`` names): they are loaded lazily, so importing the exporter never imports OpenQuake.
"""

from __future__ import annotations


def __getattr__(name: str):
    if name.startswith("GroningenHra") or name.startswith("_"):
        if name.startswith("__"):
            raise AttributeError(name)
        from hra.openquake import gsim

        return getattr(gsim, name)
    raise AttributeError(f"module 'hra.openquake' has no attribute {name!r}")
