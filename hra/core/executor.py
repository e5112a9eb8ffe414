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

import logging
from typing import Callable, Literal

#: The local executors: ``[compute] executor`` and the CLI's ``--processes/--threads``.
EXECUTORS = ("threads", "processes", "synchronous")
ExecutorKind = Literal["threads", "processes", "synchronous"]


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
        with progress_bar(len(items), label, enabled=self.progress if progress is None else progress) as advance:
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
            futures = [self.client.submit(fn, it, pure=False, **kw) for it in items]
            index = {f.key: i for i, f in enumerate(futures)}
            for fut in as_completed(futures):
                results[index[fut.key]] = fut.result()
                advance()
            return results
