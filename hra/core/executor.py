"""Where tasks run: threads in this process (the default), a local cluster of worker processes, or
an external ``dask.distributed`` scheduler.

The numba kernels release the GIL (``nogil=True``, :mod:`hra.core._numba`), so threads of one
process run them in parallel without pickling the shared tables or re-importing the caller's main
module: plain scripts without an ``if __name__ == "__main__":`` guard, ``python -`` from stdin,
``python -c`` and notebooks all work with several workers. Worker processes (a dask
``LocalCluster``, started with *spawn*) remain available for work that holds the GIL, and an
external scheduler address runs the tasks on a ``dask.distributed`` cluster.

Every task is a pure function of its inputs and the results are returned in input order, so a run
gives the same numbers with every executor, number of workers and chunk size.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Callable, Literal

#: The local executors: ``[compute] executor`` and the CLI's ``--processes/--threads``.
EXECUTORS = ("threads", "processes", "synchronous")
ExecutorKind = Literal["threads", "processes", "synchronous"]


_blas_lock = threading.Lock()
_blas_users: list = [0, None]  # callers inside :func:`single_thread_blas`, their threadpool limiter


@contextlib.contextmanager
def single_thread_blas():
    """BLAS on one thread while inside (usable as a decorator; thread-safe and re-entrant: the
    first caller in sets the limit, the last one out restores the original).

    Every task of :meth:`Executor.map` runs inside it (the whole map for threads and in this
    process; each task on a worker process). The tasks' matrix products are small (a few hundred
    rows and columns, e.g. the V7 tables' grid products) and called many times: a multi-threaded
    BLAS spends more CPU in its threads' waiting than it saves, and the parallelism is across
    tasks anyway (V7 table stage on the 2 shared cores, one worker: ~12 s instead of ~18 s CPU per
    zone, wall time no longer). One limit for a whole map, never switched while tasks run, keeps
    the results the same with every executor (some BLAS routines' rounding depends on their
    number of threads).
    """
    from threadpoolctl import threadpool_limits

    with _blas_lock:
        if _blas_users[0] == 0:
            _blas_users[1] = threadpool_limits(limits=1, user_api="blas")
        _blas_users[0] += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users[0] -= 1
            if _blas_users[0] == 0:
                _blas_users[1].restore_original_limits()
                _blas_users[1] = None


def _task_single_thread_blas(fn: Callable, item, **shared):
    """``fn(item, **shared)`` with BLAS on one thread (a task on a worker process)."""
    with single_thread_blas():
        return fn(item, **shared)


class Executor:
    """Runs tasks in this process (serially or on threads) or on a dask.distributed cluster.

    Parameters
    ----------
    kind
        ``"threads"`` (default): a thread pool of ``workers`` threads in this process (serial when
        ``workers`` is 1); ``"processes"``: a dask ``LocalCluster`` of ``workers`` single-threaded
        worker processes (in-process when ``workers`` is 1); ``"synchronous"``: serially in this
        process whatever ``workers`` says.
    workers
        Number of threads or worker processes.
    progress
        Draw a progress bar (else log lines every ~10 % of the tasks, see :mod:`hra.core.progress`).
    scheduler
        Address of a running ``dask.distributed`` scheduler (e.g. ``"tcp://host:8786"``); when
        given, tasks run there and ``kind`` is not used.

    Examples
    --------
    >>> with Executor("threads", workers=2) as ex:
    ...     ex.map(abs, [-1, 2, -3])
    [1, 2, 3]
    """

    def __init__(self, kind: str = "threads", workers: int = 1, progress: bool = False,
                 scheduler: str | None = None) -> None:
        if kind not in EXECUTORS:
            raise ValueError(f"executor {kind!r} is not one of {', '.join(EXECUTORS)}")
        self.kind = kind
        self.workers = max(1, int(workers))
        self.progress = progress
        self.scheduler = scheduler
        self.client = None
        self.cluster = None
        self.pool = None
        self.parallel = False

    @classmethod
    def from_config(cls, compute, progress: bool = False) -> "Executor":
        """The executor of a ``[compute]`` section (:class:`hra.config.ComputeSection`)."""
        return cls(compute.executor, compute.n_workers, progress, compute.scheduler)

    @property
    def mode(self) -> str:
        """What runs the tasks: ``"scheduler"``, ``"processes"``, ``"threads"`` or ``"synchronous"``."""
        if self.scheduler is not None:
            return "scheduler"
        if self.kind == "synchronous" or self.workers <= 1:
            return "synchronous"
        return self.kind

    def __enter__(self) -> "Executor":
        mode = self.mode
        if mode == "synchronous":
            return self
        if mode == "threads":
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="hra-worker")
        else:
            from dask.distributed import Client, LocalCluster

            if mode == "processes":
                self.cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                            dashboard_address=":0", silence_logs=logging.ERROR)
                self.client = Client(self.cluster)
            else:
                self.client = Client(self.scheduler)
        self.parallel = True
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
        if self.client is not None:
            self.client.close()
            self.client = None
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None
        self.parallel = False

    def map(self, fn: Callable, items: list, label: str = "", shared: dict | None = None,
            progress: bool | None = None) -> list:
        """``[fn(item, **shared) for item in items]``, in input order.

        ``shared`` holds data every task needs (read-only): threads see the same objects, dask
        workers receive them once (scattered with ``broadcast=True``). ``label``: the progress bar
        or log lines per finished task (``""`` with ``progress=False``: none, e.g. when the tasks
        report their own steps, :func:`hra.core.progress.step_progress`); ``progress``: draw a bar
        (default: the executor's setting).
        """
        from hra.core.progress import progress_bar

        shared = shared or {}
        results: list = [None] * len(items)
        with single_thread_blas(), \
                progress_bar(len(items), label, enabled=self.progress if progress is None else progress) as advance:
            if not self.parallel:
                for i, it in enumerate(items):
                    results[i] = fn(it, **shared)
                    advance()
                return results
            if self.pool is not None:
                from concurrent.futures import as_completed

                index = {self.pool.submit(fn, it, **shared): i for i, it in enumerate(items)}
                for fut in as_completed(index):  # the progress bar advances in this (the calling) thread
                    results[index[fut]] = fut.result()
                    advance()
                return results
            from dask.distributed import as_completed

            kw = {k: self.client.scatter(v, broadcast=True) for k, v in shared.items()}
            futures = [self.client.submit(_task_single_thread_blas, fn, it, pure=False, **kw) for it in items]
            index = {f.key: i for i, f in enumerate(futures)}
            for fut in as_completed(futures):
                results[index[fut.key]] = fut.result()
                advance()
            return results
