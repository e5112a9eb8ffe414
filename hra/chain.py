"""The model chain of a run: from a validated :class:`hra.config.Config` to the objects both
engines and the hazard share (no heavy computation).

:func:`prepare` reads the source rate grid, the exposure and the fragility model, builds the
ground-motion model, assigns each building its site (site-response zone, wierde) and assembles the
logic tree ``[source] + [b_value, m_max] + GMM nodes + [fragility, consequence]``.
:class:`MedianMap` is how the engines enumerate the magnitude-dependent median weights w(M) of
GMM V7/V6 (one definition for risk and hazard).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fragility.lognormal import FragilityModel, read_fragility_csv
from hra.config import (PSDRA_2024_FORECAST_WEIGHTS, Config, GroundMotionDemo, GroundMotionDost2004,
                        GroundMotionParametric)
from hra.core.fileio import sha256_file
from hra.core.logictree import LogicTree, Node
from hra.gmm.base import GroundMotionModel
from hra.inputs.source import MagnitudeBins, RateGrid, magnitude_bins, magnitude_nodes, read_rate_grid

if TYPE_CHECKING:
    from hra.inputs.sites import ZoneSource

log = logging.getLogger("hra")

class EngineError(ValueError):
    """An input combination the engine cannot run; the message says what to fix."""


# ------------------------------------------------------------------------------------------
# preparation
# ------------------------------------------------------------------------------------------


@dataclass
class Buildings:
    """Per-building arrays the kernels need: :class:`hra.inputs.exposure.ExposureArrays` (``arrays``)
    with the zone filled in and the 64-bit keys of the ids (counter-based random streams)."""

    arrays: Any
    zone: np.ndarray
    keys: np.ndarray

    def __getattr__(self, name: str):
        return getattr(self.__dict__["arrays"], name)

    @property
    def n(self) -> int:
        return int(self.arrays.x.size)


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
    median_map: "MedianMap | None" = None
    forecast: "ForecastSource | None" = None  # [source] forecast: branch nodes and magnitude-basis rates

    @property
    def source_nodes(self) -> tuple[Node, ...]:
        """The nodes of the source branches (flattened in C order into the rate axis s)."""
        return self.forecast.nodes if self.forecast is not None else (self.rates.node,)

    @property
    def model_tree(self) -> LogicTree:
        """All nodes except the source-rate branches, in table order (a forecast has no b-value and
        Mmax nodes: its branch_mm and branch_mmax are source nodes)."""
        mag = LogicTree(()) if self.forecast is not None else LogicTree((self.b_node, self.m_max_node))
        return mag + engine_gmm_tree(self.gmm, self.median_map) + self.fragility.tree

    @property
    def tree(self) -> LogicTree:
        return LogicTree(self.source_nodes) + self.model_tree

    @property
    def years(self) -> np.ndarray:
        return self.rates.years


# ------------------------------------------------------------------------------------------
# [logic_tree] weights and fixed branches
# ------------------------------------------------------------------------------------------


def _sha256_cached(path: Path) -> str:
    if path.is_file():
        from hra.inputs.modeldata import _file_sha

        return _file_sha(path)
    return sha256_file(path)


def tree_overrides(cfg: Config) -> dict[str, tuple[str, dict[str, float]]]:
    """``[logic_tree]`` as node -> (config key, {branch label: weight}); a fixed branch is weight 1."""
    lt = cfg.logic_tree
    out: dict[str, tuple[str, dict[str, float]]] = {
        node: (f"[logic_tree] weights.{node}", dict(table)) for node, table in lt.weights.items()}
    for node, label in lt.fix.items():
        out[node] = (f"[logic_tree] fix.{node} = {label!r}", {label: 1.0})
    return out


def reweight_node(node: Node, overrides: dict[str, tuple[str, dict[str, float]]]) -> Node:
    """``node`` with the weights of ``overrides`` (see :func:`tree_overrides`); unknown labels raise
    :class:`EngineError` naming the key and the node's branches."""
    if node.name not in overrides:
        return node
    key, table = overrides[node.name]
    unknown = [lab for lab in table if lab not in node.labels]
    if unknown:
        raise EngineError(
            f"{key}: node {node.name!r} has no branch {', '.join(map(repr, unknown))}; its branches are "
            f"{', '.join(node.labels)}; fix the branch label")
    return Node(node.name, node.labels, tuple(float(table.get(lab, 0.0)) for lab in node.labels), node.values)


def check_tree_overrides(cfg: Config, known: list[str]) -> None:
    """Refuse ``[logic_tree]`` nodes that the run's logic tree does not have."""
    unknown = [n for n in tree_overrides(cfg) if n not in known]
    if unknown:
        raise EngineError(
            f"[logic_tree]: unknown node {', '.join(map(repr, unknown))}; the logic tree of this run has the nodes "
            f"{', '.join(known)}; fix the node name")


def _constant_weights(weights: np.ndarray, magnitude) -> np.ndarray:
    m = np.atleast_1d(np.asarray(magnitude, float))
    return np.broadcast_to(np.asarray(weights, float), (m.size, len(weights))).copy()


class ReweightedGMM(GroundMotionModel):
    """A ground-motion model with ``[logic_tree]`` weights: the inner model's equations, another
    :attr:`tree` and, for models with magnitude-dependent median weights w(M) (GMM V7), the
    overridden ``gmm_median`` weights at every magnitude (a fixed branch is fixed at every M)."""

    def __init__(self, inner: GroundMotionModel, tree: LogicTree, median: np.ndarray | None = None):
        self._inner = inner
        self._tree = tree
        self.name, self.reference, self.imts, self.verified = inner.name, inner.reference, inner.imts, inner.verified
        if median is not None:
            import functools

            self.median_weights = functools.partial(_constant_weights, np.asarray(median, float))

    def __getattr__(self, name: str):
        if name.startswith("__") or name in ("_inner", "_tree"):
            raise AttributeError(name)
        return getattr(self._inner, name)

    @property
    def tree(self) -> LogicTree:
        return self._tree

    @property
    def zones(self):
        return self._inner.zones

    def ln_im_mixture(self, *args, **kwargs):
        return self._inner.ln_im_mixture(*args, **kwargs)


def reweight_gmm(cfg: Config, gmm: GroundMotionModel) -> GroundMotionModel:
    """``gmm`` with the ``[logic_tree]`` weights of its nodes (unchanged if none is named)."""
    ov = tree_overrides(cfg)
    names = [n.name for n in gmm.tree.nodes]
    if not any(n in ov for n in names):
        return gmm
    tree = LogicTree(tuple(reweight_node(n, ov) for n in gmm.tree.nodes))
    median = None
    if "gmm_median" in ov and hasattr(gmm, "median_weights"):
        median = tree.node("gmm_median").weight_array
    return ReweightedGMM(gmm, tree, median)


def make_gmm(cfg: Config, component: str | None = None) -> GroundMotionModel:
    """The ground-motion model named in ``[ground_motion] model``, with the ``[logic_tree]`` weights of its nodes.

    ``component`` (``"arbitrary"`` or ``"geometric_mean"``) selects the horizontal component of
    the models that distinguish them (GMM V7/V6; default: the model's, arbitrary, as the
    fragility functions use); the other models have one sigma and ignore it.
    """
    return reweight_gmm(cfg, _make_gmm(cfg, component))


def _make_gmm(cfg: Config, component: str | None = None) -> GroundMotionModel:
    gm = cfg.ground_motion
    if isinstance(gm, GroundMotionParametric):
        from hra.gmm.parametric import ParametricGMM

        return ParametricGMM(gm.c0, gm.c1, gm.c2, gm.c3, gm.tau, gm.phi, gm.truncation_sigma, gm.quadrature_points, gm.imt)
    if isinstance(gm, GroundMotionDemo):
        from hra.gmm.demo import DemoGMM

        return DemoGMM(gm.quadrature_points)
    if isinstance(gm, GroundMotionDost2004):
        from hra.gmm.dost2004 import DostBommer2013

        return DostBommer2013(gm.truncation_sigma, gm.quadrature_points, gm.imt)
    from hra.gmm.registry import load_gmm  # other registered models (groningen-v7, ...)

    opts: dict[str, Any] = {"rupture": gm.rupture, "verify": gm.verify}
    if gm.rupture == "finite" and gm.rupture_strike != "uniform":
        opts["rupture_strike"] = (gm.rupture_strike.mean_deg, gm.rupture_strike.sd_deg)
    if gm.s2s_mode is not None:
        opts["s2s_mode"] = gm.s2s_mode
    if gm.quadrature == "fast":
        opts.update(quad_step=0.5, n_rrup=4)
    if component is not None:
        opts["component"] = component
    return load_gmm(gm.model, cfg.resolve(gm.model_dir), **opts)


def make_fragility(cfg: Config, imt: str) -> tuple[FragilityModel, dict[str, str]]:
    """The fragility/consequence model of ``[fragility]`` (a CSV of curves or a Groningen FCM)."""
    fr_cfg = cfg.fragility
    if fr_cfg.model is not None:
        from fragility.groningen import load_fcm

        model_dir = cfg.resolve(fr_cfg.model_dir) or cfg.resolve(getattr(cfg.ground_motion, "model_dir", None))
        fcm = load_fcm(fr_cfg.model, model_dir, verify=getattr(cfg.ground_motion, "verify", True))
        fm = fcm.to_fragility_model(presence_inside(cfg))
        if fm.imt != imt:
            raise EngineError(f"[fragility] model {fr_cfg.model} is defined on {fm.imt}, the ground-motion model gives {imt}")
        return _reweight_fragility(cfg, fm), {f"fcm:{k}": v for k, v in fcm.sha256.items()}
    path = cfg.resolve(fr_cfg.curves)
    fm = read_fragility_csv(path, imt=imt, presence_inside=presence_inside(cfg),
                            consequence=[(c.factor, c.weight) for c in fr_cfg.consequence])
    return _reweight_fragility(cfg, fm), {f"fragility:{path.name}": sha256_file(path)}


def _reweight_fragility(cfg: Config, fm: FragilityModel) -> FragilityModel:
    ov = tree_overrides(cfg)
    if fm.fragility_node.name not in ov and fm.consequence_node.name not in ov:
        return fm
    return replace(fm, fragility_node=reweight_node(fm.fragility_node, ov),
                               consequence_node=reweight_node(fm.consequence_node, ov))


def zone_source(cfg: Config) -> "ZoneSource | None":
    """Where the zones of buildings or sites without a zone come from (``None``: nowhere).

    ``[ground_motion] zones`` (a zone file; a ``.zip`` with GMM V7/V6 is the V6 zonation), else the
    V6 zonation of the model tables for GMM V7/V6, else the demo region's polygons for the demo
    model.
    """
    from hra.inputs.sites import ZoneSource

    gm = cfg.ground_motion
    groningen = gm.model in ("groningen-v7", "groningen-v6")
    path = getattr(gm, "zones", None)
    if path is None and groningen:
        from hra.inputs.modeldata import zonation_file

        path = zonation_file(cfg.resolve(gm.model_dir), verify=gm.verify)
    if path is not None and str(path).endswith(".zip") and groningen:
        return ZoneSource.v6_zonation(cfg.resolve(path))
    if path is not None:
        return ZoneSource.from_file(cfg.resolve(path), getattr(gm, "zone_field", "zone"))
    if isinstance(gm, GroundMotionDemo):
        from hra.demo.region import zones

        polys, ids, _ = zones()
        return ZoneSource.from_polygons(polys, ids)
    return None


def _buildings(cfg: Config, typologies: tuple[str, ...]) -> tuple[Buildings, Any]:
    from hra.inputs.exposure import building_keys, exposure_arrays, read_buildings

    path = cfg.resolve(cfg.exposure.buildings)
    df = read_buildings(path, known_typologies=list(typologies))
    arr = exposure_arrays(df, list(typologies))
    b = Buildings(arr, np.asarray(arr.zone, dtype=np.int64).copy(), np.asarray(building_keys(arr.ids), dtype=np.uint64))
    return b, path


def assign_sites(cfg: Config, gmm: GroundMotionModel, b: Buildings,
                 files: dict[str, str] | None = None) -> tuple[list[tuple[int, bool]], np.ndarray]:
    """Site (zone, wierde) of every building; zones from the exposure or from polygons.

    When polygons are read from a file, its SHA-256 goes into ``files`` (``zonation:<name>``).
    """
    known = gmm.zones
    uses_wierde = bool(getattr(gmm, "uses_wierde", False))
    if known is None:
        zone = np.zeros(b.n, dtype=np.int64)
    else:
        zone = b.zone.copy()
        missing = zone < 0
        if missing.any():
            source = zone_source(cfg)
            if files is not None and source is not None and source.path is not None:
                files[f"zonation:{Path(source.path).name}"] = _sha256_cached(Path(source.path))
            if source is None:
                i = int(np.flatnonzero(missing)[0])
                raise EngineError(
                    f"building {b.ids[i]!r} has no zone and no zone polygons are configured; "
                    "add a 'zone' column to the exposure or set [ground_motion] zones"
                )
            zone[missing] = source.assign(b.x[missing], b.y[missing], known)
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
class ForecastSource:
    """What the engine takes from ``[source] forecast``: the branch nodes, the magnitude basis and
    the per-cell basis coefficients ``coef[c, k, y * S + s]`` [yr^-1] (see :mod:`hra.inputs.forecast`)."""

    data: Any  # hra.inputs.forecast.Forecast
    nodes: tuple[Node, ...]
    coef: np.ndarray  # (c, K, Y * S)
    residual: float

    @property
    def n_basis(self) -> int:
        return int(self.coef.shape[1])


@dataclass
class SourceModel:
    rates: RateGrid
    magnitude: Any  # MagnitudeBins, or ForecastMagnitude for a forecast
    b_node: Node
    m_max_node: Node
    distance_nodes_km: np.ndarray
    files: dict[str, str]
    forecast: ForecastSource | None = None


def require_rate_grid(cfg: Config, what: str) -> None:
    """Refuse ``[source] forecast`` in the paths that only know the rate grid (EngineError naming the fix)."""
    if cfg.source.forecast is not None:
        raise EngineError(f"{what} does not take [source] forecast yet (only `hra run` does); fix: give the "
                          "source as [source] rates with [source.magnitude]")


def forecast_weights_for(cfg: Config, branch_dims) -> dict[str, dict[str, float]]:
    """``[source.forecast_weights]`` for a forecast with these branch dims. Under ``model = "psdra-2024"``
    the preset fills in its weights for all three PSDRA-2024 dims (:data:`hra.config.PSDRA_2024_FORECAST_WEIGHTS`);
    a file without some of those dims (e.g. one Mmax model only) drops the preset's weights of the dims it
    lacks, unless the config changed them (then they are the config's own and the file must have the dim)."""
    weights = dict(cfg.source.forecast_weights)
    if cfg.model == "psdra-2024":
        weights = {d: w for d, w in weights.items() if d in branch_dims or w != PSDRA_2024_FORECAST_WEIGHTS.get(d)}
    return weights


def prepare_forecast(cfg: Config) -> SourceModel:
    """Forecast, branch nodes, magnitude basis and distance nodes of a ``[source] forecast`` config."""
    from hra.inputs.forecast import (ForecastMagnitude, branch_bases, branch_nodes, coarse_grid_advice, node_masses,
                                     read_forecast, subdivide_bins)

    src = cfg.source
    path = cfg.resolve(src.forecast)
    fc = read_forecast(path, cfg.run.years)
    nodes = branch_nodes(fc, forecast_weights_for(cfg, fc.branch_dims))
    C, Y, S, _ = fc.counts.shape
    advice = coarse_grid_advice(fc.magnitudes)
    if advice is not None and src.magnitude_subdivisions == 1:
        log.warning("forecast %s: %s", path.name, advice)
    # each bin split at its midpoint by its in-bin law (magnitude_subdivisions = 2), or the file's grid
    mags, counts = subdivide_bins(fc.magnitudes, fc.counts, src.magnitude_subdivisions)
    M = mags.size
    masses = node_masses(mags, counts.reshape(-1, M))
    del counts
    used = np.flatnonzero(masses.max(axis=0, initial=0.0) > 0)  # the tables skip nodes without events
    lo, hi = (int(used[0]), int(used[-1]) + 1) if used.size else (0, M)
    nodes_m = mags[lo:hi]
    # (a view: no copy of the whole)
    basis, coef_s, residual = branch_bases(masses.reshape(C * Y, S, M)[:, :, lo:hi], src.magnitude_basis_rtol)
    K = basis.shape[1]
    coef = np.ascontiguousarray(coef_s.reshape(C, Y, S, K).transpose(0, 3, 1, 2).reshape(C, K, Y * S))
    log.info("forecast %s: %d cells, %d branches, %d magnitude nodes with events -> magnitude basis of %d "
             "per branch (residual %.1e)", path.name, C, S, nodes_m.size, K, residual)
    names = fc.branch_names()
    weights = np.ones(1)
    for n in nodes:
        weights = np.multiply.outer(weights, n.weight_array).ravel()
    rates = RateGrid(x=fc.x, y=fc.y, years=fc.years, branches=names, branch_weights=weights,
                     rate=np.ascontiguousarray(fc.counts[..., 0].reshape(C, Y, S)))
    one = Node("magnitude", ("forecast",), (1.0,))
    r_nodes = np.exp(np.linspace(math.log(src.depth_km), math.log(src.max_distance_km), src.distance_nodes))
    return SourceModel(rates, ForecastMagnitude(nodes_m, basis, src.magnitude_table_stride), one, one, r_nodes,
                       {f"source:{path.name}": sha256_file(path)}, ForecastSource(fc, nodes, coef, residual))


def prepare_source(cfg: Config) -> SourceModel:
    """Rate grid, magnitude discretisation, magnitude nodes and distance nodes of a config."""
    src = cfg.source
    if src.forecast is not None:
        return prepare_forecast(cfg)
    rates_path = cfg.resolve(src.rates)
    rates = read_rate_grid(rates_path, cfg.run.years)
    files = {f"source:{rates_path.name}": sha256_file(rates_path)}
    mag = src.magnitude
    mx = [(v.value, v.weight) for v in mag.m_max]
    if isinstance(mag.b_value, list):
        b_node, m_node = magnitude_nodes([(v.value, v.weight) for v in mag.b_value], mx)
    else:
        b_node, m_node = magnitude_nodes(float(mag.b_value), mx)
    ov = tree_overrides(cfg)
    b_node, m_node = reweight_node(b_node, ov), reweight_node(m_node, ov)
    if rates.node.name in ov:
        rates = replace(rates, branch_weights=reweight_node(rates.node, ov).weight_array)
    bins = magnitude_bins(np.array(b_node.values), np.array(m_node.values), src.m_min, mag.bin_width)
    if src.magnitude_table_stride != 1:
        bins = replace(bins, table_stride=src.magnitude_table_stride)
    r_nodes = np.exp(np.linspace(math.log(src.depth_km), math.log(src.max_distance_km), src.distance_nodes))
    return SourceModel(rates, bins, b_node, m_node, r_nodes, files)


def warn_far_buildings(b: Buildings, rates: RateGrid, max_distance_km: float, depth_km: float) -> int:
    """Warn when buildings lie beyond ``max_distance_km`` (hypocentral) of every source cell with a
    positive rate: their LPR is 0, which is right only if the exposure and the rate grid are meant to be
    that far apart (a wrong coordinate system or a misplaced file gives the same picture). Returns the
    number of such buildings."""
    from scipy.spatial import cKDTree

    active = rates.rate.reshape(rates.rate.shape[0], -1).max(axis=1) > 0
    if b.n == 0 or not active.any():
        return 0
    d_m, _ = cKDTree(np.column_stack([rates.x[active], rates.y[active]])).query(np.column_stack([b.x, b.y]))
    reach_m = math.sqrt(max(max_distance_km**2 - depth_km**2, 0.0)) * 1000.0
    far = np.flatnonzero(d_m > reach_m)
    if far.size:
        i = int(far[0])
        log.warning("%d of %d buildings lie farther than [source] max_distance_km = %g km from every source cell "
                    "with a positive rate, so their LPR is 0 (e.g. building %r at x = %.0f, y = %.0f m RD New, %.1f km "
                    "from the nearest cell); check that exposure and rates cover the same area in RD New metres",
                    far.size, b.n, max_distance_km, b.ids[i], b.x[i], b.y[i], d_m[i] / 1000.0)
    return int(far.size)


def prepare(cfg: Config, fragility: FragilityModel | None = None, buildings: "Buildings | None" = None) -> Prepared:
    """Read and validate every input of a run (no heavy computation).

    Parameters
    ----------
    cfg
        The run configuration.
    fragility, buildings
        A fragility model and buildings held in memory, used instead of those the config names
        (``[fragility]``, ``[exposure]``); the buildings' typology indices refer to
        ``fragility.typologies`` (see :func:`hra.api.building_lpr`, the one-building case).
    """
    from concurrent.futures import ThreadPoolExecutor

    # the source (a forecast: reading, checksum, node masses and magnitude basis, ~7 s of the field
    # benchmark's prepare) in a thread beside the models, the buildings and their sites: its numpy, numba and
    # hashlib work runs outside the interpreter lock. An error of the source is raised first, as when it was
    # prepared first; the files are listed in the same order as before (source, fragility, exposure, GMM,
    # zonation)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hra-prepare-source") as pool:
        source = pool.submit(prepare_source, cfg)
        later: dict[str, str] = {}
        try:
            gmm = make_gmm(cfg)
            if fragility is None:
                fr, ffiles = make_fragility(cfg, gmm.imts[0])
                later.update(ffiles)
            else:
                fr = fragility
            if buildings is None:
                buildings, exp_path = _buildings(cfg, fr.typologies)
                later[f"exposure:{Path(exp_path).name}"] = sha256_file(exp_path)
            for name, digest in getattr(gmm, "file_checksums", {}).items():
                later[f"gmm:{name}"] = digest
            zonation: dict[str, str] = {}
            sites, site_index = assign_sites(cfg, gmm, buildings, zonation)
        except Exception:
            if source.exception() is not None:  # (waits for the source)
                raise source.exception() from None
            raise
        sm = source.result()
    files = {**sm.files, **later}
    check_tree_overrides(cfg, [sm.rates.node.name, sm.b_node.name, sm.m_max_node.name]
                         + [n.name for n in gmm.tree.nodes] + [n.name for n in fr.tree.nodes])
    files.update(zonation)
    warn_far_buildings(buildings, sm.rates, cfg.source.max_distance_km, cfg.source.depth_km)
    median_map = median_map_for(cfg, gmm, sm.magnitude)
    return Prepared(cfg, sm.rates, sm.magnitude, sm.b_node, sm.m_max_node, gmm, fr, buildings, sites, site_index,
                    sm.distance_nodes_km, files, median_map, sm.forecast)


def buildings_from_frame(df, typologies: tuple[str, ...], source: str = "buildings") -> Buildings:
    """:class:`Buildings` of an exposure table held in memory (the columns of an exposure file)."""
    from hra.inputs.exposure import building_keys, exposure_arrays, validate_exposure

    arr = exposure_arrays(validate_exposure(df, known_typologies=list(typologies), source=source), list(typologies))
    return Buildings(arr, np.asarray(arr.zone, dtype=np.int64).copy(), np.asarray(building_keys(arr.ids), dtype=np.uint64))


def presence_inside(cfg: Config) -> float:
    """Fraction of time a person is inside [-]: ``[fragility] presence_inside``, else 0.99 with a
    Groningen FCM and 1 with fragility curves (the default of each source)."""
    p = cfg.fragility.presence_inside
    if p is not None:
        return float(p)
    return 0.99 if cfg.fragility.model is not None else 1.0


# ------------------------------------------------------------------------------------------
# magnitude-dependent median weights
# ------------------------------------------------------------------------------------------

@dataclass
class MedianMap:
    """Engine treatment of magnitude-dependent median-branch weights w(M) (GMM V7 eq. 9.8).

    ``weights[v]`` are the weights of the engine's virtual branches v and ``mix[v, m, k]`` the
    weight of physical median branch k at magnitude node m in virtual branch v:

    * ``"realisation"`` (default): one uniform draw u per realisation, mapped through the
      cumulative weights of the ordered branches at every magnitude. The u-axis is cut at every
      cumulative weight of every magnitude node, so within an interval the mapping is fixed:
      ``mix`` is one-hot and each realisation is a self-consistent model. The interval lengths
      are the weights, hence the tree mean equals the w(M) mixture exactly.
    * ``"mixture"``: one virtual branch whose ``mix`` is w(M) itself (a mixture per event).
    """

    node: str
    weights: np.ndarray  # (V,)
    mix: np.ndarray  # (V, n_mag, K)
    labels: tuple[str, ...]

    @classmethod
    def build(cls, w_m: np.ndarray, mode: str = "realisation", node: str = "gmm_median") -> "MedianMap":
        w_m = np.asarray(w_m, dtype=float)
        if mode == "mixture":
            return cls(node, np.ones(1), w_m[None], ("w(M) mixture",))
        cum = np.cumsum(w_m, axis=1)[:, :-1]
        br = np.unique(np.round(np.concatenate([[0.0, 1.0], cum.ravel()]), 12))
        br = br[(br >= 0.0) & (br <= 1.0)]
        lo, hi = br[:-1], br[1:]
        keep = hi - lo > 1e-12
        lo, hi = lo[keep], hi[keep]
        mid = 0.5 * (lo + hi)
        branch = (cum[None, :, :] <= mid[:, None, None]).sum(axis=2)  # (V, n_mag)
        mix = np.zeros((mid.size,) + w_m.shape)
        np.put_along_axis(mix, branch[..., None], 1.0, axis=2)
        labels = tuple(f"u[{a:.4f},{b:.4f})" for a, b in zip(lo, hi))
        return cls(node, hi - lo, mix, labels)

    def combine(self, v: int, per_branch, mag_axis: int = -1) -> np.ndarray:
        """Values of virtual branch ``v`` from those of the physical median branches.

        ``per_branch(k)`` gives the array of physical branch k with the magnitude nodes on
        ``mag_axis``; returns ``sum_k mix[v, m, k] * per_branch(k)`` (branches of zero weight at
        every magnitude are not asked for).
        """
        out = None
        for k in range(self.mix.shape[2]):
            wk = self.mix[v, :, k]
            if not np.any(wk):
                continue
            a = np.asarray(per_branch(k), dtype=float)
            shape = [1] * a.ndim
            shape[mag_axis] = wk.size
            term = a * wk.reshape(shape)
            out = term if out is None else out + term
        return out


def median_map_for(cfg: Config, gmm: GroundMotionModel, magnitude: MagnitudeBins) -> "MedianMap | None":
    """The :class:`MedianMap` of a model with magnitude-dependent median weights at the magnitude
    nodes (``[ground_motion] median_weights`` mode), or ``None``: one definition of the V7/V6
    median node for the risk engine and the site hazard."""
    if not hasattr(gmm, "median_weights"):
        return None
    mode = getattr(cfg.ground_motion, "median_weights", "realisation")
    return MedianMap.build(gmm.median_weights(magnitude.nodes), mode)


def engine_gmm_tree(gmm: GroundMotionModel, median_map: "MedianMap | None") -> LogicTree:
    """The GMM's tree as the engine enumerates it (median node replaced by the virtual branches)."""
    if median_map is None:
        return gmm.tree
    nodes = []
    for n in gmm.tree.nodes:
        if n.name == median_map.node:
            if median_map.weights.size > 1:
                nodes.append(Node(n.name, median_map.labels, tuple(float(w) for w in median_map.weights)))
        else:
            nodes.append(n)
    return LogicTree(tuple(nodes))
