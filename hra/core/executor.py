"""Where tasks run: in-process, on a local dask cluster or on a dask.distributed scheduler."""

from __future__ import annotations

import logging
from typing import Callable

class Executor:
    """Runs tasks in-process or on a dask.distributed cluster (LocalCluster or an address)."""

    def __init__(self, scheduler: str = "auto", workers: int = 1, progress: bool = False) -> None:
        self.scheduler = scheduler
        self.workers = workers
        self.progress = progress
        self.client = None
        self.cluster = None
        self.parallel = False

    def __enter__(self) -> "Executor":
        sched = self.scheduler
        if sched == "auto":
            sched = "synchronous" if self.workers <= 1 else "local"
        if sched == "synchronous":
            return self
        from dask.distributed import Client, LocalCluster

        if sched == "local":
            self.cluster = LocalCluster(n_workers=self.workers, threads_per_worker=1, processes=True,
                                        dashboard_address=":0", silence_logs=logging.ERROR)
            self.client = Client(self.cluster)
        else:
            self.client = Client(sched)
        self.parallel = True
        return self

    def __exit__(self, *exc) -> None:
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def map(self, fn: Callable, items: list, label: str = "", shared: dict | None = None) -> list:
        """``[fn(item) or fn(item, **shared)]`` in order; shared data is sent to workers once."""
        from hra.core.progress import progress_bar

        results: list = [None] * len(items)
        with progress_bar(len(items), label, enabled=self.progress) as advance:
            if not self.parallel:
                for i, it in enumerate(items):
                    results[i] = fn(it, **shared) if shared else fn(it)
                    advance()
                return results
            from dask.distributed import as_completed

            kw = {}
            if shared:
                kw = {k: self.client.scatter(v, broadcast=True) for k, v in shared.items()}
            futures = [self.client.submit(fn, it, pure=False, **kw) for it in items]
            index = {f.key: i for i, f in enumerate(futures)}
            for fut in as_completed(futures):
                results[index[fut.key]] = fut.result()
                advance()
            return results
