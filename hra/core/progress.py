"""Progress reporting: a rich bar on a terminal, plain log lines otherwise (CI, cluster logs).

Two forms:

* :func:`progress_bar`: the caller advances it once per finished unit (a task, a site, ...).
* :func:`step_progress` with :func:`step` and :func:`task_steps`: progress *inside* tasks. While a
  ``step_progress`` block is open, code anywhere in this process (the calling thread or the worker
  threads of :class:`hra.core.executor.Executor`) calls :func:`step` after each block of work, e.g.
  the table stage after each physical GMM branch block of a zone. Worker *processes* have no open
  block, so :func:`step` is a no-op there and the caller reports per finished task instead.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Callable, Iterator

log = logging.getLogger("hra")

#: the ``advance`` of the open :func:`step_progress` block (None: steps are not reported)
_sink: Callable[[int], None] | None = None
#: steps reported by the task running in this thread (for :func:`task_steps`)
_local = threading.local()


@contextlib.contextmanager
def progress_bar(total: int, label: str, enabled: bool = True) -> Iterator[Callable[[], None]]:
    """Yield an ``advance()`` callable; draws a rich bar when ``enabled``, else logs every ~10 %."""
    if enabled and total > 0:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), TimeRemainingColumn(), transient=False) as bar:
            task = bar.add_task(label or "working", total=total)
            yield lambda: bar.advance(task)
        return
    done = 0
    every = max(1, total // 10)
    t0 = time.perf_counter()

    def advance() -> None:
        nonlocal done
        done += 1
        if label and (done % every == 0 or done == total):
            elapsed = time.perf_counter() - t0
            if done < total:  # remaining time at the mean pace so far
                log.info("%s: %d/%d (%.1f s, ETA %.0f s)", label, done, total, elapsed, elapsed * (total - done) / done)
            else:
                log.info("%s: %d/%d (%.1f s)", label, done, total, elapsed)

    yield advance


@contextlib.contextmanager
def step_progress(total: int, label: str, enabled: bool = True) -> Iterator[None]:
    """Report the :func:`step` calls made while the block is open as one bar (or log lines with an
    ETA) of ``total`` steps; thread-safe (worker threads of this process may step).

    Examples
    --------
    >>> with step_progress(3, "", enabled=False):
    ...     for _ in range(3):
    ...         step()
    """
    global _sink
    lock = threading.Lock()
    with progress_bar(total, label, enabled) as advance:
        def sink(n: int) -> None:
            with lock:
                for _ in range(n):
                    advance()

        previous, _sink = _sink, sink
        try:
            yield
        finally:
            _sink = previous


def step(n: int = 1) -> None:
    """``n`` steps of work done (no-op outside :func:`step_progress`, e.g. in a worker process)."""
    sink = _sink
    if sink is not None:
        _local.steps = getattr(_local, "steps", 0) + n
        sink(n)


@contextlib.contextmanager
def task_steps(n: int) -> Iterator[None]:
    """A task of ``n`` steps: at its end the steps it did not report (work skipped, e.g. tables
    read from a store) are reported, so the bar reaches its total."""
    before = getattr(_local, "steps", 0)
    try:
        yield
    finally:
        left = n - (getattr(_local, "steps", 0) - before)
        if left > 0:
            step(left)
