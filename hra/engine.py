"""Orchestration: from a validated config to per-building LPR statistics.

Steps (design.md §2):

1. :func:`prepare` reads the source rate grid, exposure and fragility, builds the ground-motion
   model, assigns site-response zones and assembles the logic tree
   ``[source] + [b_value, m_max] + GMM nodes + [fragility, consequence]``.
2. :func:`build_tables` computes, per site and typology, the expected probability of death per
   event at each distance node, integrated over magnitude (exact GR bins), ground-motion
   residuals and site response (Gaussian-mixture quadrature) and fragility, for every model
   combination ``u`` (all nodes except the source-rate branch): ``Q[site*T + t, r, u]``. Also
   the tree-mean table ``Qbar`` (weights of all combinations), which gives the exact mean LPR.
3. :func:`select_realisations` enumerates the tree or draws Monte-Carlo realisations (from
   ``(seed, node)`` streams) and reduces them to the distinct (source branch, model combination)
   pairs with weights.
4. chunks of buildings go through :func:`hra.kernels.chunk_lpr` (in-process, or on a dask
   cluster); each chunk returns its mean, quantiles and optional realisations, which depend
   only on the chunk's own buildings and the shared tables, so results do not depend on the
   chunk size or the number of workers.
5. :func:`hra.outputs.build_dataset` assembles the Dataset contract (design.md §4).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from fragility.lognormal import FragilityModel, read_fragility_csv
from hra import kernels
from hra.config import Config, GroundMotionDemo, GroundMotionParametric
from hra.gmm.base import GroundMotionModel
from hra.logictree import PURPOSE_TYPOLOGY, LogicTree, Node, Realisations
from hra.source import MagnitudeBins, RateGrid, magnitude_bins, magnitude_nodes, read_rate_grid

log = logging.getLogger("hra")


class EngineError(ValueError):
    """An input combination the engine cannot run; the message says what to fix."""


# ------------------------------------------------------------------------------------------
# preparation
# ------------------------------------------------------------------------------------------


@dataclass
class Buildings:
    """Per-building arrays the kernels need (see hra.exposure.ExposureArrays)."""

    ids: np.ndarray
    x: np.ndarray
    y: np.ndarray
    zone: np.ndarray
    wierde: np.ndarray
    municipality: np.ndarray
    typology_index: np.ndarray
    typology_prob: np.ndarray
    keys: np.ndarray

    @property
    def n(self) -> int:
        return int(self.x.size)


@dataclass
class Prepared:
    cfg: Config
    rates: RateGrid
    magnitude: MagnitudeBins
    b_node: Node
    m_max_node: Node
    gmm: GroundMotionModel
    fragility: FragilityModel
    buildings: Buildings
    sites: list[tuple[int, bool]]  # (zone, wierde) per site index
    site_index: np.ndarray  # (b,) site of each building
    distance_nodes_km: np.ndarray
    files: dict[str, str] = field(default_factory=dict)  # name -> sha256

    @property
    def model_tree(self) -> LogicTree:
        """All nodes except the source-rate branch, in table order."""
        return LogicTree((self.b_node, self.m_max_node)) + self.gmm.tree + self.fragility.tree

    @property
    def tree(self) -> LogicTree:
        return LogicTree((self.rates.node,)) + self.model_tree

    @property
    def years(self) -> np.ndarray:
        return self.rates.years


def sha256_file(path: str | Path) -> str:
    import hashlib

    h = hashlib.sha256()
    p = Path(path)
    if p.is_dir():
        for f in sorted(p.rglob("*")):
            if f.is_file():
                h.update(str(f.relative_to(p)).encode())
                h.update(f.read_bytes())
        return h.hexdigest()
    with open(p, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def make_gmm(cfg: Config) -> GroundMotionModel:
    """The ground-motion model named in ``[ground_motion] model``."""
    gm = cfg.ground_motion
    if isinstance(gm, GroundMotionParametric):
        from hra.gmm.parametric import ParametricGMM

        return ParametricGMM(gm.c0, gm.c1, gm.c2, gm.c3, gm.tau, gm.phi, gm.truncation_sigma, gm.quadrature_points, gm.imt)
    if isinstance(gm, GroundMotionDemo):
        from hra.gmm.demo import DemoGMM

        return DemoGMM(gm.quadrature_points)
    from hra.gmm.registry import load_gmm  # other registered models (groningen-v7, ...)

    return load_gmm(gm.model, getattr(gm, "model_dir", None))


def _zone_polygons(cfg: Config):
    gm = cfg.ground_motion
    path = getattr(gm, "zones", None)
    if path is not None:
        from hra.sites import read_zones

        return read_zones(cfg.resolve(path), getattr(gm, "zone_field", "zone"))
    if isinstance(gm, GroundMotionDemo):
        from hra.demo.region import zones

        polys, ids, _ = zones()
        return polys, ids
    return None


def _buildings(cfg: Config, typologies: tuple[str, ...]) -> tuple[Buildings, Any]:
    from hra.exposure import building_keys, exposure_arrays, read_exposure

    path = cfg.resolve(cfg.exposure.buildings)
    df = read_exposure(path, known_typologies=list(typologies))
    arr = exposure_arrays(df, list(typologies))
    b = Buildings(
        ids=np.asarray(arr.ids, dtype=object), x=arr.x, y=arr.y, zone=np.asarray(arr.zone, dtype=np.int64),
        wierde=np.asarray(arr.wierde, dtype=bool), municipality=np.asarray(arr.municipality, dtype=object),
        typology_index=np.ascontiguousarray(arr.typology_index, dtype=np.int64),
        typology_prob=np.ascontiguousarray(arr.typology_prob, dtype=np.float64),
        keys=np.asarray(building_keys(arr.ids), dtype=np.uint64),
    )
    return b, path


def assign_sites(cfg: Config, gmm: GroundMotionModel, b: Buildings) -> tuple[list[tuple[int, bool]], np.ndarray]:
    """Site (zone, wierde) of every building; zones from the exposure or from polygons."""
    known = gmm.zones
    uses_wierde = bool(getattr(gmm, "uses_wierde", False))
    if known is None:
        zone = np.zeros(b.n, dtype=np.int64)
    else:
        zone = b.zone.copy()
        missing = zone < 0
        if missing.any():
            polys = _zone_polygons(cfg)
            if polys is None:
                i = int(np.flatnonzero(missing)[0])
                raise EngineError(
                    f"building {b.ids[i]!r} has no zone and no zone polygons are configured; "
                    "add a 'zone' column to the exposure or set [ground_motion] zones"
                )
            from hra.sites import assign_zones

            zone[missing] = assign_zones(b.x[missing], b.y[missing], polys[0], polys[1])
        bad = ~np.isin(zone, known)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise EngineError(
                f"building {b.ids[i]!r} lies in zone {zone[i]}, for which ground-motion model "
                f"{gmm.name!r} has no coefficients (known zones: {list(known[:10])}...); fix the zone column"
            )
        b.zone = zone
    wierde = b.wierde if uses_wierde else np.zeros(b.n, dtype=bool)
    keys = zone * 2 + wierde.astype(np.int64)
    uniq, inverse = np.unique(keys, return_inverse=True)
    sites = [(int(k // 2), bool(k % 2)) for k in uniq]
    return sites, inverse.astype(np.int64)


@dataclass
class SourceModel:
    rates: RateGrid
    magnitude: MagnitudeBins
    b_node: Node
    m_max_node: Node
    distance_nodes_km: np.ndarray
    files: dict[str, str]


def prepare_source(cfg: Config) -> SourceModel:
    """Rate grid, magnitude discretisation, magnitude nodes and distance nodes of a config."""
    src = cfg.source
    rates_path = cfg.resolve(src.rates)
    rates = read_rate_grid(rates_path, cfg.run.years)
    files = {f"source:{rates_path.name}": sha256_file(rates_path)}
    mag = src.magnitude
    mx = [(v.value, v.weight) for v in mag.m_max]
    if isinstance(mag.b_value, list):
        b_node, m_node = magnitude_nodes([(v.value, v.weight) for v in mag.b_value], mx)
    else:
        b_node, m_node = magnitude_nodes(float(mag.b_value), mx)
    bins = magnitude_bins(np.array(b_node.values), np.array(m_node.values), src.m_min, mag.bin_width)
    r_nodes = np.exp(np.linspace(math.log(src.depth_km), math.log(src.max_distance_km), src.distance_nodes))
    return SourceModel(rates, bins, b_node, m_node, r_nodes, files)


def prepare(cfg: Config) -> Prepared:
    """Read and validate every input of a run (no heavy computation)."""
    sm = prepare_source(cfg)
    files = dict(sm.files)
    gmm = make_gmm(cfg)
    frag_path = cfg.resolve(cfg.fragility.curves)
    imt = gmm.imts[0]
    fr = read_fragility_csv(frag_path, imt=imt, presence_inside=cfg.fragility.presence_inside,
                            consequence=[(c.factor, c.weight) for c in cfg.fragility.consequence])
    files[f"fragility:{frag_path.name}"] = sha256_file(frag_path)
    buildings, exp_path = _buildings(cfg, fr.typologies)
    files[f"exposure:{Path(exp_path).name}"] = sha256_file(exp_path)
    for name, digest in getattr(gmm, "file_checksums", {}).items():
        files[f"gmm:{name}"] = digest
    sites, site_index = assign_sites(cfg, gmm, buildings)
    return Prepared(cfg, sm.rates, sm.magnitude, sm.b_node, sm.m_max_node, gmm, fr, buildings, sites, site_index,
                    sm.distance_nodes_km, files)


# ------------------------------------------------------------------------------------------
# tables
# ------------------------------------------------------------------------------------------


@dataclass
class Tables:
    """``q[site * T + t, r, u]`` for all model combinations u (C order of ``model_tree``) and
    the tree mean ``qbar[site * T + t, r]``; ``pexc`` optionally holds P(CS >= k) per site."""

    q: np.ndarray
    qbar: np.ndarray
    model_weights: np.ndarray
    n_typologies: int


def site_death_tables(gmm: GroundMotionModel, fragility: FragilityModel, site: tuple[int, bool],
                      mag: MagnitudeBins, r_nodes: np.ndarray, keep_pexc: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """Death probability per event for one site: array (t, r, n_b, n_mx, G, F, C).

    Integrates, for every GMM branch combination g, the Gaussian-mixture distribution of ln IM
    against the fragility curves (kernels.death_table), then sums over the magnitude nodes with
    the discretised GR masses of each (b-value, Mmax) branch.
    """
    zone, wierde = site
    gtree = gmm.tree.enumerate()
    names = [n.name for n in gmm.tree.nodes]
    T, F, K = fragility.median_g.shape
    C = fragility.p_death_inside.shape[1]
    M, R = mag.n_nodes, r_nodes.size
    G = gtree.n
    ln_med = np.log(fragility.median_g)
    out = np.empty((T, R, mag.mass.shape[0], mag.mass.shape[1], G, F, C))
    pexc_all = np.empty((G, T, F, K, M, R)) if keep_pexc else None
    pexc = np.empty((T, F, K, M, R))
    death = np.empty((T, F, C, M, R))
    zone_arg = None if gmm.zones is None else zone
    for g in range(G):
        branch = {nm: int(gtree.index[g, j]) for j, nm in enumerate(names)}
        kw = {"wierde": wierde} if getattr(gmm, "uses_wierde", False) else {}
        mix = gmm.ln_im_mixture(fragility.imt, mag.nodes, r_nodes, zone_arg, branch, **kw)
        kernels.death_table(np.ascontiguousarray(mix.mean), np.ascontiguousarray(mix.sd), np.ascontiguousarray(mix.weight),
                            ln_med, fragility.beta, fragility.p_death_inside, fragility.p_death_outside,
                            float(fragility.presence_inside), pexc, death)
        if fragility.direct_imt is not None:
            mix2 = gmm.ln_im_mixture(fragility.direct_imt, mag.nodes, r_nodes, zone_arg, branch, **kw)
            med = fragility.direct_median_g
            lnm = np.where(med > 0, np.log(np.where(med > 0, med, 1.0)), -np.inf).reshape(-1)
            direct = np.empty((T * C, M, R))
            kernels.lognormal_expectation(np.ascontiguousarray(mix2.mean), np.ascontiguousarray(mix2.sd),
                                          np.ascontiguousarray(mix2.weight), lnm, fragility.direct_beta.reshape(-1), direct)
            death += (1.0 - fragility.presence_inside) * direct.reshape(T, 1, C, M, R)
        # sum over magnitude nodes with GR masses: (b, x, m) x (t, f, c, m, r) -> (t, r, b, x, f, c)
        e = mag.integrate(np.moveaxis(death, 3, -1))  # (b, x, t, f, c, r)
        out[:, :, :, :, g] = np.transpose(e, (2, 5, 0, 1, 3, 4))
        if keep_pexc:
            pexc_all[g] = pexc
    return out, pexc_all


def build_tables(prep: Prepared, executor: "Executor | None" = None) -> Tables:
    """Tables of every site (in parallel over sites when an executor with workers is given)."""
    T = len(prep.fragility.typologies)
    mweights = prep.model_tree.enumerate().weight
    args = [(prep.gmm, prep.fragility, site, prep.magnitude, prep.distance_nodes_km) for site in prep.sites]
    if executor is not None and executor.parallel:
        parts = executor.map(_site_table_task, args, label="tables")
    else:
        parts = [_site_table_task(a) for a in args]
    R = prep.distance_nodes_km.size
    q = np.empty((len(prep.sites) * T, R, mweights.size))
    for i, part in enumerate(parts):
        q[i * T:(i + 1) * T] = part.reshape(T, R, -1)
    qbar = q @ mweights
    return Tables(q, qbar, mweights, T)


def _site_table_task(args):
    gmm, fragility, site, mag, r_nodes = args
    return site_death_tables(gmm, fragility, site, mag, r_nodes)[0]


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
    s = real.index[:, 0]
    model = np.ravel_multi_index(tuple(real.index[:, 1:].T), sizes) if sizes else np.zeros(real.n, np.int64)
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
                                        dashboard_address=None, silence_logs=logging.ERROR)
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
        from hra.progress import progress_bar

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


@dataclass
class ChunkStatic:
    """Data shared by all chunks (sent once to every worker)."""

    cx: np.ndarray
    cy: np.ndarray
    rates: np.ndarray
    n_years: int
    n_src: int
    depth_km: float
    ln_r0: float
    dln: float
    n_r: int
    r_max_km: float
    cell_size_m: float
    sub_radius_m: float
    n_sub: int
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


def run_chunk(chunk: dict, static: ChunkStatic) -> dict:
    """LPR statistics of one chunk of buildings (pure function of its inputs)."""
    n = chunk["x"].size
    Y = static.n_years
    out_mean = np.zeros((n, Y))
    out_q = np.zeros((n, Y, static.probs.size))
    out_real = np.zeros((n, Y, static.n_keep))
    out_real_w = np.zeros((n, static.n_keep))
    kernels.chunk_lpr(
        chunk["x"], chunk["y"], chunk["zt_base"], chunk["typ_idx"], chunk["typ_prob"], chunk["keys"],
        static.cx, static.cy, static.rates, Y, static.n_src, static.depth_km, static.ln_r0, static.dln,
        static.n_r, static.r_max_km, static.cell_size_m, static.sub_radius_m, static.n_sub,
        static.q, static.combo_s, static.s_start, static.combo_w, static.qbar, static.s_weights,
        static.mixture, static.monte_carlo, static.real_combo, static.seed_key, static.probs,
        out_mean, out_q, out_real, out_real_w,
    )
    return {"mean": out_mean, "q": out_q, "real": out_real, "real_w": out_real_w}


def seed_key(seed: int, purpose: int) -> np.uint64:
    """64-bit key of a (seed, purpose) stream for the counter-based draws in the kernels."""
    ss = np.random.SeedSequence(seed, spawn_key=(purpose,))
    return np.uint64(ss.generate_state(1, dtype=np.uint64)[0])


def make_static(prep: Prepared, tables: Tables, sel: Selection) -> ChunkStatic:
    src = prep.cfg.source
    r = prep.distance_nodes_km
    q = np.ascontiguousarray(tables.q[:, :, sel.combo_model])
    n_keep = 0
    if prep.cfg.run.keep_realisations:
        if not sel.realisations.exact:
            n_keep = sel.realisations.n
        elif prep.cfg.run.typology_uncertainty == "epistemic":
            n_keep = sel.combo_s.size * prep.buildings.typology_index.shape[1]
        else:
            n_keep = sel.combo_s.size
    return ChunkStatic(
        cx=prep.rates.x, cy=prep.rates.y,
        rates=np.ascontiguousarray(prep.rates.rate.reshape(prep.rates.rate.shape[0], -1)),
        n_years=prep.years.size, n_src=len(prep.rates.branches), depth_km=src.depth_km,
        ln_r0=float(math.log(r[0])), dln=float(math.log(r[1] / r[0])), n_r=r.size, r_max_km=src.max_distance_km,
        cell_size_m=src.cell_size_m, sub_radius_m=src.subcell_radius_km * 1000.0, n_sub=src.subcell_divisions,
        q=q, combo_s=sel.combo_s, s_start=sel.s_start, combo_w=sel.combo_w, qbar=tables.qbar,
        s_weights=np.asarray(prep.rates.branch_weights, dtype=float),
        mixture=prep.cfg.run.typology_uncertainty == "mixture", monte_carlo=not sel.realisations.exact,
        real_combo=sel.real_combo, seed_key=seed_key(prep.cfg.run.seed, PURPOSE_TYPOLOGY),
        probs=np.asarray(prep.cfg.run.quantiles, dtype=float), n_keep=n_keep,
    )


def make_chunks(prep: Prepared, chunk_size: int, T: int) -> list[dict]:
    b = prep.buildings
    zt_base = prep.site_index * T
    chunks = []
    for start in range(0, b.n, chunk_size):
        sl = slice(start, min(start + chunk_size, b.n))
        chunks.append(dict(
            x=np.ascontiguousarray(b.x[sl]), y=np.ascontiguousarray(b.y[sl]), zt_base=np.ascontiguousarray(zt_base[sl]),
            typ_idx=np.ascontiguousarray(b.typology_index[sl]), typ_prob=np.ascontiguousarray(b.typology_prob[sl]),
            keys=np.ascontiguousarray(b.keys[sl]),
        ))
    return chunks


def warm_kernels() -> None:
    """Compile (or load from cache) the kernels in this process before workers start."""
    z = np.zeros
    kernels.chunk_lpr(
        z(1), z(1), z(1, np.int64), -np.ones((1, 1), np.int64), z((1, 1)), z(1, np.uint64),
        z(1), z(1), z((1, 1)), 1, 1, 3.0, math.log(3.0), 0.1, 4, 70.0, 1000.0, 0.0, 1,
        z((1, 4, 1)), z(1, np.int64), np.array([0, 1]), np.ones(1), z((1, 4)), np.ones(1),
        False, False, z(0, np.int64), np.uint64(1), np.array([0.5]), z((1, 1)), z((1, 1, 1)), z((1, 1, 0)), z((1, 0)),
    )


@dataclass
class RunResult:
    prep: Prepared
    selection: Selection
    mean: np.ndarray
    quantiles: np.ndarray
    realisations: np.ndarray | None
    realisation_weight: np.ndarray | None
    timings: dict[str, float]


def compute(cfg: Config, progress: bool | None = None, prep: Prepared | None = None) -> RunResult:
    """Run the engine and return the raw arrays (see :func:`run` for the Dataset)."""
    import sys

    t0 = time.perf_counter()
    if progress is None:
        progress = cfg.compute.progress if cfg.compute.progress is not None else sys.stderr.isatty()
    prep = prep or prepare(cfg)
    t_prep = time.perf_counter()
    log.info("prepared %d buildings, %d source cells, %d sites, logic tree of %d combinations",
             prep.buildings.n, prep.rates.x.size, len(prep.sites), prep.tree.n_combinations)
    warm_kernels()
    with Executor(cfg.compute.scheduler, cfg.compute.workers, progress) as ex:
        tables = build_tables(prep, ex)
        t_tab = time.perf_counter()
        sel = select_realisations(prep)
        static = make_static(prep, tables, sel)
        chunks = make_chunks(prep, cfg.compute.chunk_buildings, tables.n_typologies)
        parts = ex.map(run_chunk, chunks, label="buildings", shared={"static": static})
    t_run = time.perf_counter()
    mean = np.concatenate([p["mean"] for p in parts])
    quant = np.concatenate([p["q"] for p in parts])
    keep = static.n_keep > 0
    real = np.concatenate([p["real"] for p in parts]) if keep else None
    real_w = np.concatenate([p["real_w"] for p in parts]) if keep else None
    timings = dict(prepare_s=t_prep - t0, tables_s=t_tab - t_prep, buildings_s=t_run - t_tab, total_s=t_run - t0)
    return RunResult(prep, sel, mean, quant, real, real_w, timings)
