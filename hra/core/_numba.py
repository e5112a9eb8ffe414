"""numba defaults for the project's kernels (one place, as sgkit does).

``HRA_NUMBA_CACHE=0`` switches the on-disk cache off (e.g. on shared file systems where several
workers could compile at once; numba issues #4807, #10128). ``fastmath`` stays off: the kernels'
results must not depend on vectorisation choices.
"""

from __future__ import annotations

import os

from numba import njit

CACHE = os.environ.get("HRA_NUMBA_CACHE", "1") != "0"


def jit(*args, **kwargs):
    kwargs.setdefault("cache", CACHE)
    kwargs.setdefault("nogil", True)
    kwargs.setdefault("error_model", "numpy")
    return njit(*args, **kwargs)
