"""groningen-hra: probabilistic seismic hazard and risk for the Groningen gas field.

Public API (design.md §4)::

    import hra
    cfg = hra.load_config("run.toml")
    ds = hra.run(cfg)                       # xarray.Dataset: lpr_mean, lpr_p50, lpr_p90 per building and year
    cfg = hra.demo_config(n_buildings=20_000, seed=1)
"""

from __future__ import annotations

from hra.config import Config, ConfigError, load_config

__all__ = ["Config", "ConfigError", "load_config", "run", "demo_config", "building_lpr", "conditional_risk",
           "hazard_curves", "compare", "write_report", "export_gis", "__version__"]


def __getattr__(name):  # lazy: keep `import hra` light (no numba compile, no dask)
    if name in ("run", "demo_config", "building_lpr"):
        from hra import api

        return getattr(api, name)
    if name == "conditional_risk":
        from hra.integration.conditional import conditional_risk

        return conditional_risk
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
