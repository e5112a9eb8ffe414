"""The event-based engine: synthetic catalogues, spatially correlated ground-motion fields,
sampled collapses and deaths, group risk (F-N curves).

- :mod:`hra.eventbased.catalogue`: stochastic event sets from the source model;
- :mod:`hra.eventbased.gmf`: residuals and spatially correlated ground-motion fields;
- :mod:`hra.eventbased.risk`: event-based risk, F-N curves, the Dataset (``hra events``);
- :mod:`hra.eventbased.kernels`: its numba kernels;
- :mod:`hra.eventbased.adapters`, :mod:`hra.eventbased.groningen`: how each ground-motion model is
  simulated event by event (the GMMs themselves live in :mod:`hra.gmm`).
"""
