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

Cluster faults (an external scheduler): a worker lost mid-run costs nothing (dask runs its tasks
again on the other workers, and a task's result does not depend on where it ran); a cluster left
without any worker while tasks are pending fails after ``no_workers_timeout_s`` with a
:class:`ClusterError` naming the scheduler address; a lost scheduler gives one
:class:`ClusterError` (the tracebacks that ``distributed.client`` would log are held back).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Callable, Literal

class ClusterError(ValueError):
    """The dask cluster cannot run the tasks (no workers left, scheduler lost); names the address and the fix."""


class _HoldTracebacks(logging.Filter):
    """Keeps the connection tracebacks of ``distributed`` off stderr while a scheduler is in use
    (they become one :class:`ClusterError`); the messages go to the ``hra`` log at debug level."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info or record.levelno >= logging.WARNING:
            logging.getLogger("hra").debug("dask: %s", record.getMessage())
            return False
        return True


_QUIET_LOGGERS = ("distributed.client", "distributed.core", "distributed.comm", "distributed.batched")

#: glibc malloc settings for the worker processes of a local cluster. dask starts its workers with
#: ``MALLOC_TRIM_THRESHOLD_=65536`` (``distributed.nanny.pre-spawn-environ``), which also freezes
#: glibc's mmap threshold at 128 KiB: every larger array is then fresh pages from the kernel, and the
#: table stage, which makes many short-lived arrays of MBs, spends its time in page faults (GMM V7,
#: 6 zones on 2 workers: 79 CPU s against 49 with these settings or with threads). Arrays up to 32 MiB
#: (glibc's largest mmap threshold) come from the heap instead, and up to 256 MiB of free heap is kept.
WORKER_MALLOC_ENV = {"MALLOC_TRIM_THRESHOLD_": 1 << 28, "MALLOC_MMAP_THRESHOLD_": 1 << 25}


def worker_environ() -> dict:
    """dask's ``distributed.nanny.pre-spawn-environ`` (BLAS on one thread, ...) with
    :data:`WORKER_MALLOC_ENV`: the environment of the worker processes this package starts."""
    import dask
    import distributed  # noqa: F401  (registers distributed's config defaults)

    return {**dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {}), **WORKER_MALLOC_ENV}


def local_cluster(n_workers: int, **kwargs):
    """A dask ``LocalCluster`` of ``n_workers`` single-threaded worker processes started with
    :func:`worker_environ` (extra ``kwargs`` go to ``LocalCluster``)."""
    import dask
    from dask.distributed import LocalCluster

    with dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environ()}):
        return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, **kwargs)

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
    no_workers_timeout_s
        With a scheduler: fail (:class:`ClusterError`) when it has had no worker for this long
        while tasks are pending. [s]

    Examples
    --------
    >>> with Executor("threads", workers=2) as ex:
    ...     ex.map(abs, [-1, 2, -3])
    [1, 2, 3]
    """

    def __init__(self, kind: str = "threads", workers: int = 1, progress: bool = False,
                 scheduler: str | None = None, no_workers_timeout_s: float = 60.0) -> None:
        if kind not in EXECUTORS:
            raise ValueError(f"executor {kind!r} is not one of {', '.join(EXECUTORS)}")
        self.kind = kind
        self.workers = max(1, int(workers))
        self.progress = progress
        self.scheduler = scheduler
        self.no_workers_timeout_s = float(no_workers_timeout_s)
        self._filter: logging.Filter | None = None
        self.client = None
        self.cluster = None
        self.pool = None
        self.parallel = False

    @classmethod
    def from_config(cls, compute, progress: bool = False) -> "Executor":
        """The executor of a ``[compute]`` section (:class:`hra.config.ComputeSection`)."""
        return cls(compute.executor, compute.n_workers, progress, compute.scheduler,
                   getattr(compute, "no_workers_timeout_s", 60.0))

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
            from dask.distributed import Client

            if mode == "processes":
                self.cluster = local_cluster(self.workers, dashboard_address=":0", silence_logs=logging.ERROR)
                self.client = Client(self.cluster)
            else:
                self._filter = _HoldTracebacks()
                for name in _QUIET_LOGGERS:
                    logging.getLogger(name).addFilter(self._filter)
                try:
                    self.client = Client(self.scheduler)
                except OSError as exc:
                    self._unquiet()
                    raise ClusterError(f"cannot reach the dask scheduler {self.scheduler} ({exc}); start it "
                                       "(dask scheduler) or fix [compute] scheduler / --scheduler") from None
        self.parallel = True
        return self

    def _unquiet(self) -> None:
        if self._filter is not None:
            for name in _QUIET_LOGGERS:
                logging.getLogger(name).removeFilter(self._filter)
            self._filter = None

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
        if self.client is not None:
            try:
                self.client.close(timeout=10)
            except Exception:  # noqa: BLE001 - a lost scheduler: nothing left to close
                pass
            self.client = None
            self._unquiet()
        if self.cluster is not None:
            self.cluster.close()
            self.cluster = None
        self.parallel = False

    def map(self, fn: Callable, items: list, label: str = "", shared: dict | None = None,
            progress: bool | None = None, on_result: Callable[[int, object], None] | None = None) -> list:
        """``[fn(item, **shared) for item in items]``, in input order.

        ``shared`` holds data every task needs (read-only): threads see the same objects, dask
        workers receive them once (scattered with ``broadcast=True``). ``label``: the progress bar
        or log lines per finished task (``""`` with ``progress=False``: none, e.g. when the tasks
        report their own steps, :func:`hra.core.progress.step_progress`); ``progress``: draw a bar
        (default: the executor's setting). ``on_result(i, result)`` is called in the calling
        thread as each task finishes (e.g. to save a checkpoint).
        """
        from hra.core.progress import progress_bar

        shared = shared or {}
        results: list = [None] * len(items)

        def finished(i: int, value: object) -> None:
            results[i] = value
            if on_result is not None:
                on_result(i, value)

        with single_thread_blas(), \
                progress_bar(len(items), label, enabled=self.progress if progress is None else progress) as advance:
            if not self.parallel:
                for i, it in enumerate(items):
                    finished(i, fn(it, **shared))
                    advance()
                return results
            if self.pool is not None:
                from concurrent.futures import as_completed

                index = {self.pool.submit(fn, it, **shared): i for i, it in enumerate(items)}
                for fut in as_completed(index):  # the progress bar advances in this (the calling) thread
                    finished(index[fut], fut.result())
                    advance()
                return results
            try:
                self._map_cluster(fn, items, shared, finished, advance)
            except ClusterError:
                raise
            except Exception as exc:  # noqa: BLE001 - a task's own error, or the scheduler lost
                from concurrent.futures import CancelledError

                from distributed.comm.core import CommClosedError

                if self._scheduler_lost() or isinstance(exc, (CancelledError, CommClosedError)):
                    raise self._lost_error(exc) from None
                raise
            return results

    def _scheduler_lost(self) -> bool:
        return self.scheduler is not None and self.client is not None and self.client.status not in ("running", "connecting")

    def _lost_error(self, exc: BaseException | None = None) -> ClusterError:
        why = f" ({type(exc).__name__})" if exc is not None else ""
        return ClusterError(f"lost the connection to the dask scheduler {self.scheduler}{why}; the run stopped. "
                            "Restart the scheduler and its workers, then run again (a run that writes outputs resumes "
                            "from its finished building chunks).")

    def _map_cluster(self, fn: Callable, items: list, shared: dict, finished, advance) -> None:
        """The dask path of :meth:`map`, with the no-worker watchdog."""
        import time

        from dask.distributed import wait

        if self._n_workers() == 0:  # scatter(broadcast=True) would wait for a worker
            self._wait_for_workers()
        kw = {k: self.client.scatter(v, broadcast=True) for k, v in shared.items()}
        futures = [self.client.submit(_task_single_thread_blas, fn, it, pure=False, **kw) for it in items]
        index = {f.key: i for i, f in enumerate(futures)}
        pending = set(futures)
        fetch_s: dict = {}  # seconds allowed to fetch a finished task's result, per task
        since: float | None = None
        while pending:
            try:
                done, _ = wait(list(pending), timeout=1.0, return_when="FIRST_COMPLETED")
            except TimeoutError:
                done = set()
            progressed = False
            for fut in done:
                if fut.status == "cancelled" and self._scheduler_lost():
                    raise self._lost_error()
                try:  # a short first try, longer ones after (a large result takes its time to arrive)
                    value = fut.result(timeout=fetch_s.get(fut.key, 2.0))
                except TimeoutError:  # its result was on a worker lost meanwhile: it is computed again
                    fetch_s[fut.key] = min(2.0 * fetch_s.get(fut.key, 2.0), 120.0)
                    continue
                finished(index[fut.key], value)
                pending.discard(fut)
                advance()
                progressed = True
            if not pending:
                break
            if self._scheduler_lost():
                raise self._lost_error()
            if progressed:  # tasks finish: there are workers
                since = None
            elif self._n_workers() == 0:
                since = time.monotonic() if since is None else since
                if time.monotonic() - since >= self.no_workers_timeout_s:
                    raise self._no_workers_error(len(pending), len(items))
            else:
                since = None

    def _n_workers(self) -> int:
        try:
            return len(self.client.nthreads())
        except Exception as exc:  # noqa: BLE001 - the scheduler cannot be asked: lost
            raise self._lost_error(exc) from None

    def _wait_for_workers(self) -> None:
        import time

        start = time.monotonic()
        while self._n_workers() == 0:
            if time.monotonic() - start >= self.no_workers_timeout_s:
                raise self._no_workers_error(None, None)
            time.sleep(0.5)

    def _no_workers_error(self, pending: int | None, total: int | None) -> ClusterError:
        left = f" with {pending} of {total} tasks pending" if pending is not None else ""
        return ClusterError(
            f"the dask scheduler {self.scheduler} has had no workers for {self.no_workers_timeout_s:g} s{left}; "
            f"start workers (dask worker {self.scheduler}) and run again (a run that writes outputs resumes from its "
            "finished building chunks), or raise [compute] no_workers_timeout_s")
