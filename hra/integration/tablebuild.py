"""`hra tables build`: fill the table store for a config, without running the buildings.

The driver of :mod:`hra.integration.tablestore` (the store itself: layout, keys, reading and writing)
on top of the engine's table stage (:func:`hra.integration.engine.death_table_groups`, which computes a
zone's physical tables a group of GMM branches at a time and writes the missing entries).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hra.integration.engine import death_table_groups, table_rows
from hra.integration.tablestore import (STORE_RESERVE_BYTES, StoreHandle, TableStore, count_missing, entry_bytes,
                                        model_description, model_key, store_for_config)


@dataclass
class BuildReport:
    """What :func:`build` did."""

    store: Path
    key: str
    sites: int
    entries: int  # (site, typology) entries the config needs
    computed: int  # of which computed now (the others were in the store)
    seconds: float


def _build_zone_task(args) -> int:
    handle, gmm, fragility, zone, zone_arg, wierdes, mag, r_nodes, t_all = args
    # only the typologies missing at some site of the zone (present entries are not read)
    missing = [t for t in t_all if not all(
        handle.store.entry_path(handle.key, zone, w, fragility.typologies[int(t)]).is_dir() for w in wierdes)]
    if not missing:
        return 0
    before = handle.store.stats.written
    for _ in death_table_groups(gmm, fragility, zone, wierdes, mag, r_nodes, np.asarray(missing, dtype=np.int64),
                                store=handle, expand=False):
        pass  # each group of branches is written to its entries, then dropped
    return handle.store.stats.written - before


def _check_space(store: TableStore, key: str, fragility, groups, per_entry: float) -> None:
    """Refuse a build whose missing entries would leave less than :data:`STORE_RESERVE_BYTES` free on the
    store's disk (before computing any of them), with the estimate and the fix."""
    missing = count_missing(store, key, fragility.typologies, ((z, w, t) for z, wierdes, ts in groups
                                                               for w in wierdes for t in ts))
    need = missing * per_entry
    free = store.free_bytes()
    if missing and free is not None and need > free - STORE_RESERVE_BYTES:
        raise ValueError(f"table store {store.root}: the {missing} missing entries need ~{need / 1e9:.1f} GB and "
                         f"{free / 1e9:.1f} GB are free on that disk (a build leaves {STORE_RESERVE_BYTES / 1e9:.0f} GB); "
                         "nothing was computed; fix: free space, or pass --store with a folder on a larger disk")


def build(cfg, all_zones: bool = False, store: TableStore | None = None, progress: bool = False) -> BuildReport:
    """Fill the table store for a config.

    Parameters
    ----------
    cfg
        The run's :class:`hra.config.Config`.
    all_zones
        False: the (site, typology) pairs of the config's buildings. True: every site-response
        zone of the ground-motion model (with and without wierde where the model has a wierde
        term) x every typology of the fragility model (reads no exposure).
    store
        Default: :func:`store_for_config` (an error if the config says ``table_store = false``).
    progress
        Progress bar over zones.
    """
    import hra.chain as chain
    from hra.core.executor import Executor

    t0 = time.perf_counter()
    store = store or store_for_config(cfg)
    if store is None:
        raise ValueError("no table store: [compute] table_store = false (or $HRA_TABLE_STORE is off); "
                         "set a folder there or pass --store PATH")
    if all_zones:
        sm = chain.prepare_source(cfg)
        gmm = chain.make_gmm(cfg)
        fragility, ffiles = chain.make_fragility(cfg, gmm.imts[0])
        mag, r_nodes = sm.magnitude, sm.distance_nodes_km
        files = {**sm.files, **ffiles}
        zones = [0] if gmm.zones is None else [int(z) for z in gmm.zones]
        wierdes = [False, True] if getattr(gmm, "uses_wierde", False) else [False]
        t_all = np.arange(len(fragility.typologies))
        groups = [(z, wierdes, t_all) for z in zones]
    else:
        prep = chain.prepare(cfg)
        gmm, fragility, mag, r_nodes, files = prep.gmm, prep.fragility, prep.magnitude, prep.distance_nodes_km, prep.files
        _, t_lists = table_rows(prep)
        by_zone: dict[int, list[int]] = {}
        for i, (zone, _) in enumerate(prep.sites):
            by_zone.setdefault(int(zone), []).append(i)
        groups = []
        for z, idx in by_zone.items():
            t_all = np.unique(np.concatenate([np.asarray(t_lists[i], dtype=np.int64) for i in idx]))
            groups.append((z, [bool(prep.sites[i][1]) for i in idx], t_all))
    desc = model_description(gmm, fragility, mag.nodes, r_nodes, cfg, files, getattr(mag, "table_stride", 1))
    key = model_key(desc)
    _check_space(store, key, fragility, groups, entry_bytes(gmm, fragility, mag, r_nodes))
    store.register(key, desc)
    handle = StoreHandle(store, key)
    args = [(handle, gmm, fragility, z, None if gmm.zones is None else z, w, mag, r_nodes, t)
            for z, w, t in groups if len(t)]
    with Executor.from_config(cfg.compute, progress) as ex:
        written = ex.map(_build_zone_task, args, label="tables")
    n_entries = sum(len(w) * len(t) for _, w, t in groups)
    n_sites = sum(len(w) for _, w, _ in groups)
    return BuildReport(store.root, key, n_sites, n_entries, int(sum(written)), time.perf_counter() - t0)
