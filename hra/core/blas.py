"""One BLAS thread for every computation whose result must not depend on where it runs.

A BLAS matrix product may split its inner sum differently with a different number of threads
(OpenBLAS does for some shapes), so the same table computed in the driver (BLAS with as many
threads as cores) and in a dask worker process (one BLAS thread: dask's nanny sets
``OPENBLAS_NUM_THREADS=1``) can differ in the last bit. The engine's results are promised to be
bit-identical whatever executor, worker count or chunk size runs them, so the entry points that
compute tables (:func:`hra.integration.engine.compute`, :func:`hra.integration.hazard.hazard_curves`)
run with one BLAS thread (:func:`single_threaded`, restored on return), and a task that runs in a
worker process pins its process to one BLAS thread (:func:`pin_worker`). The cost is small: the
parallelism of a run comes from its tasks (zones, building chunks), not from BLAS.
"""

from __future__ import annotations

import functools
import multiprocessing
from typing import Callable, TypeVar

from threadpoolctl import threadpool_limits

F = TypeVar("F", bound=Callable)

_pinned = False


def single_threaded(func: F) -> F:
    """Decorator: run ``func`` with one BLAS thread (the earlier setting restored afterwards)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with threadpool_limits(limits=1, user_api="blas"):
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def pin_worker() -> None:
    """In a worker process (not the main process of the run), limit BLAS to one thread for good.

    Does nothing in the main process: there the entry point's :func:`single_threaded` holds (a
    process-wide change from a task on a thread would race with the other tasks)."""
    global _pinned
    if _pinned or multiprocessing.current_process().name == "MainProcess":
        return
    threadpool_limits(limits=1, user_api="blas")
    _pinned = True
