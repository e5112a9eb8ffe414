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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fragility.lognormal import FragilityModel, read_fragility_csv
from hra.config import Config, GroundMotionDemo, GroundMotionDost2004, GroundMotionParametric
from hra.core.logictree import LogicTree, Node
from hra.gmm.base import GroundMotionModel
from hra.inputs.source import MagnitudeBins, RateGrid, magnitude_bins, magnitude_nodes, read_rate_grid

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
    if isinstance(gm, GroundMotionDost2004):
        from hra.gmm.dost2004 import DostBommer2013

        return DostBommer2013(gm.truncation_sigma, gm.quadrature_points, gm.imt)
    from hra.gmm.registry import load_gmm  # other registered models (groningen-v7, ...)

    opts: dict[str, Any] = {"rupture": gm.rupture, "verify": gm.verify}
    if gm.s2s_mode is not None:
        opts["s2s_mode"] = gm.s2s_mode
    if gm.quadrature == "fast":
        opts.update(quad_step=0.5, n_rrup=4)
    return load_gmm(gm.model, cfg.resolve(gm.model_dir), **opts)


def make_fragility(cfg: Config, imt: str) -> tuple[FragilityModel, dict[str, str]]:
    """The fragility/consequence model of ``[fragility]`` (a CSV of curves or a Groningen FCM)."""
    fr_cfg = cfg.fragility
    if fr_cfg.model is not None:
        from fragility.groningen import load_fcm

        model_dir = cfg.resolve(fr_cfg.model_dir) or cfg.resolve(getattr(cfg.ground_motion, "model_dir", None))
        fcm = load_fcm(fr_cfg.model, model_dir, verify=getattr(cfg.ground_motion, "verify", True))
        presence = 0.99 if fr_cfg.presence_inside is None else fr_cfg.presence_inside
        fm = fcm.to_fragility_model(presence)
        if fm.imt != imt:
            raise EngineError(f"[fragility] model {fr_cfg.model} is defined on {fm.imt}, the ground-motion model gives {imt}")
        return fm, {f"fcm:{k}": v for k, v in fcm.sha256.items()}
    path = cfg.resolve(fr_cfg.curves)
    presence = 1.0 if fr_cfg.presence_inside is None else fr_cfg.presence_inside
    fm = read_fragility_csv(path, imt=imt, presence_inside=presence,
                            consequence=[(c.factor, c.weight) for c in fr_cfg.consequence])
    return fm, {f"fragility:{path.name}": sha256_file(path)}


def _zone_polygons(cfg: Config):
    gm = cfg.ground_motion
    path = getattr(gm, "zones", None)
    if path is None and gm.model in ("groningen-v7", "groningen-v6"):
        from hra.inputs.modeldata import zonation_file

        path = zonation_file(cfg.resolve(gm.model_dir), verify=gm.verify)
    if path is not None and str(path).endswith(".zip") and gm.model in ("groningen-v7", "groningen-v6"):
        return ("v6-zip", cfg.resolve(path))
    if path is not None:
        from hra.inputs.sites import read_zones

        return read_zones(cfg.resolve(path), getattr(gm, "zone_field", "zone"))
    if isinstance(gm, GroundMotionDemo):
        from hra.demo.region import zones

        polys, ids, _ = zones()
        return polys, ids
    return None


def _buildings(cfg: Config, typologies: tuple[str, ...]) -> tuple[Buildings, Any]:
    from hra.inputs.exposure import building_keys, exposure_arrays, read_exposure

    path = cfg.resolve(cfg.exposure.buildings)
    if _is_edb(path):
        from hra.inputs.edb import read_edb
        from hra.inputs.exposure import validate_exposure

        edb = read_edb(path, typologies=list(typologies))
        keep = ["id", "x", "y", "wierde", "municipality"] + [c for c in edb.columns if c.startswith(("system_", "s_probability_"))]
        df = validate_exposure(edb[keep], known_typologies=list(typologies), source=str(path))
    else:
        df = read_exposure(path, known_typologies=list(typologies))
    arr = exposure_arrays(df, list(typologies))
    b = Buildings(arr, np.asarray(arr.zone, dtype=np.int64).copy(), np.asarray(building_keys(arr.ids), dtype=np.uint64))
    return b, path


def _is_edb(path: Path) -> bool:
    """An exposure file in the Groningen EDB layout (bag_building_id, point_x, point_y, ...)."""
    if Path(path).suffix.lower() not in (".csv", ".txt") or not Path(path).is_file():
        return False
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        header = fh.readline()
    return "bag_building_id" in header and "point_x" in header


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
            if polys[0] == "v6-zip":
                from hra.inputs.edb import assign_zones_v6

                zone[missing] = assign_zones_v6(b.x[missing], b.y[missing], polys[1], known)
            else:
                from hra.inputs.sites import assign_zones

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


def prepare_forecast(cfg: Config) -> SourceModel:
    """Forecast, branch nodes, magnitude basis and distance nodes of a ``[source] forecast`` config."""
    from hra.inputs.forecast import ForecastMagnitude, branch_bases, branch_nodes, node_masses, read_forecast

    src = cfg.source
    path = cfg.resolve(src.forecast)
    fc = read_forecast(path, cfg.run.years)
    nodes = branch_nodes(fc, dict(src.forecast_weights))
    C, Y, S, M = fc.counts.shape
    masses = node_masses(fc.magnitudes, fc.counts.reshape(-1, M))
    used = np.flatnonzero(masses.max(axis=0, initial=0.0) > 0)  # the tables skip nodes without events
    lo, hi = (int(used[0]), int(used[-1]) + 1) if used.size else (0, M)
    masses, nodes_m = masses[:, lo:hi], fc.magnitudes[lo:hi]
    basis, coef_s, residual = branch_bases(masses.reshape(C * Y, S, -1))
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
    return SourceModel(rates, ForecastMagnitude(nodes_m, basis), one, one, r_nodes,
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
    bins = magnitude_bins(np.array(b_node.values), np.array(m_node.values), src.m_min, mag.bin_width)
    r_nodes = np.exp(np.linspace(math.log(src.depth_km), math.log(src.max_distance_km), src.distance_nodes))
    return SourceModel(rates, bins, b_node, m_node, r_nodes, files)


def prepare(cfg: Config) -> Prepared:
    """Read and validate every input of a run (no heavy computation)."""
    sm = prepare_source(cfg)
    files = dict(sm.files)
    gmm = make_gmm(cfg)
    fr, ffiles = make_fragility(cfg, gmm.imts[0])
    files.update(ffiles)
    buildings, exp_path = _buildings(cfg, fr.typologies)
    files[f"exposure:{Path(exp_path).name}"] = sha256_file(exp_path)
    for name, digest in getattr(gmm, "file_checksums", {}).items():
        files[f"gmm:{name}"] = digest
    sites, site_index = assign_sites(cfg, gmm, buildings)
    median_map = None
    if hasattr(gmm, "median_weights"):
        mode = getattr(cfg.ground_motion, "median_weights", "realisation")
        median_map = MedianMap.build(gmm.median_weights(sm.magnitude.nodes), mode)
    return Prepared(cfg, sm.rates, sm.magnitude, sm.b_node, sm.m_max_node, gmm, fr, buildings, sites, site_index,
                    sm.distance_nodes_km, files, median_map, sm.forecast)




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
