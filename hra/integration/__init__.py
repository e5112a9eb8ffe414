"""The integration engine: per-building LPR by quadrature over the model chain, for every branch
of the logic tree.

- :mod:`hra.integration.engine`: orchestration (tables, realisations, chunks of buildings, reduction);
- :mod:`hra.integration.condtables`: grid tables of the many-component Groningen mixtures;
- :mod:`hra.integration.kernels`: the numba kernels of this engine (no I/O, no dask, no model equations);
- :mod:`hra.integration.hazard`: site hazard curves and uniform hazard spectra;
- :mod:`hra.integration.conditional`: one link of the chain for one event (``hra.conditional_risk``).
"""
