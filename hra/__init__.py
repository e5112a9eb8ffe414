"""groningen-hra: probabilistic seismic hazard and risk for the Groningen gas field.

The public Python API is what ``hra.__all__`` lists (docs/architecture.md §4; reference in
docs/api.md):

* :func:`load_config` reads and validates a TOML run configuration into a :class:`Config`
  (errors are :class:`ConfigError`, naming file, key and fix);
* :func:`run` computes the Local Personal Risk of every building and year (docs/lpr.md) and
  returns the risk Dataset (``lpr_mean``, ``lpr_p50``, ``lpr_p90`` [yr^-1]);
* :func:`demo_config` writes and loads the embedded demo region;
* :func:`hazard_curves` gives hazard curves at sites, :func:`conditional_risk` the risk given one
  event, :func:`building_lpr` the LPR distribution of one building with its own fragility;
* :func:`explain` splits one building's mean LPR by magnitude, distance, source cell, typology,
  collapse state and logic-tree node (why that building has its LPR);
* :func:`compare` compares two runs building by building, :func:`write_report` writes a
  self-contained HTML report, :func:`export_gis` a GeoPackage of a run;
* ``__version__`` is the installed package version.

The models themselves are loaded by name with :func:`hra.gmm.load_gmm` and
:func:`fragility.load_fcm`. Importing ``hra`` is light: the engine (numba, dask) is imported on
first use.

Examples
--------
>>> import hra
>>> cfg = hra.demo_config(n_buildings=200, realisations=20, years=(2025,))  # doctest: +SKIP
>>> ds = hra.run(cfg)  # doctest: +SKIP
>>> sorted(v for v in ds.data_vars if v.startswith("lpr_"))  # doctest: +SKIP
['lpr_mean', 'lpr_p50', 'lpr_p90']
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hra.config import Config, ConfigError, load_config

if TYPE_CHECKING:  # the lazy names below, for type checkers and the API reference
    from hra.api import building_lpr, demo_config, run
    from hra.integration.conditional import conditional_risk
    from hra.review.compare import compare
    from hra.review.explain import explain
    from hra.review.export import export_gis
    from hra.review.report import write_report
    from hra.integration.hazard import hazard_curves

    __version__: str
    """The installed version of groningen-hra, as recorded in every result's provenance.

    Examples
    --------
    >>> import hra
    >>> hra.__version__  # doctest: +SKIP
    '0.1.0'
    """

__all__ = ["Config", "ConfigError", "load_config", "run", "demo_config", "building_lpr", "conditional_risk",
           "hazard_curves", "explain", "compare", "write_report", "export_gis", "__version__"]


def __getattr__(name):  # lazy: keep `import hra` light (no numba compile, no dask)
    if name in ("run", "demo_config", "building_lpr"):
        from hra import api

        return getattr(api, name)
    if name == "conditional_risk":
        from hra.integration.conditional import conditional_risk

        return conditional_risk
    if name == "explain":
        from hra.review.explain import explain

        return explain
    if name == "hazard_curves":
        from hra.integration.hazard import hazard_curves

        return hazard_curves
    if name == "compare":
        from hra.review.compare import compare

        return compare
    if name == "write_report":
        from hra.review.report import write_report

        return write_report
    if name == "export_gis":
        from hra.review.export import export_gis

        return export_gis
    if name == "__version__":
        from hra.outputs import package_version

        return package_version()
    raise AttributeError(name)
