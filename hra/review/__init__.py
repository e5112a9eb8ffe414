"""Reviewing a run: explain a building, provenance, per-building risk tables, GIS export, comparison
of two runs, HTML report.

Layer: below :mod:`hra.api` (which writes ``[output] gpkg`` through :mod:`hra.review.export`),
above :mod:`hra.integration` and :mod:`hra.policy` (recomputation and risk profiles).

* :func:`hra.review.explain.explain`: one building's mean LPR split by magnitude, distance, source
  cell, typology, collapse state and logic-tree node.
* :func:`hra.review.tables.open_run`, :func:`hra.review.tables.risk_table`: a run's Dataset and
  its per-building table (statistics per year, risk category, profile).
* :func:`hra.review.export.export_gis`: GeoPackage / GeoParquet, one point per building.
* :func:`hra.review.compare.compare`: two runs, building by building, with attribution.
* :func:`hra.review.report.write_report`: one self-contained HTML file.
"""
