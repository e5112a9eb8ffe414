"""Progress reporting: a rich bar on a terminal, plain log lines otherwise (CI, cluster logs)."""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Callable, Iterator

log = logging.getLogger("hra")


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
    step = max(1, total // 10)
    t0 = time.perf_counter()

    def advance() -> None:
        nonlocal done
        done += 1
        if label and (done % step == 0 or done == total):
            elapsed = time.perf_counter() - t0
            if done < total:  # remaining time at the mean pace so far
                log.info("%s: %d/%d (%.1f s, ETA %.0f s)", label, done, total, elapsed, elapsed * (total - done) / done)
            else:
                log.info("%s: %d/%d (%.1f s)", label, done, total, elapsed)

    yield advance
