"""Orchestration: from a validated config to per-building LPR statistics.

Steps (docs/architecture.md §2):

1. :func:`hra.chain.prepare` reads the source rate grid, exposure and fragility, builds the
   ground-motion model, assigns site-response zones and assembles the logic tree
   ``[source] + [b_value, m_max] + GMM nodes + [fragility, consequence]``.
2. :func:`build_tables` computes, per site and typology, the expected probability of death per
   event at each distance node, integrated over magnitude (exact GR bins), ground-motion
   residuals and site response (Gaussian-mixture quadrature) and fragility, for every model
   combination ``u`` (all nodes except the source-rate branch): ``Q[site*T + t, r, u]``. Also
   the tree-mean table ``Qbar`` (weights of all combinations), which gives the exact mean LPR.
   The physical death tables before magnitude integration (:func:`physical_death_tables`) are
   read from and added to the table store (:mod:`hra.integration.tablestore`) unless
   ``[compute] table_store = false``; a zone's task computes (or reads) them a group of GMM
   branches at a time and drops each group once consumed (:func:`death_table_groups`).
3. :func:`select_realisations` enumerates the tree or draws Monte-Carlo realisations (from
   ``(seed, node)`` streams) and reduces them to the distinct (source branch, model combination)
   pairs with weights.
4. chunks of buildings go through :func:`hra.integration.kernels.chunk_lpr` on an
   :class:`hra.core.executor.Executor` (threads of this process by default, worker processes or a
   dask cluster); each chunk returns its mean, quantiles and optional realisations, which depend
   only on the chunk's own buildings and the shared tables, so results do not depend on the
   chunk size or the number of workers. When the tables of all zones would exceed ``[compute]
   table_memory_gb``, steps 2 and 4 run per group of zones (:func:`zone_groups`): a group's
   tables, then its buildings, then the tables are freed; the same results to the bit.
5. :func:`hra.outputs.build_dataset` assembles the Dataset contract (docs/architecture.md §4.1).
"""

from __future__ import annotations

import hashlib
import logging
import math
import multiprocessing
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from fragility.lognormal import FragilityModel
from hra.chain import MedianMap, Prepared, engine_gmm_tree, prepare
from hra.config import Config
import hra.core.progress as prog
from hra.core.executor import Executor, single_thread_blas
from hra.core.logictree import PURPOSE_TYPOLOGY, Realisations
from hra.core.random import seed_key
from hra.gmm.base import GroundMotionModel
import hra.inputs.forecast as forecast
from hra.inputs.source import MagnitudeBins
from hra.integration import condtables, forecaststore, kernels, magnitudes, tablestore
from hra.integration.forecaststore import FORECAST_COMPRESSION, ForecastTables
from hra.integration.tablestore import STORE_RESERVE_BYTES, StoreHandle, entry_bytes

log = logging.getLogger("hra")


# ------------------------------------------------------------------------------------------
# tables
# ------------------------------------------------------------------------------------------


@dataclass
class Tables:
    """``q[row, r, u]``: expected death probability per event at distance node r for the selected
    model combination u (float64, or float32: ``[run] table_precision``); ``qbar[row, r]`` the tree
    mean, float64 (``qbar[row, r, s]`` per source branch s
    for a forecast, whose magnitude basis differs per branch); rows are the (site, typology) pairs
    present in the exposure (``row_of[site, typology]``, -1 where absent). For a forecast the
    distance axis is (distance node, basis function) flattened, ``r * K + k``."""

    q: np.ndarray
    qbar: np.ndarray
    row_of: np.ndarray


def death_tables(fragility: FragilityModel, t_sel, mix, mix2=None, presence_inside: float | None = None):
    """Collapse and death probabilities per event from the IM mixtures, for the typologies ``t_sel``.

    ``mix`` is the mixture of the fragility IM on an (m, r) grid, ``mix2`` that of the direct
    outside-death IM (chimneys; ``None`` if the model has none). Returns ``(death, pexc)``:
    ``death[t, f, c, m, r] = p P_in + (1 - p) (P_out + P_direct)`` with p = ``presence_inside``
    (default: the model's), and ``pexc[t, f, k, m, r]`` = nested P(CS >= k).
    """
    t_sel = np.atleast_1d(np.asarray(t_sel))
    presence = fragility.presence_inside if presence_inside is None else presence_inside
    T = t_sel.size
    F, K = fragility.median_g.shape[1:]
    C = fragility.p_death_inside.shape[1]
    M, R = mix.mean.shape[:2]
    pexc = np.empty((T, F, K, M, R))
    death = np.empty((T, F, C, M, R))
    kernels.death_table(np.ascontiguousarray(mix.mean), np.ascontiguousarray(mix.sd), np.ascontiguousarray(mix.weight),
                        np.ascontiguousarray(np.log(fragility.median_g[t_sel])), np.ascontiguousarray(fragility.beta[t_sel]),
                        np.ascontiguousarray(fragility.p_death_inside[t_sel]),
                        np.ascontiguousarray(fragility.p_death_outside[t_sel]), float(presence), pexc, death)
    if mix2 is not None and presence < 1.0:
        med = fragility.direct_median_g[t_sel]
        lnm = np.where(med > 0, np.log(np.where(med > 0, med, 1.0)), -np.inf).reshape(-1)
        direct = np.empty((T * C, M, R))
        kernels.lognormal_expectation(np.ascontiguousarray(mix2.mean), np.ascontiguousarray(mix2.sd),
                                      np.ascontiguousarray(mix2.weight), lnm,
                                      np.ascontiguousarray(fragility.direct_beta[t_sel]).reshape(-1), direct)
        death += (1.0 - presence) * direct.reshape(T, 1, C, M, R)
    return death, pexc


def _phys_death(gmm, fragility, zone_arg, wierde, branch, mag, r_nodes, t_sel):
    """Death tables (t, f, c, m, r) of the typologies ``t_sel`` for one physical GMM combination,
    or a dict s2s-branch -> tables when the model computes its site-term branches together.
    (The direct closed-form path; :mod:`hra.integration.condtables` is the grid path for large mixtures.)"""
    kw = {"wierde": wierde} if getattr(gmm, "uses_wierde", False) else {}

    def tables(mix, mix2):
        return death_tables(fragility, t_sel, mix, mix2)[0]

    if hasattr(gmm, "ln_im_mixtures") and "gmm_s2s" in branch:
        mixes = gmm.ln_im_mixtures(fragility.imt, mag.nodes, r_nodes, zone_arg, branch, **kw)
        mixes2 = (gmm.ln_im_mixtures(fragility.direct_imt, mag.nodes, r_nodes, zone_arg, branch, **kw)
                  if fragility.direct_imt is not None else {j: None for j in mixes})
        return {j: tables(mixes[j], mixes2[j]) for j in mixes}
    mix = gmm.ln_im_mixture(fragility.imt, mag.nodes, r_nodes, zone_arg, branch, **kw)
    mix2 = (gmm.ln_im_mixture(fragility.direct_imt, mag.nodes, r_nodes, zone_arg, branch, **kw)
            if fragility.direct_imt is not None else None)
    return tables(mix, mix2)


def _phys_death_sites(gmm, fragility, zone_arg, wierdes, branch, mag, r_nodes, t_sel, dtype=np.float64,
                      rounded: bool = True) -> list:
    """:func:`_phys_death` for the sites (zone, wierde) of one zone: one result per wierde flag.

    Models with mixtures at given rupture distances (GMM V7/V6) go through
    :func:`hra.integration.condtables.rrup_death_tables`, which shares the ground-motion work between the
    zone's wierde variants and site-term branches (``dtype``: of its tables; the other path's are float64).
    ``rounded``: the values rounded to the tables' precision (:func:`hra.integration.kernels.round_table`)."""
    if condtables.supports(gmm):
        out = condtables.rrup_death_tables(gmm, fragility, t_sel, mag.nodes, r_nodes, zone_arg, branch, tuple(wierdes),
                                           dtype, rounded)
        if "gmm_s2s" in branch:  # (rounded to the tables' precision by the grid path itself)
            return [{j: tabs[i] for j, tabs in out.items()} for i in range(len(wierdes))]
        return [out[0][i] for i in range(len(wierdes))]
    outs = [_phys_death(gmm, fragility, zone_arg, w, branch, mag, r_nodes, t_sel) for w in wierdes]
    for out in (outs if rounded else ()):  # the tables' precision (kernels.round_table): computed = stored, to the bit
        for d in (out.values() if isinstance(out, dict) else (out,)):
            np.copyto(d, kernels.round_table(d))
    return outs


def physical_groups(gmm: GroundMotionModel, median_node: str | None = "gmm_median",
                    split_median: bool = False) -> list[list[tuple[int, ...]]]:
    """The physical GMM branch keys of ``gmm.tree`` in the groups that the table stage computes,
    consumes and drops together (:func:`zone_tables`): keys that differ only in the median branch
    (node ``median_node``, mixed per magnitude by a :class:`hra.chain.MedianMap`) and the
    site-to-site branch (computed together by :func:`hra.integration.condtables.rrup_death_tables`).
    Groups in the order of their other branches, keys sorted within a group (GMM V7: 6 groups of
    4 medians x 3 eps_S2S). ``split_median``: each group split into one group per median branch,
    in median order (GMM V7: 24 groups of 3 eps_S2S; consecutive groups of the same other branches)."""
    phys = gmm.tree.enumerate()
    pnames = [n.name for n in gmm.tree.nodes]
    drop = {"gmm_s2s", median_node}
    mpos = pnames.index(median_node) if median_node in pnames else None
    groups: dict[tuple[int, ...], list[tuple[int, ...]]] = {}
    for g in range(phys.n):
        key = tuple(int(v) for v in phys.index[g])
        gk = tuple(v for v, nm in zip(key, pnames) if nm not in drop)
        if split_median and mpos is not None:
            gk = gk + (key[mpos],)
        groups.setdefault(gk, []).append(key)
    return [sorted(v) for _, v in sorted(groups.items())]


class _StoreStream:
    """Physical tables of one zone through the table store, a group of branches at a time: entries
    (site, typology) present when the zone starts are read (only the group's branches), the
    typologies missing at any site of the zone are computed together (for all its sites, as
    without a store) and the missing entries written a group at a time (:meth:`TableStore.writer`),
    renamed into place by :meth:`commit` once complete. An entry that turns out unreadable half-way is
    computed from there on and not written (the next run computes it again).

    With ``[source] magnitude_table_stride`` 2 an entry holds the tables at the computed magnitude
    nodes only (:func:`hra.integration.magnitudes.computed_nodes`, ~55 % of the bytes): they are
    expanded to every node as they are read, by the same kernel, from the same values, as the tables
    computed without a store (:func:`physical_death_tables`), so a run gives the same bits with or
    without the store; ``expand=False`` (a build, which only writes): the computed nodes' tables."""

    def __init__(self, handle: "StoreHandle", gmm, fragility, zone: int, wierdes: list[bool],
                 mag: MagnitudeBins, r_nodes: np.ndarray, t_all: np.ndarray, all_keys: list[tuple[int, ...]],
                 recycle: bool = False, work: dict | None = None, drop: bool = False, expand: bool = True):
        self.handle, self.gmm, self.fragility, self.zone, self.wierdes = handle, gmm, fragility, zone, wierdes
        # stride 2: entries hold the computed magnitude nodes, expanded as read (expand) or not (a build)
        self.plan = magnitudes.gmm_plan(gmm, mag.nodes, getattr(mag, "table_stride", 1))
        self.expand = expand and self.plan is not None
        self.landing: list[np.ndarray] = []  # read buffers of an entry's computed-node tables (expand)
        self.drop = drop  # stored chunks dropped from the page cache once read (TableStore.read)
        # recycle: the arrays of a group are reused for the next one (the caller has dropped them by then);
        # work: buffers (_scratch) that hold them, e.g. the previous zone's (recycle only)
        self.recycle, self.spare = recycle, [None] * len(wierdes)
        self.work = work if recycle else None
        self.mag, self.r_nodes, self.t_all, self.all_keys = mag, r_nodes, t_all, sorted(all_keys)
        self.names = [fragility.typologies[int(t)] for t in t_all]
        self.present = np.array([[handle.store.entry_path(handle.key, zone, w, nm).is_dir() for nm in self.names]
                                 for w in wierdes], dtype=bool).reshape(len(wierdes), len(self.names))
        self.counted = np.zeros_like(self.present)
        self.writers: dict[tuple[int, int], "tablestore.EntryWriter | None"] = {}

    def group(self, keys: list[tuple[int, ...]]) -> list[dict[tuple[int, ...], np.ndarray]]:
        """Tables (t, f, c, m, r) of the branches ``keys`` per site (``physical_death_tables`` form)."""
        store, key = self.handle.store, self.handle.key
        T = len(self.names)
        out: list[dict[tuple[int, ...], np.ndarray] | None] = [None] * len(self.wierdes)
        for i, spare in enumerate(self.spare):  # the previous group's arrays, for as many branches
            if spare is not None and len(spare) == len(keys):
                out[i] = dict(zip(sorted(keys), spare))
        self.spare = [None] * len(self.wierdes)
        have = np.zeros_like(self.present)

        def put(i: int, j: int, tabs: dict[tuple[int, ...], np.ndarray]) -> None:
            # in the store's precision (TABLE_DTYPE: the tables' values exactly; computed tables are
            # rounded to it): half the bytes to copy, and the consumers read them as float64; tables of
            # the computed magnitude nodes (expand) are expanded into their place
            if out[i] is None:
                def full(shape):
                    return shape[:-2] + (self.plan.n_nodes, shape[-1]) if self.expand else shape

                out[i] = {k: (np.empty((T,) + full(d.shape), dtype=tablestore.TABLE_DTYPE) if self.work is None else
                              _scratch(self.work, f"stream{i}.{n}", (T,) + full(d.shape), dtype=tablestore.TABLE_DTYPE))
                          for n, (k, d) in enumerate(sorted(tabs.items()))}
            for k, d in tabs.items():
                if self.expand:
                    magnitudes.expand(d, self.plan, out=out[i][k][j])
                else:
                    out[i][k][j] = d

        for i, w in enumerate(self.wierdes):
            for j, nm in enumerate(self.names):
                if not self.present[i, j]:
                    continue
                # decoded straight into the site's tables (t, f, c, m, r) once they exist (the first
                # entry read gives their shape); entries of the computed nodes (expand) into reused
                # buffers, then expanded into place
                if self.expand:
                    dest = (dict(zip(sorted(keys), self.landing)) if len(self.landing) == len(keys) else None)
                else:
                    dest = None if out[i] is None else {k: out[i][k][j] for k in keys}
                tabs = store.read(key, self.zone, w, nm, keys, count=not self.counted[i, j], as_stored=True, out=dest,
                                  drop=self.drop)
                if tabs is None:
                    self.present[i, j] = False  # removed as unreadable: computed from here on
                    continue
                self.counted[i, j] = True
                if self.expand:
                    self.landing = [tabs[k] for k in sorted(keys)]
                if dest is None or self.expand:
                    put(i, j, tabs)
                have[i, j] = True
        cols = np.flatnonzero(~have.all(axis=0))
        if self.recycle:
            self.spare = [None if o is None else list(o.values()) for o in out]
        if cols.size == 0:
            return out
        # (stride 2: the computed nodes' tables, stored as they are, expanded below)
        fresh = physical_death_tables(self.gmm, self.fragility, self.zone, self.wierdes, self.mag, self.r_nodes,
                                      self.t_all[cols], keys=keys, dtype=tablestore.TABLE_DTYPE, expand=False)
        for i, w in enumerate(self.wierdes):
            for n, j in enumerate(cols):
                if have[i, j]:
                    continue
                tabs = {k: d[n] for k, d in fresh[i].items()}
                if (i, j) not in self.writers and not self.counted[i, j]:  # missing from the start: stored
                    self.writers[(i, j)] = store.writer(key, self.zone, w, self.names[j], self.all_keys,
                                                        next(iter(tabs.values())).shape)
                if self.writers.get((i, j)) is not None:
                    self.writers[(i, j)].put(tabs)
                if have.any():
                    put(i, j, tabs)
        if have.any():
            return out
        if self.expand:  # nothing read: the tables as computed, expanded as physical_death_tables does
            return [{k: magnitudes.expand(d, self.plan) for k, d in site.items()} for site in fresh]
        return fresh

    def commit(self) -> None:
        """Rename the complete entries into place."""
        for ij in sorted(self.writers):
            if self.writers[ij] is not None:
                self.writers[ij].commit()
        self.writers.clear()

    def abort(self) -> None:
        for w in self.writers.values():
            if w is not None:
                w.abort()
        self.writers.clear()


def death_table_groups(gmm: GroundMotionModel, fragility: FragilityModel, zone: int, wierdes: list[bool],
                       mag: MagnitudeBins, r_nodes: np.ndarray, t_all: np.ndarray,
                       median_node: str | None = "gmm_median", store: "StoreHandle | None" = None,
                       split_median: bool = False, recycle: bool = False, work: dict | None = None,
                       drop: bool = False, expand: bool = True):
    """Yield ``(keys, death)`` per group of :func:`physical_groups`: ``death`` as
    :func:`physical_death_tables` gives it for the branches ``keys`` only (through the table store
    ``store`` if given; its entries are committed after the last group). The table stage holds one
    group at a time (GMM V7: 12 of the 72 physical tables; 3 with ``split_median``). ``recycle``: the
    caller drops each group's tables before it asks for the next, whose tables read from the store
    may then reuse their arrays (no fresh memory per group); ``work`` (with ``recycle``): buffers
    (:func:`_scratch`) that hold those arrays, kept by the caller from zone to zone (:class:`BufferPool`).
    ``expand=False`` (with a store and ``[source] magnitude_table_stride`` 2): the tables of the computed
    magnitude nodes, as stored (a build, which only writes them)."""
    groups = physical_groups(gmm, median_node, split_median)
    if store is None:
        for keys in groups:
            # float32 tables where the grid path computes them (the values are float32's anyway: half
            # the bytes to write and read; the table stage reads float32 and float64 tables alike)
            yield keys, physical_death_tables(gmm, fragility, zone, wierdes, mag, r_nodes, t_all, keys=keys,
                                              dtype=tablestore.TABLE_DTYPE)
        return
    stream = _StoreStream(store, gmm, fragility, zone, wierdes, mag, r_nodes, t_all, [k for g in groups for k in g],
                          recycle, work, drop, expand)
    try:
        for keys in groups:
            yield keys, stream.group(keys)
    except BaseException:
        stream.abort()
        raise
    stream.commit()


def _stored_death_tables(handle: "StoreHandle", gmm, fragility, zone: int, zone_arg, wierdes: list[bool],
                         mag: MagnitudeBins, r_nodes: np.ndarray,
                         t_all: np.ndarray) -> list[dict[tuple[int, ...], np.ndarray]]:
    """:func:`physical_death_tables` through the table store (``zone_arg`` is not used: the zone id
    given to the model follows from ``gmm.zones``), all branches at once (:func:`death_table_groups`
    streams them)."""
    out: list[dict[tuple[int, ...], np.ndarray]] = [{} for _ in wierdes]
    for _, death in death_table_groups(gmm, fragility, zone, wierdes, mag, r_nodes, t_all, store=handle):
        for i, d in enumerate(death):
            out[i].update(d)
    return [dict(sorted(d.items())) for d in out]


def _by_physical_slice(ed: "EngineDeath", uniq: np.ndarray, group_of_ge: np.ndarray, gi: int) -> dict:
    """The selected (engine combination ge, f, c) of physical group gi (rows n of ``uniq``) by the
    (median tables, f, c) slice they read: (medians, f, c) -> [(n, ge), ...] (:meth:`EngineDeath.medians`)."""
    out: dict[tuple, list[tuple[int, int]]] = {}
    for n, (ge, f, c) in enumerate(uniq):
        if group_of_ge[ge] == gi:
            out.setdefault((ed.medians(int(ge)), int(f), int(c)), []).append((n, int(ge)))
    return out


def _slice_of(rows: np.ndarray, n: int):
    """``rows`` as a slice where it is every index 0..n-1 (a view instead of a gathered copy)."""
    return slice(None) if rows.size == n and np.array_equal(rows, np.arange(n)) else rows


def _scratch(work: dict, name: str, shape: tuple[int, ...], zeros: bool = False, dtype=np.float64) -> np.ndarray:
    """A C-contiguous array of ``shape`` (float64 or ``dtype``) in the buffer ``work[name]`` (grown as
    needed): the table stage's temporaries reused from call to call instead of fresh memory each time;
    ``zeros``: set to 0 (a new buffer comes zeroed from the system, without a pass over it)."""
    n = math.prod(shape)
    if work.get(name) is None or work[name].size < n or work[name].dtype != dtype:
        work[name] = None  # released before the larger one is taken
        work[name] = np.zeros(n, dtype=dtype) if zeros else np.empty(n, dtype=dtype)
        return work[name][:n].reshape(shape)
    out = work[name][:n].reshape(shape)
    if zeros:
        out.fill(0.0)
    return out


class BufferPool:
    """Work buffers of the table stage (dicts for :func:`_scratch`) shared by the zone tasks of one
    :func:`build_tables` in this process (or of every zone group of a run, :func:`compute`): a task takes
    a set, uses it and gives it back, so that the next zone reuses its memory (a forecast's
    per-combination sums are as large as q) instead of fresh pages, whose first touch costs the kernel
    more than the table stage's own work on some machines. Also the memory of the tables' q
    (:meth:`q_array`), which the next group of zones reuses once the previous group's q is no longer
    used. Thread-safe; the buffers are freed with the pool."""

    def __init__(self):
        import threading

        self._free: list[dict] = []
        self._lock = threading.Lock()
        self._q: list[np.ndarray | None] = [None, None]
        #: stored tables read as a stream (:meth:`hra.integration.tablestore.TableStore.read` ``drop``): set
        #: by a run whose zones come in several groups (a large store, read once per run)
        self.stream_reads = False

    def q_array(self, shape: tuple[int, ...], slot: int = 0, dtype=np.float64) -> np.ndarray:
        """A C-contiguous array of ``shape`` and ``dtype`` (contents undefined) in the pool's q buffer ``slot``
        (0 or 1): the memory of the previous call's array of that slot where it is large enough (that
        array must no longer be used: :func:`compute` asks for a group's q once the buildings of the
        group before the last are done, in the other slot while the last group's buildings run), else
        a fresh one (the old buffer released first: no higher peak)."""
        dtype = np.dtype(dtype)
        n = math.prod(shape) * dtype.itemsize
        with self._lock:
            if self._q[slot] is None or self._q[slot].size < n:
                self._q[slot] = None
                self._q[slot] = np.empty(n, dtype=np.uint8)
            return self._q[slot][:n].view(dtype).reshape(shape)

    def take(self) -> dict:
        with self._lock:
            return self._free.pop() if self._free else {}

    def give(self, work: dict) -> None:
        with self._lock:
            self._free.append(work)


def _forecast_gemm(acc: np.ndarray, ed: "EngineDeath", death: dict[tuple[int, ...], np.ndarray], rows,
                   basis: np.ndarray, combos: list[tuple[int, int, np.ndarray, np.ndarray]], shape: tuple[int, int],
                   work: dict | None = None, mean: tuple | None = None, fresh: np.ndarray | None = None) -> None:
    """The per-combination tables of a forecast (linear magnitude integration) as matrix products
    (BLAS), accumulated over the physical median tables in ``death`` (those present; the others
    come with later groups):
    ``acc[k, u, t, r] += sum_j sum_m w_{v(u), j}(m) phi_{s(u), k}(m) D_{P(u, j)}[t, f, c, m, r]``.

    ``combos``: per (non-median physical key, f, c): f, c, the combinations' columns ``us`` of q
    and their (engine GMM combination, source branch) pairs (n, 2), all of that physical key;
    ``acc`` (K, u, t, r) all combinations' sums, basis-major (zeros before the first group; each
    product is one BLAS call whose rows (k, u) are contiguous rows of acc; :func:`hra.integration.kernels.forecast_q_layout`
    puts them into q's layout at the end); ``basis`` (S, K, m); ``shape`` (t, r); ``work``: buffers of
    the temporaries (:func:`_scratch`), kept by the caller from call to call; ``fresh`` (K, u) bool: the rows
    of ``acc`` not written yet (undefined memory: set by their first product, then marked; the caller zeroes
    those left at the end), ``None``: ``acc`` holds sums (zeros) to add to.

    ``mean``: ``(typology rows (n,) int64, wfc (f, c), coef {key: (m,)}, out (n, m, r))``: also the tree
    mean's share of these tables, ``out[i, m, r] += sum_key sum_f,c wfc[f, c] coef_key[m] D_key[rows[i], f, c, m, r]``,
    in the same pass over each (f, c) slice as its copy for the products
    (:func:`hra.integration.kernels.weighted_slice_sum`: each table read once), the terms in the order
    of :func:`hra.integration.kernels.weighted_table_sum` per table (tables in ``death``'s order, slices
    in ascending (f, c)): the same sums to the bit."""
    work = {} if work is None else work
    T, R = shape
    # the products' weights and BLAS blocks per slice depend on the forecast and the tree only, not on
    # the zone or site: worked out once per run (per set of work buffers) and reused (_ForecastPlans)
    plans = _ForecastPlans.of(work, ed, basis)
    todo = plans.todo(combos, death)
    if mean is None:
        slices = [(key, f, c) for key in death for f, c in sorted({(f, c) for k2, f, c in todo if k2 == key})]
    else:
        t_rows, wfc, coef, out = mean
        slices = [(key, f, c) for key in death for f in range(wfc.shape[0]) for c in range(wfc.shape[1])]
        no_copy = _scratch(work, "no_copy", (0, t_rows.size, R))
    for key, f, c in slices:
        table = death[key]
        w_mean = None if mean is None or key not in coef else wfc[f, c] * coef[key]  # (m,)
        item = todo.get((key, f, c))
        sp = None if item is None else plans.slice(key, f, c, *item)
        if sp is None and w_mean is None:
            continue
        # (m, t, r) float64 whatever the tables' storage (computed float64 or read float32: the
        # same values, hence the same product, to the bit); the r rows stay contiguous in the copy
        d = None if sp is None else _scratch(work, "d", (sp.hi - sp.lo, T, R))
        if w_mean is not None:  # the tree mean's terms and the copy in one pass over the slice
            kernels.weighted_slice_sum(table, t_rows, f, c, w_mean, out, sp.lo if sp is not None else 0,
                                       no_copy if d is None else d)
        else:
            np.copyto(d, np.swapaxes(table[rows, f, c, sp.lo:sp.hi], 0, 1))
        if sp is None:
            continue
        for a, g_lo, g_hi, k_of_row, u_of_row in sp.blocks:
            # the block's rows over its magnitudes (the other magnitudes' weights are zeros: no terms)
            term = np.matmul(a, d[g_lo:g_hi].reshape(g_hi - g_lo, T * R),
                             out=_scratch(work, "term", (a.shape[0], T * R)))  # BLAS
            kernels.add_rows_scattered(acc.reshape(acc.shape[0], acc.shape[1], T * R), term, k_of_row, u_of_row,
                                       _NO_ROWS if fresh is None else fresh)


#: ``fresh`` of :func:`hra.integration.kernels.add_rows_scattered` when every row is accumulated.
_NO_ROWS = np.zeros((0, 0), dtype=bool)


@dataclass(frozen=True)
class _SlicePlan:
    """The BLAS products of one (table, f, c) slice of a forecast's zone (:func:`_forecast_gemm`): the
    magnitudes ``lo:hi`` of the slice that any product reads, and per block of :func:`_gemm_blocks`
    ``(a, g_lo, g_hi, k_of_row, u_of_row)``: the weights (rows, g_hi - g_lo) over the block's magnitudes
    (offsets from ``lo``), and each row's basis function and combination (where its product is added)."""

    lo: int
    hi: int
    blocks: tuple[tuple[np.ndarray, int, int, np.ndarray, np.ndarray], ...]


class _ForecastPlans:
    """What :func:`_forecast_gemm` works out from the forecast's magnitude basis and the tree alone -
    which slices a group's combinations read (``todo``) and each slice's weights and BLAS blocks
    (:class:`_SlicePlan`) - kept in a task's work buffers (:func:`_scratch`'s ``work``) from site to
    site and zone to zone: the same for every zone, and worked out once instead of ~300,000 times on
    the whole field (interpreter work that held the lock the other worker waits for). Keyed by the
    values they come from (the combinations' columns and branches), for the basis and median map they
    were made with (held, so that their identity cannot pass to other arrays)."""

    def __init__(self, ed: "EngineDeath", basis: np.ndarray):
        self.basis, self.median_map = basis, ed.median_map
        self.ed = ed
        self._todo: dict[tuple, dict] = {}
        self._slices: dict[tuple, _SlicePlan | None] = {}

    @classmethod
    def of(cls, work: dict, ed: "EngineDeath", basis: np.ndarray) -> "_ForecastPlans":
        plans = work.get("forecast_plans")
        if not (isinstance(plans, cls) and plans.basis is basis and plans.median_map is ed.median_map):
            plans = work["forecast_plans"] = cls(ed, basis)
        plans.ed = ed  # (the zone's: key and _virtual depend on the tree only)
        return plans

    def todo(self, combos: list, death: dict) -> dict[tuple, tuple[int, np.ndarray, np.ndarray]]:
        """(table key, f, c) -> (median j, columns us, (combination, source branch) pairs) of the slices
        the products read, for the tables in ``death``."""
        sig = (tuple(death), tuple((f, c, us.tobytes(), ge_s.tobytes()) for f, c, us, ge_s in combos))
        got = self._todo.get(sig)
        if got is None:
            ed, mm = self.ed, self.median_map
            n_j = 1 if mm is None else mm.mix.shape[2]
            got = {}
            for f, c, us, ge_s in combos:
                for j in range(n_j):
                    key = ed.key(int(ge_s[0, 0])) if mm is None else ed.key(int(ge_s[0, 0]), j)
                    if key in death:
                        got[(key, f, c)] = (j, us, ge_s)
            if len(self._todo) >= 4096:
                self._todo.clear()
            self._todo[sig] = got
        return got

    def slice(self, key, f: int, c: int, j: int, us: np.ndarray, ge_s: np.ndarray) -> _SlicePlan | None:
        """The slice's products (``None``: no combination's w(M) picks median j anywhere)."""
        sig = (key, f, c, j, us.tobytes(), ge_s.tobytes())
        if sig not in self._slices:
            if len(self._slices) >= 65536:
                self._slices.clear()
            self._slices[sig] = self._plan(j, us, ge_s)
        return self._slices[sig]

    def _plan(self, j: int, us: np.ndarray, ge_s: np.ndarray) -> _SlicePlan | None:
        ed, mm = self.ed, self.median_map
        ges, ss = ge_s[:, 0], ge_s[:, 1]
        w = self.basis[ss]  # (n, K, m)
        if mm is not None:
            vs = np.array([ed._virtual(int(ge)) for ge in ges])
            w = w * mm.mix[vs, :, j][:, None, :]
        # only the combinations whose w(M) picks median j somewhere, over the magnitudes where
        # any of them does (realisation mode: each picks one median per magnitude)
        cols = np.flatnonzero(w.any(axis=(1, 2)))
        if cols.size == 0:
            return None
        wc = w[cols]
        nz = np.flatnonzero(wc.any(axis=(0, 1)))
        lo, hi = int(nz[0]), int(nz[-1]) + 1
        # only the (combination, basis function) rows with a weight: a source branch's basis may
        # have fewer than K functions (zero rows), whose products are zeros that would be added
        # to acc (which holds +0 there; the other rows' sums: see _gemm_blocks). Rows
        # combination-major, so that a combination's rows of the product are consecutive
        live = wc[:, :, lo:hi].any(axis=2)  # (n, K)
        if live.sum() < 2:  # (a single row would take BLAS's vector path: other sums)
            live[:] = True
        wm = wc[:, :, lo:hi]
        blocks = []
        for g_cols, g_lo, g_hi in _gemm_blocks(wm, live):
            a = np.ascontiguousarray(wm[g_cols, :, g_lo:g_hi][live[g_cols]])
            ks = [np.flatnonzero(live[n]) for n in g_cols]  # each row's basis function and combination
            k_of_row = np.concatenate(ks).astype(np.int64)
            u_of_row = np.concatenate([np.full(k.size, us[cols[n]], dtype=np.int64) for n, k in zip(g_cols, ks)])
            blocks.append((a, g_lo, g_hi, k_of_row, u_of_row))
        return _SlicePlan(lo, hi, tuple(blocks))


#: Cost of one more BLAS call of :func:`_gemm_blocks`, in (row x magnitude) products of a V7 forecast
#: zone's 5,040 (t, r) columns (~30 us of call and Python overhead at ~35 GFLOP/s).
_BLOCK_COST = 100


def _gemm_blocks(wm: np.ndarray, live: np.ndarray) -> list[tuple[np.ndarray, int, int]]:
    """The BLAS products of one table slice in at most two blocks of combinations, each over the
    magnitude range where its weights are non-zero: ``[(combination indices n, lo, hi), ...]``, the
    split (combinations ordered by their last magnitude) where it saves more than a call costs
    (:data:`_BLOCK_COST`). ``wm``: (n, K, m) weights; ``live``: (n, K) rows taken. The products only
    drop zero terms (a source branch's basis ends at its Mmax), and each block has at least 2 rows
    (a single row would take BLAS's vector path): the same sums up to the BLAS kernel's order of
    summation - to the bit on the V7 field zone with OpenBLAS's large-matrix kernels (q compared with
    ``np.array_equal``), within 1e-15 of the row's largest value in general (tests/test_forecast.py)."""
    n, _, m = wm.shape
    nz = wm.any(axis=1)  # (n, m)
    lo_n = np.argmax(nz, axis=1)
    hi_n = m - np.argmax(nz[:, ::-1], axis=1)
    rows_n = live.sum(axis=1)
    everything = [(np.arange(n), 0, m)]
    if n < 2:
        return everything
    order = np.argsort(hi_n, kind="stable")
    best, cut = int(rows_n.sum()) * m, None
    for i in range(1, n):
        a, b = order[:i], order[i:]
        ra, rb = int(rows_n[a].sum()), int(rows_n[b].sum())
        if ra < 2 or rb < 2:
            continue
        cost = (ra * int(hi_n[a].max() - lo_n[a].min()) + rb * int(hi_n[b].max() - lo_n[b].min()) + _BLOCK_COST)
        if cost < best:
            best, cut = cost, i
    if cut is None:
        return everything
    return [(np.sort(g), int(lo_n[g].min()), int(hi_n[g].max())) for g in (order[:cut], order[cut:])]


def zone_tables(gmm: GroundMotionModel, fragility: FragilityModel, zone: int, wierdes: list[bool],
                mag: MagnitudeBins, r_nodes: np.ndarray, t_sels: list[np.ndarray], needed: np.ndarray,
                model_sizes: tuple[int, ...], model_weights: tuple[np.ndarray, ...],
                median_map: "MedianMap | None", exact_mean: bool,
                store: "StoreHandle | None" = None, out: list[np.ndarray] | None = None,
                pool: BufferPool | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Tables of the sites (zone, wierde) of one zone, each for its typologies ``t_sels[i]``.

    The physical death tables are computed (or read) one group of :func:`physical_groups` at a
    time (:func:`death_table_groups`), consumed and dropped: the task never holds all of them.

    Parameters
    ----------
    needed
        Flattened model-combination indices (C order over ``model_sizes`` = (b-value, Mmax,
        engine GMM combination, fragility, consequence)) to tabulate.
    model_weights
        Branch weights of those five factors (GMM: per engine combination).
    store
        Table store and model key (:mod:`hra.integration.tablestore`): the physical death tables
        are read from it where present and written where missing; ``None``: computed.
    exact_mean
        True: the tree mean is the weighted mean of the per-combination tables over *all*
        combinations (so that, with an enumerated tree, the reported mean is exactly the weighted
        mean of the realisations). False (large trees): the tree-mean integrand is integrated
        over magnitude once, equal to the former to the magnitude-discretisation accuracy. A
        forecast's magnitude integration is linear, so it always takes the second way, which
        then equals the first exactly (and tabulates only the source branches in ``needed``);
        there both the per-combination tables and the tree mean are matrix products (BLAS) of the
        physical tables with per-magnitude weights (w(M) mixture x magnitude basis, :func:`_forecast_gemm`).
    out
        Per site, a C-contiguous float64 or float32 (t, r, len(needed)) array that receives q (e.g. its
        rows of the caller's table: no copy of q afterwards), or ``None``; ``None``: q arrays of its own.
    pool
        Work buffers to take (and give back) instead of fresh ones (:class:`BufferPool`).

    Returns
    -------
    One ``(q, qbar)`` per site: q (t, r, len(needed)) and qbar (t, r); with a strike model r is
    (distance node, azimuth row[, basis]) flattened (:func:`hra.integration.condtables.n_azimuth_rows`).
    """
    t_all = np.unique(np.concatenate([np.asarray(t, dtype=np.int64) for t in t_sels]))
    n_sites = len(wierdes)
    ed = EngineDeath(gmm, median_map, [{} for _ in wierdes], mag.nodes.size)
    nb, nx, G, F, C = model_sizes
    ib, ix, ig, jf, jc = np.unravel_index(needed, model_sizes)
    wb, wx, wg, wf, wc = model_weights
    # a strike model's azimuth nodes and a forecast's basis index ride on the distance axis
    n_k = getattr(mag, "n_basis", 1)
    RA = r_nodes.size * condtables.n_azimuth(gmm)
    R = RA * n_k
    per_branch = bool(getattr(mag, "per_branch", False))  # forecast: the "b" axis is the source branch
    if per_branch:  # linear integration: the tree mean integrated once IS the mean of all tables
        exact_mean = False
    # a forecast's q and qbar stored by an earlier run with the same basis, models and selection
    # (hra.integration.forecaststore): read instead of computed where every entry of the zone is there
    ftab = store.forecast if per_branch and store is not None else None
    names = [[fragility.typologies[int(t)] for t in ts] for ts in t_sels] if ftab is not None else None
    if ftab is not None:
        got = _read_forecast_tables(ftab, zone, wierdes, names, (R, needed.size), mag.basis.shape[0], out,
                                    drop=pool is not None and pool.stream_reads)
        if got is not None:
            return got
    if store is not None and not store.physical:
        store = None  # ([compute] table_store_kinds without "physical": computed, not stored)
    mean_sig = "bxtfcr,x,f,c->trb" if per_branch else "bxtfcr,b,x,f,c->tr"
    mean_w = (wx, wf, wc) if per_branch else (wb, wx, wf, wc)
    median_node = median_map.node if median_map is not None else "gmm_median"
    groups = physical_groups(gmm, median_node)
    group_of_key = {k: n for n, keys in enumerate(groups) for k in keys}
    group_of_ge = np.array([group_of_key[ed.key(ge, 0)] for ge in range(ed.n)], dtype=np.int64)
    rows = [np.searchsorted(t_all, np.asarray(t, dtype=np.int64)) for t in t_sels]
    views = [_slice_of(r, t_all.size) for r in rows]
    # q per site built combination-major, (u, t, r): each combination's table written contiguously
    # (a strided scatter into (t, r, u) costs more), transposed once at the end; a forecast's
    # basis-major, (k, u, t, r'), put into q's layout by one compiled pass at the end
    work: dict[str, np.ndarray] = {} if pool is None else pool.take()  # reused temporaries (_scratch)
    if per_branch:
        # (not zeroed: each (k, u) row is set by its first product, the rows none writes are zeroed at the end)
        qu = [_scratch(work, f"qu{i}", (n_k, needed.size, r.size, RA)) for i, r in enumerate(rows)]
        fresh = [np.ones((n_k, needed.size), dtype=bool) for _ in rows]
    else:
        qu = [np.empty((needed.size, r.size, R)) for r in rows]
    # per group: the selected (engine combination, f, c) slices and their columns of q
    combos = np.stack([ig, jf, jc], axis=1)
    uniq, inv = np.unique(combos, axis=0, return_inverse=True)
    inv = inv.reshape(-1)
    if per_branch:
        qbar_acc = [np.zeros((r.size, mag.nodes.size, RA)) for r in rows]  # sum_P,f,c w D: (t, m, r)
        coef = ed.mean_coef()
        wfc = wf[:, None] * wc[None, :]
        gemm: dict[int, list] = {}
        by_key: dict[tuple, list[int]] = {}
        for u in range(needed.size):  # combinations sharing a physical table (all but the median), f, c
            by_key.setdefault((ed.key(int(ig[u]), 0), int(jf[u]), int(jc[u])), []).append(u)
        for (pkey, f, c), us in sorted(by_key.items()):
            us = np.asarray(us, dtype=np.int64)
            gemm.setdefault(group_of_key[pkey], []).append((f, c, us, np.stack([ig[us], ib[us]], axis=1)))
        # the tables one median branch at a time (3 of GMM V7's 72), each group's combinations summed
        # over its medians in qu, projected and put into q's layout at the end
    elif exact_mean:
        qbar_acc = [np.zeros((r.size, R)) for r in rows]
    else:
        qbar_acc = [None] * n_sites  # the tree-mean death table (t, f, c, m, r), integrated at the end
    # large trees whose median map (if any) is one-hot: each combination's tables integrated over
    # magnitude in one compiled pass that reads the physical median tables where the map picks them
    picked = not per_branch and not exact_mean and n_k == 1 and ed.one_hot
    if picked:
        bin_consts = mag.bin_constants()
    # (no enumerate(): its cached result tuple would keep the previous group alive while the next one
    # is computed)
    for keys, death in death_table_groups(gmm, fragility, zone, wierdes, mag, r_nodes, t_all, median_node, store,
                                          split_median=per_branch, recycle=True, work=work,
                                          drop=pool is not None and pool.stream_reads):
        gi = group_of_key[keys[0]]
        ed.death_of = death
        for i in range(n_sites):
            if per_branch:
                # the products and the tree mean, sum_P,f,c (w_f w_c coef_P(m)) D_P, in one pass over the tables
                _forecast_gemm(qu[i], ed, death[i], views[i], mag.basis, gemm.get(gi, []), (rows[i].size, RA), work,
                               mean=(rows[i], wfc, coef, qbar_acc[i]), fresh=fresh[i])
            elif exact_mean:  # every engine combination is integrated anyway: whole tables per combination
                for ge in np.flatnonzero(group_of_ge == gi):
                    e = mag.integrate(np.moveaxis(ed.death(i, int(ge), (rows[i],)), 3, -1))  # (b, x, t, f, c, r)
                    for u in np.flatnonzero(ig == ge):
                        qu[i][u] = e[ib[u], ix[u], :, jf[u], jc[u], :]
                    qbar_acc[i] += wg[ge] * np.einsum(mean_sig, e, *mean_w)
            elif picked:  # large trees, one-hot w(M) map: (f, c) slices read per magnitude node
                for (base, f, c), members in _by_physical_slice(ed, uniq, group_of_ge, gi).items():
                    # the K median tables of this slice and their logs, once for its combinations
                    # (K, t, m, r) in float64 (read tables are float32: the same values)
                    tabs = np.stack([ed.death_of[i][key][rows[i], f, c] for key in base]).astype(np.float64, copy=False)
                    with np.errstate(divide="ignore"):
                        ln_tabs = np.log(tabs)
                    for n, ge in members:
                        e = np.empty(mag.prob.shape[:2] + (rows[i].size, RA))
                        kernels.magnitude_integrate_picked(tabs, ln_tabs, ed.pick(ge), *bin_consts, mag.prob, e)
                        for u in np.flatnonzero(inv == n):
                            qu[i][u] = e[ib[u], ix[u]]
                    del tabs, ln_tabs
                tm = ed.tree_mean(i)
                if isinstance(tm, np.ndarray):
                    qbar_acc[i] = tm if qbar_acc[i] is None else np.add(qbar_acc[i], tm, out=qbar_acc[i])
            else:  # large trees: only the (f, c) slices of the selected combinations
                for n, (ge, f, c) in enumerate(uniq):
                    if group_of_ge[ge] != gi:
                        continue
                    us = np.flatnonzero(inv == n)
                    g = np.moveaxis(ed.death(i, int(ge), (rows[i], int(f), int(c))), 1, -1)
                    e = mag.integrate(g)  # (b, x, t, r)
                    for u in us:
                        qu[i][u] = e[ib[u], ix[u]]
                tm = ed.tree_mean(i)
                if isinstance(tm, np.ndarray):
                    qbar_acc[i] = tm if qbar_acc[i] is None else np.add(qbar_acc[i], tm, out=qbar_acc[i])
        ed.death_of = None
        del death, keys  # before the next group is computed: one group of tables at a time
    results = []
    for i in range(n_sites):
        if per_branch:  # qbar[t, (r, k), s] = sum_m acc[t, m, r] phi_{s, k}(m)
            qu[i][fresh[i]] = 0.0  # (k, u) rows without a product (a branch's basis shorter than K, ...)
            S = mag.basis.shape[0]
            b = np.ascontiguousarray(np.transpose(mag.basis, (2, 1, 0))).reshape(mag.nodes.size, n_k * S)
            qbar = np.matmul(np.swapaxes(qbar_acc[i], 1, 2), b).reshape(rows[i].size, R, S)
        elif exact_mean:
            qbar = qbar_acc[i]
        else:
            e = mag.integrate(np.moveaxis(qbar_acc[i][rows[i]], 3, -1))  # (b, x, t, f, c, r)
            qbar = np.einsum(mean_sig, e, *mean_w)
        # a wide strike law: the azimuth nodes onto a few harmonics (condtables.azimuth_projection;
        # a forecast's q in the same pass as its layout, kernels.forecast_q_layout)
        if per_branch:  # (k, u, t, (r, a)) -> (t, (r, a', k), u), a wide strike law's azimuth nodes a onto its harmonics a'
            proj = condtables.azimuth_projection(gmm)
            n_a = RA // r_nodes.size
            qi = np.empty((rows[i].size, R, needed.size)) if out is None or out[i] is None else out[i]
            kernels.forecast_q_layout(qu[i].reshape(n_k, needed.size, rows[i].size, r_nodes.size, n_a),
                                      np.zeros((0, 0)) if proj is None else np.ascontiguousarray(proj, dtype=np.float64),
                                      qi.reshape(rows[i].size, r_nodes.size, -1, n_k, needed.size))
        else:
            qi = condtables.project_azimuth(gmm, qu[i], 2, r_nodes.size, n_k)
            qi = np.ascontiguousarray(np.moveaxis(qi, 0, -1))  # (t, r, u)
            if out is not None and out[i] is not None:
                np.copyto(out[i], qi)
                qi = out[i]
        qu[i] = None
        qbar = condtables.project_azimuth(gmm, qbar, 1, r_nodes.size, n_k)
        results.append((qi, qbar))
        if ftab is not None and ftab.writable:  # the entries missing from the forecast tables, for the next run
            for j, nm in enumerate(names[i]):
                if not ftab.present(zone, wierdes[i], nm):
                    ftab.write(zone, wierdes[i], nm, qi[j], qbar[j])
    del qu
    if pool is not None:
        pool.give(work)
    return results


def _read_forecast_tables(ftab: "ForecastTables", zone: int, wierdes: list[bool], names: list[list[str]],
                          shape: tuple[int, int], n_branches: int, out: list[np.ndarray] | None,
                          drop: bool = False) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """:func:`zone_tables`' result from the forecast tables (:mod:`hra.integration.forecaststore`): per
    site q (t, r, u) (into ``out[i]`` where given) and qbar (t, r, s); ``None`` where an entry of the zone is
    missing or unreadable (the zone is then computed, and its missing entries written)."""
    if not all(ftab.present(zone, w, nm) for w, nms in zip(wierdes, names) for nm in nms):
        return None
    dtype = np.dtype(ftab.dtype)
    results = []
    for i, nms in enumerate(names):
        dest = None if out is None else out[i]
        q = dest if dest is not None and dest.dtype == dtype else np.empty((len(nms),) + shape, dtype=dtype)
        qbar = np.empty((len(nms), shape[0], n_branches))
        for j, nm in enumerate(nms):
            if not ftab.read(zone, wierdes[i], nm, q[j], qbar[j], drop=drop):
                return None
        results.append((q, qbar))
    return results


@dataclass(frozen=True)
class _ComputedNodes:
    """The magnitude nodes at which :func:`physical_death_tables` computes (a subset of the run's)."""

    nodes: np.ndarray


def physical_death_tables(gmm: GroundMotionModel, fragility: FragilityModel, zone: int, wierdes: list[bool],
                          mag: MagnitudeBins, r_nodes: np.ndarray, t_sel: np.ndarray,
                          keys: list[tuple[int, ...]] | None = None,
                          dtype=np.float64, rounded: bool = True,
                          expand: bool = True) -> list[dict[tuple[int, ...], np.ndarray]]:
    """Death tables (t, f, c, m, r) per event, before magnitude integration, of every physical GMM
    branch combination (key: branch index per node of ``gmm.tree``), one dict per wierde flag of
    the sites of ``zone``, for the typologies ``t_sel``; ``keys``: only these branches (and those
    computed together with them: their site-to-site siblings; e.g. a group of :func:`physical_groups`).
    The values are rounded to the physical tables' precision (:func:`hra.integration.kernels.round_table`:
    16 significant bits, float32 values; <= 1.5e-5 relative), in which the table store keeps them
    (``rounded=False``: not rounded, float64 ``dtype`` only: parts of tables whose sum the caller rounds,
    :mod:`hra.review.explain`); ``dtype``: the arrays' dtype where the grid path
    (:mod:`hra.integration.condtables`) computes them (float64, or float32: the same values in half
    the bytes), float64 otherwise. With ``mag.table_stride`` 2 (``[source] magnitude_table_stride``) the
    tables are computed at every other magnitude node and the others interpolated in ln P
    (:mod:`hra.integration.magnitudes`); ``expand=False``: the computed nodes' tables only."""
    plan = magnitudes.gmm_plan(gmm, mag.nodes, getattr(mag, "table_stride", 1))
    if plan is not None:
        sub = physical_death_tables(gmm, fragility, zone, wierdes, _ComputedNodes(mag.nodes[plan.computed]), r_nodes,
                                    t_sel, keys=keys, dtype=dtype, rounded=rounded)
        if not expand:
            return sub
        return [{k: magnitudes.expand(d, plan, rounded) for k, d in site.items()} for site in sub]
    zone_arg = None if gmm.zones is None else zone
    phys = gmm.tree.enumerate()
    pnames = [n.name for n in gmm.tree.nodes]
    death: list[dict[tuple[int, ...], np.ndarray]] = [{} for _ in wierdes]
    s2s_pos = pnames.index("gmm_s2s") if "gmm_s2s" in pnames else None
    wanted = None if keys is None else set(keys)
    for g in range(phys.n):
        key = tuple(int(v) for v in phys.index[g])
        if wanted is not None and key not in wanted:
            continue
        if key in death[0]:
            prog.step()  # a block done with an earlier one (site-to-site branches grouped)
            continue
        branch = {nm: key[j] for j, nm in enumerate(pnames)}
        outs = _phys_death_sites(gmm, fragility, zone_arg, wierdes, branch, mag, r_nodes, t_sel, dtype, rounded)
        prog.step()  # progress of the table stage per GMM branch block (hra.core.progress.step_progress)
        for i, out in enumerate(outs):
            if isinstance(out, dict):
                for j, d in out.items():
                    k2 = list(key)
                    k2[s2s_pos] = j
                    if wanted is None or tuple(k2) in wanted:
                        death[i][tuple(k2)] = d
            else:
                death[i][key] = out
    # one canonical order of the branches (sums over them, e.g. the tree mean, then never depend on
    # whether the tables were computed or read from the table store)
    return [dict(sorted(d.items())) for d in death]


class EngineDeath:
    """Death tables of the engine's GMM combinations ``ge`` (:func:`hra.chain.engine_gmm_tree`: the
    median node replaced by the virtual branches of a :class:`hra.chain.MedianMap`) from the
    physical tables of :func:`physical_death_tables` (``death[i]``: site i)."""

    def __init__(self, gmm: GroundMotionModel, median_map: "MedianMap | None",
                 death: list[dict[tuple[int, ...], np.ndarray]], n_mag: int):
        self.median_map = median_map
        self.pnames = [n.name for n in gmm.tree.nodes]
        self.tree = engine_gmm_tree(gmm, median_map)
        self.eng = self.tree.enumerate()
        self.enames = [n.name for n in self.tree.nodes]
        self.weights = self.eng.weight
        self.n_mag = n_mag
        self.death_of = death  # per site: physical key -> (t, f, c, m, r)
        self._mean_coef: dict[tuple[int, ...], np.ndarray] | None = None
        # per physical node: the engine node it is read from (None: the median node of a median map,
        # whose branch k is given); the engine index as lists (key() is called per combination)
        self._src = [None if (median_map is not None and nm == median_map.node) else self.enames.index(nm)
                     for nm in self.pnames]
        self._rows = self.eng.index.tolist()
        self._keys: dict[int | None, list[tuple[int, ...]]] = {}  # k -> physical key per combination (key())
        self._vpos = (self.enames.index(median_map.node)
                      if median_map is not None and median_map.node in self.enames else None)

    @property
    def n(self) -> int:
        return self.eng.n

    def key(self, ge: int, k: int | None = None) -> tuple[int, ...]:
        """Physical key of engine combination ge (median branch k where the median map applies)."""
        if k is None and None in self._src:  # (no median branch given where there is one: as it was)
            return tuple(k if j is None else int(self._rows[ge][j]) for j in self._src)
        keys = self._keys.get(k)
        if keys is None:  # every combination's key for this k at once (a forecast's zone asks ~10,000 times)
            idx = np.empty((self.eng.n, len(self._src)), dtype=np.int64)
            for p, j in enumerate(self._src):
                idx[:, p] = k if j is None else self.eng.index[:, j]
            keys = self._keys[k] = list(map(tuple, idx.tolist()))
        return keys[ge]

    def _virtual(self, ge: int) -> int:
        return 0 if self._vpos is None else int(self._rows[ge][self._vpos])

    @property
    def one_hot(self) -> bool:
        """True without a median map or with a one-hot one (each virtual branch takes one physical
        median at each magnitude node: :meth:`pick`)."""
        mm = self.median_map
        return mm is None or bool(np.all((mm.mix == 0.0) | (mm.mix == 1.0)))

    def medians(self, ge: int) -> tuple[tuple[int, ...], ...]:
        """Physical keys of engine combination ge per median branch k (one key without a median map)."""
        mm = self.median_map
        if mm is None:
            return (self.key(ge),)
        return tuple(self.key(ge, k) for k in range(mm.mix.shape[2]))

    def pick(self, ge: int) -> np.ndarray:
        """(m,) index into :meth:`medians` of the table that combination ge takes at each magnitude
        node (a one-hot map, :attr:`one_hot`)."""
        mm = self.median_map
        if mm is None:
            return np.zeros(self.n_mag, dtype=np.int64)
        return np.ascontiguousarray(np.argmax(mm.mix[self._virtual(ge)], axis=1).astype(np.int64))

    def death(self, i: int, ge: int, part=(slice(None),)) -> np.ndarray:
        """Death table of engine combination ge at site i, restricted to ``death[part]``."""
        tabs = self.death_of[i]
        mm = self.median_map
        if mm is None:
            return tabs[self.key(ge)][part]
        v = self._virtual(ge)
        acc = None
        for k in range(mm.mix.shape[2]):
            wk = mm.mix[v, :, k]  # (m,)
            if not np.any(wk):
                continue
            term = tabs[self.key(ge, k)][part] * wk[:, None]
            acc = term if acc is None else acc + term
        return acc

    def mean_coef(self) -> dict[tuple[int, ...], np.ndarray]:
        """Physical key -> per-magnitude weight (m,) of its table in the tree mean (:meth:`tree_mean`)."""
        if self._mean_coef is not None:
            return self._mean_coef
        mm = self.median_map
        # the terms w[ge] mix[v(ge), :, k] in the order (ge, k), summed per key in that order (ufunc.at
        # adds its rows one after the other: the sums of a loop over ge, to the bit)
        n_k = 1 if mm is None else mm.mix.shape[2]
        if mm is None:
            terms = self.weights[:, None] * np.ones(self.n_mag)[None, :]
        else:
            vs = np.array([self._virtual(ge) for ge in range(self.n)], dtype=np.int64)
            terms = (self.weights[:, None, None] * mm.mix[vs]).transpose(0, 2, 1).reshape(-1, self.n_mag)
        ids: dict[tuple[int, ...], int] = {}
        rows = np.array([ids.setdefault(self.key(ge) if mm is None else self.key(ge, k), len(ids))
                         for ge in range(self.n) for k in range(n_k)], dtype=np.int64)
        acc = np.zeros((len(ids), self.n_mag))
        np.add.at(acc, rows, terms)
        self._mean_coef = {key: acc[i] for key, i in ids.items()}
        return self._mean_coef

    def tree_mean(self, i: int) -> np.ndarray:
        """sum_ge w[ge] death(ge): linear, so a sum over the physical tables with per-magnitude
        weights (the w(M) mixture for the median node): one term per physical combination (of
        those in ``death_of[i]``: a group of them gives its part of the sum)."""
        coef = self.mean_coef()
        acc = 0
        for key, d in self.death_of[i].items():
            if key in coef:
                first = isinstance(acc, int)
                if first:
                    acc = np.empty(d.shape)
                kernels.scaled_table_add(d, np.ascontiguousarray(coef[key], dtype=np.float64), acc, first)
        return acc


def table_rows(prep: "Prepared", zones=None) -> tuple[np.ndarray, list[np.ndarray]]:
    """(site, typology) pairs present among the buildings' typology candidates: the row of each pair
    in the tables (-1: none) and the typologies per site. ``zones``: only the sites of these zones get
    rows (the tables of one group of zones, :func:`zone_groups`)."""
    T = len(prep.fragility.typologies)
    present = np.zeros((len(prep.sites), T), dtype=bool)
    ti = prep.buildings.typology_index
    si = np.broadcast_to(prep.site_index[:, None], ti.shape)
    ok = ti >= 0
    present[si[ok], ti[ok]] = True
    if zones is not None:
        keep = np.isin(np.array([int(z) for z, _ in prep.sites], dtype=np.int64), np.asarray(list(zones), dtype=np.int64))
        present[~keep] = False
    row_of = -np.ones((len(prep.sites), T), dtype=np.int64)
    row_of[present] = np.arange(int(present.sum()))
    return row_of, [np.flatnonzero(present[s]) for s in range(len(prep.sites))]


def model_factors(prep: "Prepared") -> tuple[tuple[int, ...], tuple[np.ndarray, ...]]:
    """Sizes and weights of (b-value, Mmax, engine GMM combination, fragility, consequence); for a
    forecast (source branch, 1, ...): its magnitude basis differs per source branch."""
    eng = engine_gmm_tree(prep.gmm, prep.median_map)
    if prep.forecast is not None:
        first = (len(prep.rates.branches), 1)
        first_w = (np.asarray(prep.rates.branch_weights, dtype=float), np.ones(1))
    else:
        first = (prep.b_node.size, prep.m_max_node.size)
        first_w = (prep.b_node.weight_array, prep.m_max_node.weight_array)
    sizes = first + (eng.n_combinations, prep.fragility.fragility_node.size, prep.fragility.consequence_node.size)
    weights = first_w + (eng.enumerate().weight, prep.fragility.fragility_node.weight_array,
                         prep.fragility.consequence_node.weight_array)
    return sizes, weights


def table_combinations(prep: "Prepared", sel: "Selection") -> np.ndarray:
    """Flattened indices over :func:`model_factors` of the selected combinations' tables."""
    if prep.forecast is None:
        return sel.combo_model
    n_model = int(np.prod([n.size for n in prep.model_tree.nodes])) if prep.model_tree.nodes else 1
    return sel.combo_s * n_model + sel.combo_model


def build_tables(prep: "Prepared", sel: "Selection", executor: "Executor | None" = None,
                 store: "StoreHandle | None" = None, zones=None, pool: BufferPool | None = None,
                 q_slot: int = 0, started: "threading.Event | None" = None) -> Tables:
    """Tables of every site for the selected model combinations (in parallel over zones; the
    sites of one zone, with and without wierde, share one task and its ground-motion work).
    ``store``: read and fill the table store (:func:`hra.integration.tablestore.handle_for`).
    ``zones``: only the sites of these zones (one group of :func:`zone_groups`; the other sites have
    no rows in ``row_of``). ``pool``: the zone tasks' work buffers and the memory of q
    (:meth:`BufferPool.q_array`), shared with the calls before and after this one (:func:`compute`'s
    zone groups: the memory of the previous group's tables, which must no longer be in use, instead
    of fresh pages); ``None``: a pool of this call's own. ``q_slot``: which of the pool's q buffers
    (:meth:`BufferPool.q_array`). ``started``: set just before the zone tasks are handed to the executor."""
    row_of, t_lists = table_rows(prep, zones)
    sizes, weights = model_factors(prep)
    exact_mean = bool(sel.realisations.exact) or prep.model_tree.n_combinations <= 20_000
    groups: dict[int, list[int]] = {}
    zone_set = None if zones is None else {int(z) for z in zones}
    for i, (zone, _) in enumerate(prep.sites):
        if zone_set is None or int(zone) in zone_set:
            groups.setdefault(int(zone), []).append(i)
    if condtables.supports(prep.gmm) and not _all_stored(prep, store, groups, t_lists):
        # the R_rup quadrature given (M, R_hyp) is the same for every zone: computed once here, it
        # travels with the model (its cache) to every zone task instead of being redone per zone
        # (not when every table comes from the store: then no task needs it)
        condtables.warm_rrup_cache(prep.gmm, magnitudes.computed_nodes(prep.gmm, prep.magnitude),
                                   prep.distance_nodes_km)
    # largest groups first: a better balance over workers
    order = sorted(groups, key=lambda z: -sum(len(t_lists[i]) for i in groups[z]))
    R = prep.distance_nodes_km.size * condtables.n_azimuth_rows(prep.gmm) * getattr(prep.magnitude, "n_basis", 1)
    n_rows = int((row_of >= 0).sum())
    # tasks in this process write q straight into their rows (a site's rows are consecutive:
    # table_rows numbers them site by site); tasks on worker processes return theirs
    in_process = executor is None or executor.mode in ("synchronous", "threads")
    if pool is None:
        pool = BufferPool()
    # every row of q is written below (each row belongs to one site of these zones)
    q = pool.q_array((n_rows, R, sel.combo_model.size), q_slot, q_dtype(prep.cfg))
    if not in_process:
        pool = None  # the zone tasks' work buffers, reused zone after zone (in this process only)

    def rows_of(i: int) -> np.ndarray:
        return row_of[i, t_lists[i]]

    def q_rows(i: int) -> np.ndarray | None:
        rows = rows_of(i)
        r0 = int(rows[0]) if rows.size else 0
        return q[r0:r0 + rows.size] if np.array_equal(rows, np.arange(r0, r0 + rows.size)) else None

    dests = {z: [q_rows(i) for i in groups[z]] if in_process else None for z in order}
    args = [(prep.gmm, prep.fragility, z, [bool(prep.sites[i][1]) for i in groups[z]], prep.magnitude,
             prep.distance_nodes_km, [t_lists[i] for i in groups[z]], table_combinations(prep, sel), sizes, weights,
             prep.median_map, exact_mean, store, dests[z], pool)
            for z in order]
    if started is not None:
        started.set()
    if executor is not None and executor.mode in ("synchronous", "threads"):
        # the tasks run in this process: progress per zone and GMM branch block, with an ETA
        n_blocks = prep.gmm.tree.n_combinations
        with prog.step_progress(len(args) * n_blocks, f"tables ({len(args)} zones x {n_blocks} GMM branch blocks)",
                                executor.progress):
            parts = executor.map(_zone_table_task, [(a, n_blocks) for a in args], progress=False)
    elif executor is not None:  # worker processes: progress per finished zone
        parts = executor.map(_zone_table_task, [(a, 0) for a in args], label="tables (zones)")
    else:
        parts = [_zone_table_task((a, 0)) for a in args]
    qbar = np.empty((n_rows, R, sizes[0]) if prep.forecast is not None else (n_rows, R))
    for z, zone_parts in zip(order, parts):
        for n, (i, (qs, qb)) in enumerate(zip(groups[z], zone_parts)):
            rows = rows_of(i)
            if dests[z] is None or qs is not dests[z][n]:  # (else written in place)
                q[rows] = qs
            qbar[rows] = qb
    return Tables(q, qbar, row_of)


def _all_stored(prep: "Prepared", store: "StoreHandle | None", groups: dict[int, list[int]],
                t_lists: list[np.ndarray]) -> bool:
    """Whether the table store holds an entry for every (site, typology) of these zones (a zone: all its
    forecast tables, or all its physical tables)."""
    if store is None:
        return False
    return all(_zone_stored(prep, store, idx, t_lists, int(z)) for z, idx in groups.items())


def _zone_stored(prep: "Prepared", store: "StoreHandle", sites: list[int], t_lists: list[np.ndarray], zone: int,
                 kind: str | None = None) -> bool:
    """Whether every (site, typology) entry of one zone's ``sites`` is stored: as forecast tables, as physical
    tables, or (``kind`` None) either."""
    names = prep.fragility.typologies
    items = [(bool(prep.sites[i][1]), names[int(t)]) for i in sites for t in t_lists[i]]
    if kind in (None, "forecast") and store.forecast is not None and all(
            store.forecast.present(zone, w, nm) for w, nm in items):
        return True
    return kind in (None, "physical") and store.physical and all(
        store.store.entry_path(store.key, zone, w, nm).is_dir() for w, nm in items)


def _sites_of_zones(prep: "Prepared") -> dict[int, list[int]]:
    """Zone -> the indices of its sites (``prep.sites``)."""
    of: dict[int, list[int]] = {}
    for i, (zone, _) in enumerate(prep.sites):
        of.setdefault(int(zone), []).append(i)
    return of


def _zone_typologies(prep: "Prepared") -> dict[int, set[int]]:
    """Per zone, the typology indices its zone task tabulates (and stores) for each of its sites."""
    _, t_lists = table_rows(prep)
    of_zone: dict[int, set[int]] = {}
    for i, (zone, _) in enumerate(prep.sites):
        of_zone.setdefault(int(zone), set()).update(int(t) for t in t_lists[i])
    return of_zone


def store_bytes_needed(prep: "Prepared", handle: "StoreHandle") -> tuple[int, float]:
    """The (site, typology) physical entries of this run missing from the table store, and an estimate of their
    bytes on disk (:func:`hra.integration.tablestore.entry_bytes` each); zones whose forecast tables are all
    stored are not counted (their physical tables are not needed)."""
    if not handle.physical:
        return 0, 0.0
    of_zone = _zone_typologies(prep)
    _, t_lists = table_rows(prep)
    sites = _sites_of_zones(prep)
    done = {z for z, idx in sites.items() if _zone_stored(prep, handle, idx, t_lists, z, "forecast")}
    missing = tablestore.count_missing(handle.store, handle.key, prep.fragility.typologies,
                                       ((zone, wierde, t) for zone, wierde in prep.sites if int(zone) not in done
                                        for t in of_zone[int(zone)]))
    return missing, missing * entry_bytes(prep.gmm, prep.fragility, prep.magnitude, prep.distance_nodes_km)


def forecast_entry_bytes(prep: "Prepared", sel: "Selection") -> float:
    """Estimated bytes on disk of one (site, typology) entry of the forecast tables (q's row in its dtype and
    qbar's in float64, times :data:`hra.integration.forecaststore.FORECAST_COMPRESSION`)."""
    return table_bytes_per_row(prep, sel) * FORECAST_COMPRESSION


def forecast_bytes_needed(prep: "Prepared", sel: "Selection", handle: "StoreHandle") -> tuple[int, float]:
    """The run's (site, typology) entries missing from its forecast tables and an estimate of their bytes on disk."""
    ft = handle.forecast
    if ft is None:
        return 0, 0.0
    _, t_lists = table_rows(prep)
    names = prep.fragility.typologies
    missing = sum(1 for i, (zone, wierde) in enumerate(prep.sites) for t in t_lists[i]
                  if not ft.present(int(zone), bool(wierde), names[int(t)]))
    return missing, missing * forecast_entry_bytes(prep, sel)


def store_handle(prep: "Prepared", sel: "Selection", store: "tablestore.TableStore | None") -> "StoreHandle | None":
    """The run's handle on the table store (``None``: no store, or ``[compute] table_store_kinds = []``): the
    physical tables' model key, and the forecast tables' key where the run has a forecast and the kinds hold
    "forecast" (:mod:`hra.integration.forecaststore`: the basis, models and selected combinations)."""
    kinds = set(prep.cfg.compute.table_store_kinds)
    if store is None or not kinds:
        return None
    handle = tablestore.handle_for(prep, store, register="physical" in kinds)
    ft = None
    if "forecast" in kinds and prep.forecast is not None and getattr(prep.magnitude, "per_branch", False):
        sizes, weights = model_factors(prep)
        desc = forecaststore.description(handle.key, prep.magnitude.basis, prep.median_map,
                                         table_combinations(prep, sel), sizes, weights, q_dtype(prep.cfg),
                                         condtables.azimuth_projection(prep.gmm), prep.files)
        ft = ForecastTables(store.root, forecaststore.forecast_key(desc), q_dtype(prep.cfg).name)
        ft.register(desc)
    return replace(handle, physical="physical" in kinds, forecast=ft)


def _group_store_bytes(prep: "Prepared", groups: list[list[int]], forecast_zones: set[int] = frozenset(),
                       forecast_entry: float = 0.0) -> list[float]:
    """Estimated stored bytes of each group of zones: its sites' entries (every typology of a zone at
    each of its sites, as a zone task stores them) times :func:`hra.integration.tablestore.entry_bytes`, or for
    ``forecast_zones`` (read from the forecast tables) their rows' typologies times ``forecast_entry``."""
    of_zone = _zone_typologies(prep)
    _, t_lists = table_rows(prep)
    n_sites: dict[int, int] = {}
    rows: dict[int, int] = {}
    for i, (zone, _) in enumerate(prep.sites):
        n_sites[int(zone)] = n_sites.get(int(zone), 0) + 1
        rows[int(zone)] = rows.get(int(zone), 0) + len(t_lists[i])
    per_entry = entry_bytes(prep.gmm, prep.fragility, prep.magnitude, prep.distance_nodes_km)
    return [sum(rows.get(int(z), 0) * forecast_entry if int(z) in forecast_zones
                else per_entry * n_sites.get(int(z), 0) * len(of_zone.get(int(z), ())) for z in g) for g in groups]


def _store_space(prep: "Prepared", sel: "Selection", handle: "StoreHandle | None") -> "StoreHandle | None":
    """The run's store handle, read-only where its new entries would not fit on the store's disk (with a
    warning that names the fix): the physical tables first (every later source model reuses them), then the
    forecast tables; a large addition is announced before the table stage."""
    if handle is None:
        return None
    n, need = store_bytes_needed(prep, handle)
    n_f, need_f = forecast_bytes_needed(prep, sel, handle)
    if n + n_f == 0:
        return handle
    free = handle.store.free_bytes()
    if free is not None and need + need_f > free - STORE_RESERVE_BYTES:
        fit = need <= free - STORE_RESERVE_BYTES
        log.warning("table store %s: this run's new entries need ~%.1f GB (physical tables %d entries, ~%.1f GB; "
                    "forecast tables %d entries, ~%.1f GB), %.1f GB are free on that disk: %s are not stored (the "
                    "stored ones are read); fix: free space, point [compute] table_store at a larger disk, leave a "
                    "kind out of [compute] table_store_kinds, or set table_store = false", handle.store.root,
                    (need + need_f) / 1e9, n, need / 1e9, n_f, need_f / 1e9, free / 1e9,
                    "the forecast tables" if fit and n_f else "they")
        ft = handle.forecast if handle.forecast is None else replace(handle.forecast, writable=False)
        store = handle.store if fit else replace(handle.store, writable=False)
        handle = replace(handle, store=store, forecast=ft)
        need, need_f = (need, 0.0) if fit else (0.0, 0.0)
    if need + need_f > STORE_WARN_BYTES:
        log.info("table store %s: this run adds ~%.1f GB of tables (%d entries)%s", handle.store.root,
                 (need + need_f) / 1e9, n + n_f, "" if free is None else f"; {free / 1e9:.0f} GB free there")
    return handle


def q_dtype(cfg: Config) -> np.dtype:
    """The dtype of the per-combination tables q (``[run] table_precision``); the tree mean qbar is float64."""
    return np.dtype(cfg.run.table_precision)


def table_bytes_per_row(prep: "Prepared", sel: "Selection") -> int:
    """Bytes of one (site, typology) row of the tables :func:`build_tables` returns (q and qbar)."""
    R = prep.distance_nodes_km.size * condtables.n_azimuth_rows(prep.gmm) * getattr(prep.magnitude, "n_basis", 1)
    nb = len(prep.rates.branches) if prep.forecast is not None else 1
    return R * (q_dtype(prep.cfg).itemsize * int(sel.combo_model.size) + 8 * nb)


def zone_groups(prep: "Prepared", sel: "Selection", budget_bytes: float, n_workers: int = 1) -> list[list[int]]:
    """The zones of the run in groups whose tables (:func:`table_bytes_per_row` x their rows) fit
    ``budget_bytes`` together (``[compute] table_memory_gb``), so that :func:`compute` never holds the
    tables of every zone at once: one group when everything fits (the usual case: the demo region,
    or a few zones), else groups of an equal number of zones, largest zones first: as many as fit,
    but at least ``n_workers`` and a multiple of it (a zone's tables are one task and the zones of a
    group are tabulated in parallel: fewer would leave workers idle), so a group may exceed the
    budget up to ``n_workers`` x the largest zone. Deterministic for given inputs.

    Examples
    --------
    >>> import hra
    >>> from hra.integration import engine
    >>> prep = engine.prepare(hra.demo_config(n_buildings=200))
    >>> sel = engine.select_realisations(prep)
    >>> [len(g) for g in engine.zone_groups(prep, sel, 2e9)]  # the demo region's 8 zones fit
    [8]
    >>> [len(g) for g in engine.zone_groups(prep, sel, 1.0)]  # one zone at a time
    [1, 1, 1, 1, 1, 1, 1, 1]
    >>> [len(g) for g in engine.zone_groups(prep, sel, 1.0, n_workers=2)]  # one zone per worker
    [2, 2, 2, 2]
    """
    _, t_lists = table_rows(prep)
    per_row = table_bytes_per_row(prep, sel)
    size: dict[int, int] = {}
    for i, (zone, _) in enumerate(prep.sites):
        size[int(zone)] = size.get(int(zone), 0) + len(t_lists[i]) * per_row
    zones = sorted(size, key=lambda z: (-size[z], z))
    if sum(size.values()) <= budget_bytes:
        return [sorted(zones)]
    per_group = max(1, int(budget_bytes // max(size[zones[0]], 1)))
    # at least one zone per worker (a zone's tables are one task: fewer zones than workers would
    # leave workers idle in the table stage, its dearest part), and a multiple of the workers
    per_group = max(per_group - per_group % n_workers, n_workers) if n_workers > 1 else per_group
    return [zones[i:i + per_group] for i in range(0, len(zones), per_group)]


#: CPU seconds spent in this process's zone table tasks and building chunks (each task's thread CPU time,
#: summed over the threads); :func:`compute` reports its run's share in its timings (in-process executors only)
_STAGE_CPU = {"tables": 0.0, "buildings": 0.0}
_STAGE_CPU_LOCK = threading.Lock()


def _stage_cpu(stage: str, seconds: float) -> None:
    with _STAGE_CPU_LOCK:
        _STAGE_CPU[stage] += seconds


def _zone_table_task(task):
    """The tables of one zone; ``n_blocks``: its progress steps (those not reported, e.g. tables read
    from the store, are reported at its end)."""
    args, n_blocks = task
    c = time.thread_time()
    try:
        with prog.task_steps(n_blocks):
            return zone_tables(*args)
    finally:
        _stage_cpu("tables", time.thread_time() - c)
        if multiprocessing.parent_process() is not None:
            # a worker process: its entries' "used" marks now (the engine's process sets its own at the
            # run's end, tablestore.UsedMarks)
            tablestore.MARKS.flush()


def _chunk_task(chunk: dict, static: "ChunkStatic") -> dict:
    """:func:`run_chunk`, its thread CPU time counted (:data:`_STAGE_CPU`)."""
    c = time.thread_time()
    try:
        return run_chunk(chunk, static)
    finally:
        _stage_cpu("buildings", time.thread_time() - c)


# ------------------------------------------------------------------------------------------
# realisations
# ------------------------------------------------------------------------------------------


@dataclass
class Selection:
    """Distinct (source branch, model combination) pairs and how realisations map onto them."""

    combo_s: np.ndarray  # (u,)
    combo_model: np.ndarray  # (u,) flattened model-combination index
    combo_w: np.ndarray  # (u,)
    s_start: np.ndarray  # (S + 1,)
    real_combo: np.ndarray  # (N,) for Monte Carlo, empty for enumeration
    realisations: Realisations


def select_realisations(prep: Prepared) -> Selection:
    tree = prep.tree
    real = tree.realisations(prep.cfg.run.realisations, prep.cfg.run.seed)
    sizes = [n.size for n in prep.model_tree.nodes]
    n_sn = len(prep.source_nodes)  # source-branch nodes first; flattened in C order (the rate axis s)
    s = np.ravel_multi_index(tuple(real.index[:, :n_sn].T), [n.size for n in prep.source_nodes])
    model = (np.ravel_multi_index(tuple(real.index[:, n_sn:].T), sizes) if sizes
             else np.zeros(real.n, np.int64))
    pairs = np.stack([s, model], axis=1)
    uniq, inverse = np.unique(pairs, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    w = np.bincount(inverse, weights=real.weight, minlength=len(uniq))
    S = prep.rates.branches.__len__()
    s_start = np.searchsorted(uniq[:, 0], np.arange(S + 1), side="left").astype(np.int64)
    return Selection(
        combo_s=uniq[:, 0].astype(np.int64), combo_model=uniq[:, 1].astype(np.int64), combo_w=w / w.sum(),
        s_start=s_start, real_combo=(inverse.astype(np.int64) if not real.exact else np.zeros(0, np.int64)),
        realisations=real,
    )


# ------------------------------------------------------------------------------------------
# execution
# ------------------------------------------------------------------------------------------


@dataclass
class ChunkStatic:
    """Data shared by all chunks (sent once to every worker)."""

    cx: np.ndarray
    cy: np.ndarray
    rates: np.ndarray
    rates_basis: np.ndarray
    year_factor: np.ndarray
    n_years: int
    n_src: int
    depth_km: float
    ln_r0: float
    dln: float
    n_r: int
    n_k: int
    r_max_km: float
    cell_size_m: float
    sub_radius_m: float
    n_sub: int
    n_a: int
    strike_deg: float
    az_harmonic: bool
    dist_cubic: bool
    q: np.ndarray
    combo_s: np.ndarray
    s_start: np.ndarray
    combo_w: np.ndarray
    qbar: np.ndarray
    s_weights: np.ndarray
    mixture: bool
    monte_carlo: bool
    real_combo: np.ndarray
    seed_key: np.uint64
    probs: np.ndarray
    n_keep: int


def _readonly(a: np.ndarray) -> np.ndarray:
    """The kernels are compiled for read-only inputs (what dask delivers in worker processes), so every
    caller passes them read-only and one compiled signature serves all (see warm_kernels)."""
    if isinstance(a, np.ndarray) and a.flags.writeable:
        a = a.view()
        a.setflags(write=False)
    return a


def run_chunk(chunk: dict, static: ChunkStatic) -> dict:
    """LPR statistics of one chunk of buildings (pure function of its inputs)."""
    chunk = {k: _readonly(v) for k, v in chunk.items()}
    static = ChunkStatic(**{k: _readonly(v) for k, v in static.__dict__.items()})
    n = chunk["x"].size
    Y = static.n_years
    out_mean = np.zeros((n, Y))
    out_q = np.zeros((n, Y, static.probs.size))
    out_real = np.zeros((n, Y, static.n_keep))
    out_real_w = np.zeros((n, static.n_keep))
    kernels.chunk_lpr(
        chunk["x"], chunk["y"], chunk["zt_idx"], chunk["typ_idx"], chunk["typ_prob"], chunk["keys"],
        static.cx, static.cy, static.rates, static.rates_basis, static.year_factor, Y, static.n_src, static.depth_km, static.ln_r0, static.dln,
        static.n_r, static.n_k, static.r_max_km, static.cell_size_m, static.sub_radius_m, static.n_sub,
        static.n_a, static.strike_deg, static.az_harmonic, static.q, static.combo_s, static.s_start, static.combo_w, static.qbar, static.s_weights,
        static.mixture, static.monte_carlo, static.real_combo, static.seed_key, static.probs,
        out_mean, out_q, out_real, out_real_w, static.dist_cubic,
    )
    return {"mean": out_mean, "q": out_q, "real": out_real, "real_w": out_real_w}


def strike_mean_deg(gmm) -> float:
    """Mean strike of the model's strike model [degree] (0 without one: then unused)."""
    strike = getattr(gmm, "rupture_strike", None)
    return 0.0 if strike is None or condtables.azimuth_nodes(gmm) is None else float(strike[0])


def static_rates(prep: Prepared) -> tuple[np.ndarray, np.ndarray, int, float, np.ndarray]:
    """The building pass's rates: ``(rates, rates_basis, n_k, cell_size_m, year_factor)`` of
    :class:`ChunkStatic`: the years as time components where fewer than the years carry them
    (:func:`hra.inputs.forecast.factor_years`; else ``year_factor`` is (0, 0, 0)), then the cells'
    rates in factored form where that pays (:func:`hra.inputs.forecast.compress_rates`; a forecast's
    magnitude-basis coefficients or a rate grid's rates)."""
    n_y, n_s = prep.years.size, len(prep.rates.branches)
    if prep.forecast is not None:  # rates per magnitude-basis function: (c, k * Y * S)
        fc = prep.forecast
        rates, n_k, cell_size_m = fc.coef.reshape(fc.coef.shape[0], -1), fc.n_basis, fc.data.cell_size_m
    else:
        rates, n_k, cell_size_m = prep.rates.rate.reshape(prep.rates.rate.shape[0], -1), 1, prep.cfg.source.cell_size_m
    years = forecast.factor_years(rates, n_y, n_s, forecast.RATES_FACTOR_RTOL)
    year_factor = np.zeros((0, 0, 0))
    if years is not None:
        rates, year_factor = years
    factor = forecast.compress_rates(rates) if prep.forecast is not None else None
    if factor is not None:
        return factor[0], factor[1], n_k, cell_size_m, year_factor
    return rates, np.zeros((0, 0)), n_k, cell_size_m, year_factor


def make_static(prep: Prepared, tables: Tables, sel: Selection, rates=None) -> ChunkStatic:
    """What every chunk shares; ``rates``: :func:`static_rates` (computed here if not given; a run
    computing its zones in groups computes it once)."""
    src = prep.cfg.source
    r = prep.distance_nodes_km
    q = np.ascontiguousarray(tables.q)
    n_keep = 0
    if prep.cfg.run.keep_realisations:
        if not sel.realisations.exact:
            n_keep = sel.realisations.n
        elif prep.cfg.run.typology_uncertainty == "epistemic":
            n_keep = sel.combo_s.size * prep.buildings.typology_index.shape[1]
        else:
            n_keep = sel.combo_s.size
    rates, basis, n_k, cell_size_m, year_factor = static_rates(prep) if rates is None else rates
    return ChunkStatic(
        cx=prep.rates.x, cy=prep.rates.y, rates=np.ascontiguousarray(rates), rates_basis=np.ascontiguousarray(basis),
        year_factor=np.ascontiguousarray(year_factor),
        n_years=prep.years.size, n_src=len(prep.rates.branches), depth_km=src.depth_km,
        ln_r0=float(math.log(r[0])), dln=float(math.log(r[1] / r[0])), n_r=r.size, n_k=n_k,
        r_max_km=src.max_distance_km, cell_size_m=cell_size_m, sub_radius_m=src.subcell_radius_km * 1000.0, n_sub=src.subcell_divisions,
        n_a=condtables.n_azimuth_rows(prep.gmm), strike_deg=strike_mean_deg(prep.gmm),
        az_harmonic=condtables.azimuth_harmonics(prep.gmm) > 0, dist_cubic=src.distance_interpolation == "cubic",
        q=q, combo_s=sel.combo_s, s_start=sel.s_start, combo_w=sel.combo_w,
        qbar=np.ascontiguousarray(tables.qbar if tables.qbar.ndim == 3 else tables.qbar[..., None]),
        s_weights=np.asarray(prep.rates.branch_weights, dtype=float),
        mixture=prep.cfg.run.typology_uncertainty == "mixture", monte_carlo=not sel.realisations.exact,
        real_combo=sel.real_combo, seed_key=seed_key(prep.cfg.run.seed, PURPOSE_TYPOLOGY),
        probs=np.asarray(prep.cfg.run.quantiles, dtype=float), n_keep=n_keep,
    )


def chunk_index(prep: Prepared, chunk_size: int, zones=None, n_workers: int = 1) -> list[np.ndarray]:
    """Building indices of each chunk: consecutive buildings in chunks of ``chunk_size``. ``zones``:
    only the buildings of these zones (one group of :func:`zone_groups`, a few thousand buildings),
    in at least 4 chunks per worker where ``chunk_size`` would give fewer (so the workers stay busy
    to the group's end)."""
    if zones is None:
        idx = np.arange(prep.buildings.n)
    else:
        site_zone = np.array([int(z) for z, _ in prep.sites], dtype=np.int64)
        idx = np.flatnonzero(np.isin(site_zone[prep.site_index], np.asarray(list(zones), dtype=np.int64)))
        if n_workers > 1:
            chunk_size = max(1, min(chunk_size, -(-idx.size // (4 * n_workers))))
    return [idx[i:i + chunk_size] for i in range(0, idx.size, chunk_size)]


def make_chunks(prep: Prepared, chunk_size: int, row_of: np.ndarray,
                index: list[np.ndarray] | None = None) -> list[dict]:
    """The chunks' inputs; ``index``: the building indices of each chunk (:func:`chunk_index`; default
    consecutive chunks of ``chunk_size`` over all buildings)."""
    b = prep.buildings
    ti = b.typology_index
    zt = np.where(ti >= 0, row_of[prep.site_index[:, None], np.maximum(ti, 0)], 0).astype(np.int64)
    chunks = []
    for sl in (index if index is not None else chunk_index(prep, chunk_size)):
        chunks.append(dict(
            x=np.ascontiguousarray(b.x[sl]), y=np.ascontiguousarray(b.y[sl]), zt_idx=np.ascontiguousarray(zt[sl]),
            typ_idx=np.ascontiguousarray(ti[sl]), typ_prob=np.ascontiguousarray(b.typology_prob[sl]),
            keys=np.ascontiguousarray(b.keys[sl]),
        ))
    return chunks


def warm_kernels(dtype=np.float64) -> None:
    """Compile (or load from the cache) the kernels in this process before workers start, with
    the read-only input signature that :func:`run_chunk` always uses (tables q of ``dtype``)."""
    z = np.zeros
    chunk = dict(x=z(1), y=z(1), zt_idx=z((1, 1), np.int64), typ_idx=-np.ones((1, 1), np.int64), typ_prob=z((1, 1)),
                 keys=z(1, np.uint64))
    static = ChunkStatic(
        cx=z(1), cy=z(1), rates=z((1, 1)), rates_basis=z((0, 0)), year_factor=z((0, 0, 0)), n_years=1, n_src=1, depth_km=3.0, ln_r0=math.log(3.0), dln=0.1, n_r=4, n_k=1,
        r_max_km=70.0, cell_size_m=1000.0, sub_radius_m=0.0, n_sub=1, n_a=1, strike_deg=0.0, az_harmonic=False, dist_cubic=False, q=z((1, 4, 1), dtype), combo_s=z(1, np.int64),
        s_start=np.array([0, 1]), combo_w=np.ones(1), qbar=z((1, 4, 1)), s_weights=np.ones(1), mixture=False,
        monte_carlo=False, real_combo=z(0, np.int64), seed_key=np.uint64(1), probs=np.array([0.5]), n_keep=0,
    )
    run_chunk(chunk, static)


@dataclass
class RunResult:
    prep: Prepared
    selection: Selection
    mean: np.ndarray
    quantiles: np.ndarray
    realisations: np.ndarray | None
    realisation_weight: np.ndarray | None
    timings: dict[str, float]
    chunks_reused: int = 0  # building chunks read from the checkpoint (a resumed run)


#: A run that adds more than this to the table store says so (and how to clean it). [bytes]
STORE_WARN_BYTES = 2_000_000_000


@single_thread_blas()
def compute(cfg: Config, progress: bool | None = None, prep: Prepared | None = None,
            checkpoint: Path | None = None) -> RunResult:
    """Run the engine and return the raw arrays (see :func:`run` for the Dataset).

    ``checkpoint``: folder of the building-chunk checkpoints (:mod:`hra.integration.checkpoint`):
    chunks saved there by an earlier run of the same key are read instead of computed ("resuming:
    37 of 50 building chunks done"), each chunk computed now is saved as it finishes. ``None``: none.
    """
    import sys

    t0 = time.perf_counter()
    if progress is None:
        progress = cfg.compute.progress if cfg.compute.progress is not None else sys.stderr.isatty()
    prep = prep or prepare(cfg)
    log.info("prepared %d buildings, %d source cells, %d sites, logic tree of %d combinations",
             prep.buildings.n, prep.rates.x.size, len(prep.sites), prep.tree.n_combinations)
    warm_kernels(q_dtype(cfg))
    # (the kernels' compilation, ~70 s the first time from a new install, else their loading from numba's
    # cache, counts as preparation: not as the building pass)
    t_prep = time.perf_counter()
    with Executor.from_config(cfg.compute, progress) as ex:
        sel = select_realisations(prep)
        handle = _store_space(prep, sel, store_handle(prep, sel, tablestore.store_for_config(cfg)))
        groups = zone_groups(prep, sel, cfg.compute.table_memory_gb * 1e9, ex.workers)
        if len(groups) > 1 and ex.mode == "threads":
            # a group's tables are computed while the group before runs its buildings (_run_groups): two
            # groups' tables are held at once, half the budget each
            groups = zone_groups(prep, sel, cfg.compute.table_memory_gb * 1e9 / 2, ex.workers)
        if len(groups) > 1:
            log.info("tables of %d zones in %d groups of <= %d zones ([compute] table_memory_gb = %g): each group's "
                     "buildings are computed right after its tables%s", sum(map(len, groups)), len(groups),
                     max(map(len, groups)), cfg.compute.table_memory_gb,
                     ", the next group's tables beside them" if ex.mode == "threads" else "")
        index = ([chunk_index(prep, cfg.compute.chunk_buildings)] if len(groups) == 1
                 else [chunk_index(prep, cfg.compute.chunk_buildings, g, ex.workers) for g in groups])
        cpu0 = dict(_STAGE_CPU)
        # the store read ahead of the run by as many bytes as the tables may take (ReadAhead)
        parts, reused, t_tables = _run_groups(ex, prep, sel, handle, groups, index, checkpoint,
                                              cfg.compute.table_memory_gb * 1e9)
        # the stages' CPU seconds (their tasks' thread time), where the tasks ran in this process
        stage_cpu = ({f"{k}_cpu_s": _STAGE_CPU[k] - cpu0[k] for k in _STAGE_CPU}
                     if ex.mode in ("threads", "synchronous") else {})
        if handle is not None:
            # the entries read are marked used now that the run's reads are done (tablestore.UsedMarks)
            handle.store.flush_marks()
            st = handle.store.stats
            fst = handle.forecast.stats if handle.forecast is not None else tablestore.StoreStats()
            counts = "" if ex.parallel else f": {st.read} entries read, {st.written} written"
            if handle.forecast is not None and not ex.parallel:
                counts += f"; forecast tables (key {handle.forecast.key[:12]}): {fst.read} read, {fst.written} written"
            log.info("table store %s (key %s)%s", handle.store.root, handle.key[:12], counts)
            added = st.bytes_written + fst.bytes_written
            if added > STORE_WARN_BYTES:  # the store is on by default, in the user's cache
                log.warning("table store %s: this run added %.1f GB of tables (they make the next run with the "
                            "same models fast); see their size with `hra tables info`, remove old ones with "
                            "`hra tables clear --older-than DAYS`, or set [compute] table_store = false",
                            handle.store.root, added / 1e9)
            stale = handle.store.stale_keys() if st.written else []
            if stale:  # e.g. the first run after an upgrade: the tables of the former version are dead weight
                log.warning("table store %s also holds the tables of %d model key(s) written by another table format "
                            "or hra version, which this version never reads: `hra tables info` shows them, "
                            "`hra tables clear --stale` removes them", handle.store.root, len(stale))
    t_run = time.perf_counter()
    flat = [ix for group in index for ix in group]
    n, Y = prep.buildings.n, prep.years.size
    first = parts[0]
    mean = np.empty((n, Y))
    quant = np.empty((n,) + first["q"].shape[1:])
    keep = first["real"].shape[-1] > 0
    real = np.empty((n,) + first["real"].shape[1:]) if keep else None
    real_w = np.empty((n,) + first["real_w"].shape[1:]) if keep else None
    for ix, p in zip(flat, parts):  # chunks in building order for one group; scattered back for several
        mean[ix] = p["mean"]
        quant[ix] = p["q"]
        if keep:
            real[ix] = p["real"]
            real_w[ix] = p["real_w"]
    timings = dict(prepare_s=t_prep - t0, tables_s=t_tables, buildings_s=t_run - t_prep - t_tables, total_s=t_run - t0,
                   **stage_cpu)
    return RunResult(prep, sel, mean, quant, real, real_w, timings, chunks_reused=reused)


def _group_ids(index: list[list[np.ndarray]], g: int) -> range:
    """Positions of group ``g``'s chunks in the flat list of every group's chunks (``index``)."""
    start = sum(len(ix) for ix in index[:g])
    return range(start, start + len(index[g]))


#: Longest wait of a zone group's tables for the table store's read-ahead to ask for the group's files
#: (:meth:`hra.integration.tablestore.ReadAhead.wait_asked`) [s]: a group of the field case takes ~3 s at
#: the disk's stream rate and ~40 s at the slowest rate measured; a read-ahead stuck longer is a hint
#: that failed, and the group's tables read their files themselves.
READ_AHEAD_WAIT_S = 120.0


def _run_groups(ex: Executor, prep: Prepared, sel: Selection, handle: "StoreHandle | None", groups: list[list[int]],
                index: list[list[np.ndarray]], folder: Path | None,
                read_ahead_bytes: float = 0.0) -> tuple[list[dict], int, float]:
    """Results of every chunk (``index``: the chunks' building indices per group of zones), in order,
    how many came from the checkpoint ``folder``, and the seconds the run waited for tables. Per group:
    its tables (:func:`build_tables` of its zones; skipped when every chunk of the group is in the
    checkpoint), then its chunks, then the tables are freed; on threads the next group's tables are
    computed beside the chunks (their zone tasks queued first). One group: the tables of every zone.
    ``read_ahead_bytes``: stored bytes the table store may be read ahead of the run (at least one group;
    :class:`hra.integration.tablestore.ReadAhead`)."""
    flat = [ix for group in index for ix in group]
    parts: list = [None] * len(flat)
    ck = None
    if folder is not None:
        from hra.core.fileio import kill_point
        from hra.integration.checkpoint import Checkpoint, run_key

        layout = hashlib.sha256(b"".join(np.asarray(ix, dtype=np.int64).tobytes() + b"|" for ix in flat)).hexdigest()
        ck = Checkpoint(folder, run_key(prep.cfg, prep.files, prep.buildings.n, prep.cfg.compute.chunk_buildings,
                                        layout=layout if len(groups) > 1 else ""))
        for i in ck.done(len(flat)):
            parts[i] = ck.load(i)
    reused = sum(p is not None for p in parts)
    if reused:
        log.info("resuming: %d of %d building chunks done (checkpoint %s)", reused, len(flat), folder)
    todos = [[i for i in _group_ids(index, g) if parts[i] is None] for g in range(len(groups))]
    ahead = None
    if handle is not None and len(groups) > 1 and any(todos):
        # the stored tables read from disk ahead of the run, in one stream: the first groups' while the
        # rates are prepared, the next ones' while the previous groups' tables and buildings are computed,
        # as many groups ahead as hold the table memory budget (at least one; ReadAhead) - a field's store
        # does not stay in the page cache: a warm table stage would otherwise wait for the disk
        read = [z if t else [] for z, t in zip(groups, todos)]
        # a zone whose forecast tables are all stored reads those, else its physical tables (zone_tables)
        _, t_lists = table_rows(prep)
        sites = _sites_of_zones(prep)
        in_forecast = {z for z in sites if _zone_stored(prep, handle, sites[z], t_lists, z, "forecast")}

        def folders(zones: list[int]) -> list[str]:
            fz = [z for z in zones if int(z) in in_forecast]
            pz = [z for z in zones if int(z) not in in_forecast] if handle.physical else []
            return handle.store.site_folders(handle.key, pz) + ([] if not fz else handle.forecast.site_folders(fz))

        ahead = tablestore.ReadAhead(handle.store, handle.key, read, budget_bytes=read_ahead_bytes, folders=folders,
                                     sizes=_group_store_bytes(prep, read, in_forecast, forecast_entry_bytes(prep, sel)))
        ahead.start()
    t_tables = 0.0
    rates = static_rates(prep) if reused < len(flat) else None
    # one pool for every group: the tables' work buffers and q's memory, the next group's once the
    # previous group's buildings are done (fresh memory's page faults cost more than the stage's own
    # work on a busy machine)
    pool = BufferPool()
    # several groups: the tables do not fit the memory budget, and a store that large is read once per
    # run: its chunks are dropped from the page cache once decoded (a page cache filled with them cost
    # ~1 s of system time per zone on a 23 GB machine; each group's are read ahead, above)
    pool.stream_reads = len(groups) > 1
    run = [g for g in range(len(groups)) if todos[g]]
    # threads: a group's tables are computed while the group before runs its buildings (in the other q
    # buffer: the tables of two groups are then held at once). Their tasks share the thread pool, the
    # zone tasks queued first and the building chunks after them: a worker done with its zone takes
    # chunks instead of waiting for the group's slowest zone, and no worker waits for the last chunk
    overlap = ex.mode == "threads" and len(run) > 1

    def tables_of(g: int, started: threading.Event | None = None) -> Tables:
        if ahead is not None:
            ahead.reached(g)
            # the group's files asked for before its zones read them: a zone that read files the read-ahead has
            # not asked for yet would compete with its stream (ReadAhead.wait_asked); on threads the next
            # group waits in the helper thread while the workers run the buildings. A hint only: after
            # READ_AHEAD_WAIT_S the group reads its files itself
            if not ahead.wait_asked(g, READ_AHEAD_WAIT_S) and not ahead.ended:
                log.info("table store read-ahead: group %d of %d not asked for after %.0f s; its tables read their "
                         "files themselves", g + 1, len(groups), READ_AHEAD_WAIT_S)
        return build_tables(prep, sel, ex, handle, zones=None if len(groups) == 1 else groups[g], pool=pool,
                            q_slot=run.index(g) % 2 if overlap else 0, started=started)

    helper = None
    if overlap:
        from concurrent.futures import ThreadPoolExecutor

        helper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hra-next-tables")
    finished = False
    try:
        pending = None
        for n, g in enumerate(run):
            todo = todos[g]
            t = time.perf_counter()
            tables = pending.result() if pending is not None else tables_of(g)
            t_tables += time.perf_counter() - t  # the wait for the tables (not hidden behind buildings)
            pending = None
            if helper is not None and n + 1 < len(run):
                started = threading.Event()
                pending = helper.submit(tables_of, run[n + 1], started)
                # the next group's zone tasks queued before this group's chunks (speed only); a failure
                # before they are queued is raised here, not waited for
                while not started.wait(0.05):
                    if pending.done():
                        pending.result()
                        break
            static = make_static(prep, tables, sel, rates)
            chunks = make_chunks(prep, prep.cfg.compute.chunk_buildings, tables.row_of, [flat[i] for i in todo])
            del tables

            def save(j: int, result: dict, todo=todo) -> None:
                ck.save(todo[j], result)
                kill_point(f"chunk-{ck.saved}")

            label = "buildings" if len(groups) == 1 else f"buildings (zone group {g + 1}/{len(groups)})"
            for i, res in zip(todo, ex.map(_chunk_task, chunks, label=label, shared={"static": static},
                                           on_result=save if ck is not None else None)):
                parts[i] = res
            del static, chunks
        finished = True
    finally:
        if helper is not None:
            # (an error or an interrupt: not waiting for a next group's tables, whose queued zone tasks
            # the executor cancels on its way out)
            helper.shutdown(wait=finished, cancel_futures=True)
        if ahead is not None:
            ahead.close()
    if ck is not None:
        log.info("building chunks: %d computed, %d read from the checkpoint", len(flat) - reused, reused)
    return parts, reused, t_tables
