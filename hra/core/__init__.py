"""Foundation layer: what every other layer of :mod:`hra` may use, and which uses nothing of it.

- :mod:`hra.core.logictree`: logic-tree nodes, enumeration, Monte-Carlo realisations, weighted quantiles;
- :mod:`hra.core._numba`: the numba defaults of every kernel (one place);
- :mod:`hra.core.progress`: progress reporting shared by the engines.
"""
