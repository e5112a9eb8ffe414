"""Export a run's inputs as OpenQuake (3.2x) input files, so that OpenQuake can solve the same problem.

OpenQuake-free: this module writes XML/CSV/INI text with the standard library and numpy/pandas;
it never imports openquake (``benchmarks/openquake`` runs OpenQuake in its own environment).

What is written (docs/openquake.md §3):

* **sources**: one NRML 0.4 ``pointSource`` per rate-grid cell (at the cell centre, at the
  configured hypocentral depth or depth distribution; vertical nodal planes: strike 0, or with
  the model's strike model ``[ground_motion] rupture_strike`` its Gaussian discretised into 5
  strikes with Gauss-Hermite probabilities, :func:`nodal_plane_strikes`), tectonic region "Induced", with a
  ``truncGutenbergRichterMFD`` whose a-value makes the rate of M >= m_min equal to the cell's rate
  *for that branch's Mmax* (our rate grids give the rate of M >= m_min, the GR law is truncated
  and renormalised at Mmax):

      rate(M >= m_min) = 10^a (10^{-b m_min} - 10^{-b Mmax})  =>  a = log10(rate) - log10(10^{-b m_min} - 10^{-b Mmax}).

  OpenQuake's ``maxMagGRAbsolute`` uncertainty would keep ``a`` and change the total rate, so the
  logic tree of (source branch x b-value x Mmax) is written as **one source model file per
  combination**, listed in a ``sourceModel`` branch set with the product weights (exact).
* **ground motion**: a GSIM logic tree with one GSIM (default OpenQuake's built-in
  ``DostEtAl2004BommerAdaptation``, or a plug-in class of :mod:`hra.openquake`).
* **exposure**: NRML ``exposureModel`` + CSV, one asset per (building, typology candidate) with
  ``number`` = the candidate's probability (so OpenQuake's per-asset results summed per building
  are the typology mixture), ``night`` occupants = ``population_inside`` (1 where unknown), a
  ``building`` tag with the building id and a ``municipality`` tag.
* **fragility**: NRML continuous fragility functions (``format="continuous" shape="logncdf"``)
  with limit states CS1..CS3 in OpenQuake's parametrisation by the **mean and standard deviation
  of the lognormal IML** (pitfall P8): ``mean = theta exp(beta^2 / 2)``,
  ``stddev = mean sqrt(exp(beta^2) - 1)``, with a tiny ``minIML`` and a large ``maxIML``
  (OpenQuake clips IMLs into [minIML, maxIML]).
* **consequences**: CSV with a ``collapsed`` consequence (1 in every collapse state: the
  per-asset annual collapse rate, CS >= CS1) and ``fatalities`` (death probability inside per
  state; OpenQuake multiplies by the occupants).
* **jobs**: ``job_classical_damage.ini`` (1-year investigation and risk time, assets at their own
  sites) and ``job_event_based_damage.ini`` (fixed ``ses_seed``).

Coordinates. OpenQuake measures distances on a sphere of radius 6371 km from lon/lat. Mapping RD
New to WGS84 (``mode="geodetic"``) is the true location, but then OpenQuake's spherical distances
differ from our planar RD distances by up to a few tenths of a per cent, which alone moves hazard
by about 1 %. ``mode="peer"`` instead maps RD metres with an **azimuthal equidistant projection
onto OpenQuake's sphere**, centred on the exposure: distances between points of the region are
then the planar distances to better than 1e-4 (relative), so both engines solve the same
problem. The RD grid is first rotated by the meridian convergence at the centre (a rotation keeps
distances), so the lon/lat differ from the true positions only by OpenQuake's sphere against the
WGS84 ellipsoid (up to 0.3 % of the distance from the centre, about 100 m at 30 km); use "peer"
for comparisons and "geodetic" for maps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import pandas as pd

NRML_NS = "http://openquake.org/xmlns/nrml/0.5"
#: Source models are written in NRML 0.4, which allows a flat list of sources (0.5 needs source groups).
NRML_NS_SOURCES = "http://openquake.org/xmlns/nrml/0.4"
GML_NS = "http://www.opengis.net/gml"
#: OpenQuake's Earth radius for geodetic distances [km] (hazardlib.geo.geodetic.EARTH_RADIUS).
OQ_EARTH_RADIUS_KM = 6371.0
#: Tectonic region type of the induced-seismicity GSIMs in OpenQuake.
TRT = "Induced"


# ------------------------------------------------------------------------------------------
# coordinates
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LonLatMapping:
    """RD New metres -> lon/lat [deg] for OpenQuake (see the module docstring)."""

    mode: str
    x0: float = 0.0
    y0: float = 0.0
    lon0: float = 0.0
    lat0: float = 0.0
    grid_azimuth_deg: float = 0.0  # true azimuth of RD grid north at the centre (meridian convergence)

    @classmethod
    def for_points(cls, x: np.ndarray, y: np.ndarray, mode: str = "peer") -> "LonLatMapping":
        if mode not in ("peer", "geodetic"):
            raise ValueError(f"mode must be 'peer' or 'geodetic', got {mode!r}")
        x0 = float(0.5 * (np.min(x) + np.max(x)))
        y0 = float(0.5 * (np.min(y) + np.max(y)))
        lon, lat = _rd_to_wgs84(np.array([x0, x0]), np.array([y0, y0 + 1000.0]))
        p1, p2, dl = np.radians(lat[0]), np.radians(lat[1]), np.radians(lon[1] - lon[0])
        az = math.degrees(math.atan2(math.sin(dl) * math.cos(p2), math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)))
        return cls(mode, x0, y0, float(lon[0]), float(lat[0]), az)

    def __call__(self, x, y) -> tuple[np.ndarray, np.ndarray]:
        x = np.asarray(x, float)
        y = np.asarray(y, float)
        if self.mode == "geodetic":
            return _rd_to_wgs84(x, y)
        a = math.radians(self.grid_azimuth_deg)  # rotate grid north onto true north (keeps distances)
        dx, dy = x - self.x0, y - self.y0
        east = dx * math.cos(a) + dy * math.sin(a)
        north = -dx * math.sin(a) + dy * math.cos(a)
        return aeqd_inverse(east, north, self.lon0, self.lat0, OQ_EARTH_RADIUS_KM * 1000.0)


def _rd_to_wgs84(x, y):
    from hra.inputs.sites import rd_to_wgs84

    return rd_to_wgs84(x, y)


def aeqd_inverse(dx_m, dy_m, lon0: float, lat0: float, radius_m: float) -> tuple[np.ndarray, np.ndarray]:
    """Inverse azimuthal equidistant projection on a sphere (Snyder 1987, *Map Projections: A Working
    Manual*, USGS Professional Paper 1395, chapter 25, spherical formulas).

    Parameters
    ----------
    dx_m, dy_m : easting/northing from the centre. [m]
    lon0, lat0 : centre. [deg]
    radius_m : sphere radius. [m]

    Returns
    -------
    lon, lat [deg]; the great-circle distance from the centre equals hypot(dx, dy) exactly.
    """
    dx = np.asarray(dx_m, float)
    dy = np.asarray(dy_m, float)
    rho = np.hypot(dx, dy)
    c = rho / radius_m
    phi0, lam0 = math.radians(lat0), math.radians(lon0)
    with np.errstate(invalid="ignore", divide="ignore"):
        sin_c, cos_c = np.sin(c), np.cos(c)
        lat = np.where(rho > 0, np.arcsin(cos_c * math.sin(phi0) + dy * sin_c * math.cos(phi0) / np.where(rho > 0, rho, 1.0)), phi0)
        lon = lam0 + np.arctan2(dx * sin_c, rho * math.cos(phi0) * cos_c - dy * math.sin(phi0) * sin_c)
    return np.degrees(lon), np.degrees(lat)


def haversine_km(lon1, lat1, lon2, lat2, radius_km: float = OQ_EARTH_RADIUS_KM) -> np.ndarray:
    """Great-circle distance on a sphere (the formula OpenQuake uses). [km]"""
    lon1, lat1, lon2, lat2 = (np.radians(np.asarray(v, float)) for v in (lon1, lat1, lon2, lat2))
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * radius_km * np.arcsin(np.sqrt(a))


# ------------------------------------------------------------------------------------------
# sources
# ------------------------------------------------------------------------------------------


def gr_a_value(rate_m_min, b_value: float, m_min: float, m_max: float) -> np.ndarray:
    """OpenQuake truncated-GR a-value giving ``rate_m_min`` events/yr in [m_min, m_max]. [-]"""
    norm = 10.0 ** (-b_value * m_min) - 10.0 ** (-b_value * m_max)
    with np.errstate(divide="ignore"):
        return np.log10(np.asarray(rate_m_min, float)) - math.log10(norm)


def _nrml(body: str, ns: str = NRML_NS) -> str:
    return (f'<?xml version="1.0" encoding="utf-8"?>\n<nrml xmlns={quoteattr(ns)} xmlns:gml={quoteattr(GML_NS)}>\n'
            f"{body}</nrml>\n")


def nodal_plane_strikes(rupture_strike: tuple[float, float] | None, n: int = 5) -> list[tuple[float, float]]:
    """(probability, strike [degree in [0, 360)]) of the nodal planes for a strike ~ N(mean, sd^2).

    ``n`` Gauss-Hermite nodes ``mean + sd z_i`` with their weights (probabilities rounded to 6
    decimals, the last one taking the remainder so that they sum to 1 exactly, as OpenQuake
    requires); ``None`` (no strike model) or sd 0: one plane, strike 0 for ``None`` (the former export).
    """
    if rupture_strike is None:
        return [(1.0, 0.0)]
    mean, sd = (float(v) for v in rupture_strike)
    if sd <= 0.0:
        return [(1.0, mean % 360.0)]
    from numpy.polynomial.hermite_e import hermegauss

    z, w = hermegauss(n)
    p = np.round(w / w.sum(), 6)
    p[n // 2] = 1.0 - (p.sum() - p[n // 2])
    return [(float(pi), float((mean + sd * zi) % 360.0)) for pi, zi in zip(p, z)]


def source_model_xml(lon: np.ndarray, lat: np.ndarray, rate: np.ndarray, b_value: float, m_min: float, m_max: float,
                     depth=3.0, name: str = "rate grid", msr: str = "WC1994", upper_depth_km: float = 0.0,
                     lower_depth_km: float = 20.0, ids: Sequence[str] | None = None,
                     nodal_planes: Sequence[tuple[float, float]] = ((1.0, 0.0),)) -> str:
    """NRML 0.4 source model: one point source per cell with rate > 0.

    Parameters
    ----------
    lon, lat : cell centres. [deg]
    rate : annual rate of M >= m_min per cell. [yr^-1]
    b_value, m_min, m_max : truncated GR. [-]
    depth : hypocentral depth [km] or [(depth_km, weight), ...].
    nodal_planes : (probability, strike [degree]) of vertical strike-slip planes
        (:func:`nodal_plane_strikes`: the discretised strike model).
    """
    depths = [(float(depth), 1.0)] if np.isscalar(depth) else [(float(d), float(w)) for d, w in depth]
    if any(d < upper_depth_km or d > lower_depth_km for d, _ in depths):
        raise ValueError("hypocentral depths must lie between the upper and lower seismogenic depths")
    a = gr_a_value(rate, b_value, m_min, m_max)
    hypo = "".join(f'<hypoDepth probability="{w:.10g}" depth="{d:.6g}"/>' for d, w in depths)
    planes = "".join(f'<nodalPlane probability="{p:.10g}" strike="{st:.6f}" dip="90.0" rake="0.0"/>'
                     for p, st in nodal_planes)
    parts = [f"<sourceModel name={quoteattr(name)}>\n"]
    for i in np.flatnonzero(np.asarray(rate) > 0):
        sid = ids[i] if ids is not None else f"c{i}"
        parts.append(
            f'<pointSource id={quoteattr(str(sid))} name="cell {i}" tectonicRegion="{TRT}">'
            f'<pointGeometry><gml:Point><gml:pos>{lon[i]:.8f} {lat[i]:.8f}</gml:pos></gml:Point>'
            f"<upperSeismoDepth>{upper_depth_km:g}</upperSeismoDepth><lowerSeismoDepth>{lower_depth_km:g}</lowerSeismoDepth>"
            f"</pointGeometry><magScaleRel>{msr}</magScaleRel><ruptAspectRatio>1.0</ruptAspectRatio>"
            f'<truncGutenbergRichterMFD aValue="{a[i]:.10f}" bValue="{b_value:.6g}" minMag="{m_min:.6g}" maxMag="{m_max:.6g}"/>'
            f'<nodalPlaneDist>{planes}</nodalPlaneDist>'
            f"<hypoDepthDist>{hypo}</hypoDepthDist></pointSource>\n")
    parts.append("</sourceModel>\n")
    return _nrml("".join(parts), NRML_NS_SOURCES)


def source_model_logic_tree_xml(branches: Sequence[tuple[str, str, float]]) -> str:
    """One ``sourceModel`` branch set: [(branch id, file name, weight), ...] (weights sum to 1)."""
    w = sum(b[2] for b in branches)
    if abs(w - 1.0) > 1e-6:
        raise ValueError(f"source-model branch weights sum to {w}, not 1")
    items = "".join(f'<logicTreeBranch branchID={quoteattr(bid)}><uncertaintyModel>{escape(f)}</uncertaintyModel>'
                    f"<uncertaintyWeight>{wt:.12g}</uncertaintyWeight></logicTreeBranch>\n" for bid, f, wt in branches)
    return _nrml(f'<logicTree logicTreeID="smlt"><logicTreeBranchSet uncertaintyType="sourceModel" branchSetID="bs_src">\n'
                 f"{items}</logicTreeBranchSet></logicTree>\n")


def gsim_logic_tree_xml(gsim: str = "DostEtAl2004BommerAdaptation", trt: str = TRT) -> str:
    """GSIM logic tree with a single GSIM for ``trt`` (a class name, or ``[Class]\\nkey = value``)."""
    return _nrml(f'<logicTree logicTreeID="gmlt"><logicTreeBranchSet uncertaintyType="gmpeModel" branchSetID="bs_gm" '
                 f"applyToTectonicRegionType={quoteattr(trt)}>\n<logicTreeBranch branchID=\"gm1\"><uncertaintyModel>"
                 f"{escape(gsim)}</uncertaintyModel><uncertaintyWeight>1.0</uncertaintyWeight></logicTreeBranch>\n"
                 "</logicTreeBranchSet></logicTree>\n")


# ------------------------------------------------------------------------------------------
# exposure, fragility, consequences
# ------------------------------------------------------------------------------------------


def exposure_table(ids, lon, lat, typology_names: Sequence[str], typology_index: np.ndarray, typology_prob: np.ndarray,
                   population=None, municipality=None) -> pd.DataFrame:
    """Asset table: one row per (building, typology candidate) with number = probability."""
    ids = np.asarray(ids, dtype=str)
    n, J = typology_index.shape
    pop = np.ones(n) if population is None else np.where(np.isfinite(population), population, 1.0)
    muni = np.full(n, "", dtype=object) if municipality is None else np.asarray(municipality, dtype=object)
    rows = []
    for j in range(J):
        ok = (typology_index[:, j] >= 0) & (typology_prob[:, j] > 0)
        idx = np.flatnonzero(ok)
        rows.append(pd.DataFrame({
            "id": [f"{ids[i]}~{j}" for i in idx], "lon": np.round(lon[idx], 8), "lat": np.round(lat[idx], 8),
            "taxonomy": [typology_names[t] for t in typology_index[idx, j]], "number": typology_prob[idx, j],
            "structural": typology_prob[idx, j], "night": pop[idx] * typology_prob[idx, j],
            "building": ids[idx], "municipality": [str(m).replace(",", " ") or "unknown" for m in muni[idx]],
        }))
    df = pd.concat(rows, ignore_index=True)
    return df.sort_values("id", kind="stable").reset_index(drop=True)


def exposure_xml(csv_name: str = "exposure.csv", description: str = "groningen-hra exposure") -> str:
    """NRML exposure model pointing at the asset CSV (cost type ``structural`` per asset)."""
    return _nrml(
        '<exposureModel id="hra" category="buildings" taxonomySource="groningen-hra typologies">\n'
        f"<description>{escape(description)}</description>\n"
        '<conversions><costTypes><costType name="structural" type="per_asset" unit="EUR"/></costTypes></conversions>\n'
        "<occupancyPeriods>night</occupancyPeriods>\n<tagNames>building municipality</tagNames>\n"
        f"<assets>{escape(csv_name)}</assets>\n</exposureModel>\n")


def lognormal_mean_std(median, beta) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of a lognormal variable with median ``median`` and log-sd ``beta``.

    OpenQuake's continuous ``logncdf`` fragility takes these (pitfall P8):
    ``mean = median exp(beta^2 / 2)``, ``stddev = mean sqrt(exp(beta^2) - 1)``.
    """
    med = np.asarray(median, float)
    b = np.asarray(beta, float)
    mean = med * np.exp(0.5 * b**2)
    return mean, mean * np.sqrt(np.expm1(b**2))


def fragility_xml(fragility, branch: int = 0, min_iml: float = 1e-4, max_iml: float = 20.0) -> str:
    """NRML continuous fragility model of one fragility branch (limit states = our collapse states)."""
    states = " ".join(fragility.states)
    parts = [f'<fragilityModel id="hra-{escape(fragility.name)}" assetCategory="buildings" lossCategory="structural">\n'
             f"<description>groningen-hra fragility {escape(fragility.name)}, branch {branch}</description>\n"
             f"<limitStates>{states}</limitStates>\n"]
    for t, typ in enumerate(fragility.typologies):
        mean, std = lognormal_mean_std(fragility.median_g[t, branch], fragility.beta[t, branch])
        params = "".join(f'<params ls="{ls}" mean="{m:.10g}" stddev="{s:.10g}"/>' for ls, m, s in zip(fragility.states, mean, std))
        parts.append(f'<fragilityFunction id={quoteattr(typ)} format="continuous" shape="logncdf">'
                     f'<imls imt="{fragility.imt}" noDamageLimit="0.0" minIML="{min_iml:g}" maxIML="{max_iml:g}"/>{params}'
                     "</fragilityFunction>\n")
    parts.append("</fragilityModel>\n")
    return _nrml("".join(parts))


def consequence_table(fragility, consequence_branch: int = 0) -> pd.DataFrame:
    """Consequences per taxonomy and damage state: ``collapsed`` (1 in every state) and ``fatalities``
    (death probability inside per state, our consequence branch)."""
    rows = []
    for t, typ in enumerate(fragility.typologies):
        rows.append({"risk_id": typ, "consequence": "collapsed", "peril": "groundshaking",
                     **{ls: 1.0 for ls in fragility.states}})
        rows.append({"risk_id": typ, "consequence": "fatalities", "peril": "groundshaking",
                     **{ls: float(fragility.p_death_inside[t, consequence_branch, k]) for k, ls in enumerate(fragility.states)}})
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------------------
# jobs
# ------------------------------------------------------------------------------------------


def job_file(description: str, calculation_mode: str, imtls: Mapping[str, Sequence[float]], *,
             random_seed: int = 42, location: Sequence[str] = ("exposure_file = exposure.xml",),
             mfd_bin_width: float = 0.01, rupture_mesh_spacing: float = 5.0, number_of_logic_tree_samples: int = 0,
             truncation_level: float = 99.0, investigation_time: float = 1.0, maximum_distance_km: float = 200.0,
             level_format: str = ".6g", extra: Sequence[str] = ()) -> str:
    """The text of an OpenQuake job file: the sections every job of the project shares.

    ``[general]``, the sites (``location``: an ``[exposure]`` file, or e.g. ``[geometry] sites_csv``),
    ``[site_params]`` (reference rock, Vs30 760 m/s), ``[erf]``, ``[logic_tree]`` (the two logic-tree
    files written by :func:`source_model_logic_tree_xml` and :func:`gsim_logic_tree_xml`),
    ``[calculation]`` with the intensity measure levels ``imtls`` [g], then the ``extra`` lines
    (e.g. ``[fragility]`` and ``[outputs]`` sections). :func:`job_ini` and the benchmark jobs use it.
    """
    section = "[exposure]" if any(x.startswith("exposure_file") for x in location) else "[geometry]"
    levels = ", ".join(f'"{imt}": [{", ".join(format(v, level_format) for v in lv)}]' for imt, lv in imtls.items())
    lines = [
        "[general]", f"description = {description}", f"calculation_mode = {calculation_mode}",
        f"random_seed = {random_seed}", "",
        section, *location, "",
        "[site_params]", "reference_vs30_type = measured", "reference_vs30_value = 760.0",
        "reference_depth_to_2pt5km_per_sec = 5.0", "reference_depth_to_1pt0km_per_sec = 100.0", "",
        "[erf]", f"width_of_mfd_bin = {mfd_bin_width:g}", f"rupture_mesh_spacing = {float(rupture_mesh_spacing)!r}",
        "area_source_discretization = 10.0", "",
        "[logic_tree]", "source_model_logic_tree_file = source_model_logic_tree.xml",
        "gsim_logic_tree_file = gsim_logic_tree.xml", f"number_of_logic_tree_samples = {number_of_logic_tree_samples}", "",
        "[calculation]", f"truncation_level = {truncation_level:g}", f"investigation_time = {investigation_time:g}",
        f"maximum_distance = {maximum_distance_km:g}",
        f"intensity_measure_types_and_levels = {{{levels}}}", "",
        *extra,
    ]
    return "\n".join(lines)


def job_ini(kind: str, imt: str, levels_g: Sequence[float], *, description: str = "groningen-hra peer",
            mfd_bin_width: float = 0.01, maximum_distance_km: float = 200.0, truncation_level: float = 99.0,
            ses_seed: int = 42, investigation_time: float = 1.0, ses_per_logic_tree_path: int = 10_000,
            number_of_logic_tree_samples: int = 0, correlation: str | None = None,
            minimum_intensity: float | None = None) -> str:
    """OpenQuake job file text for ``classical_damage`` or ``event_based_damage``.

    Risk investigation time 1 yr, so OpenQuake's per-asset damage probabilities are annual.
    ``correlation="JB2009"`` adds Jayaram & Baker (2009) within-event correlation (no Vs30
    clustering) to the event-based job.
    """
    if kind not in ("classical_damage", "event_based_damage"):
        raise ValueError(f"kind must be classical_damage or event_based_damage, got {kind!r}")
    lines = [
        "[fragility]", "structural_fragility_file = fragility.xml", "",
        "[risk_calculation]", "risk_investigation_time = 1", "time_event = night", "",
        "[outputs]", "mean = true", "individual_rlzs = true", "",
    ]
    if kind == "event_based_damage":  # classical_damage 3.26 fails at the end when consequences are given
        lines += ["[consequence]", "consequence_file = {'taxonomy': 'consequences.csv'}", ""]
        lines += ["[event_based]", f"ses_seed = {ses_seed}", f"ses_per_logic_tree_path = {ses_per_logic_tree_path}"]
        if correlation:
            lines += [f"ground_motion_correlation_model = {correlation}",
                      'ground_motion_correlation_params = {"vs30_clustering": False}']
        if minimum_intensity:
            lines += [f'minimum_intensity = {{"{imt}": {minimum_intensity:g}}}']
        lines.append("")
    return job_file(f"{description} ({kind})", kind, {imt: levels_g}, mfd_bin_width=mfd_bin_width,
                    number_of_logic_tree_samples=number_of_logic_tree_samples, truncation_level=truncation_level,
                    investigation_time=investigation_time, maximum_distance_km=maximum_distance_km, extra=lines)


@dataclass
class ExportedInputs:
    directory: Path
    files: dict[str, Path]
    assets: pd.DataFrame
    mapping: LonLatMapping
    source_branches: list[tuple[str, str, float, dict]]


def export_openquake(prep, directory, *, year: int | None = None, mode: str = "peer", gsim: str = "DostEtAl2004BommerAdaptation",
                     fragility_branch: int = 0, consequence_branch: int = 0, levels_g: Sequence[float] | None = None,
                     **job_options) -> ExportedInputs:
    """Write the OpenQuake inputs of a prepared run (:func:`hra.chain.prepare`) into ``directory``.

    Parameters
    ----------
    prep : the prepared run (rate grid, magnitude nodes, fragility, buildings).
    directory : output directory (created).
    year : calendar year whose rates are exported (default: the first).
    mode : "peer" (planar-distance-preserving lon/lat) or "geodetic" (true WGS84).
    gsim : GSIM of the gsim logic tree (OpenQuake class name or a plug-in from :mod:`hra.openquake`).
    fragility_branch, consequence_branch : branches of our fragility/consequence nodes to export
        (OpenQuake has no fragility logic tree).
    levels_g : hazard IMLs [g] (default 100 log-spaced levels from 1e-3 to 5 g: fine enough that
        classical_damage's discretisation bias stays well below 1 %, pitfall P10; OpenQuake's
        classical cost grows with the number of levels).
    **job_options : passed to :func:`job_ini`.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    cfg = prep.cfg
    from hra.chain import require_rate_grid

    require_rate_grid(cfg, "the OpenQuake export")
    rates = prep.rates
    b = prep.buildings
    years = list(int(y) for y in rates.years)
    year = years[0] if year is None else int(year)
    iy = years.index(year)
    mapping = LonLatMapping.for_points(b.x, b.y, mode)
    lon_c, lat_c = mapping(rates.x, rates.y)
    files: dict[str, Path] = {}
    branches = []
    depth = cfg.source.depth_km
    # a strike model (finite ruptures of GMM V7/V6): its Gaussian discretised into nodal planes
    strike = getattr(prep.gmm, "rupture_strike", None) if getattr(prep.gmm, "azimuth_nodes_deg", None) is not None else None
    planes = nodal_plane_strikes(strike)
    bvals = prep.b_node.values or (1.0,)
    for s, (slabel, sw) in enumerate(zip(rates.branches, rates.branch_weights)):
        for ib, (blabel, bw) in enumerate(zip(prep.b_node.labels, prep.b_node.weights)):
            for ix, (xlabel, xw) in enumerate(zip(prep.m_max_node.labels, prep.m_max_node.weights)):
                name = f"sources_s{s}_b{ib}_x{ix}.xml"
                text = source_model_xml(lon_c, lat_c, rates.rate[:, iy, s], float(bvals[ib]), cfg.source.m_min,
                                        float(prep.m_max_node.values[ix]), depth,
                                        name=f"{slabel} {blabel} {xlabel} ({year})", nodal_planes=planes)
                (d / name).write_text(text)
                files[name] = d / name
                branches.append((f"s{s}_b{ib}_x{ix}", name, float(sw * bw * xw),
                                 {"source": s, "b_value": ib, "m_max": ix}))
    tot = sum(br[2] for br in branches)
    branches = [(a, f, w / tot, meta) for a, f, w, meta in branches]
    (d / "source_model_logic_tree.xml").write_text(source_model_logic_tree_xml([(a, f, w) for a, f, w, _ in branches]))
    (d / "gsim_logic_tree.xml").write_text(gsim_logic_tree_xml(gsim))
    lon_b, lat_b = mapping(b.x, b.y)
    fr = prep.fragility
    pop = None
    try:
        from hra.eventbased.risk import _population

        pop = _population(prep)
    except Exception:  # pragma: no cover - exposure without population
        pop = None
    assets = exposure_table(b.ids, lon_b, lat_b, fr.typologies, b.typology_index, b.typology_prob, pop, b.municipality)
    assets.to_csv(d / "exposure.csv", index=False, float_format="%.10g")
    (d / "exposure.xml").write_text(exposure_xml("exposure.csv"))
    (d / "fragility.xml").write_text(fragility_xml(fr, fragility_branch))
    consequence_table(fr, consequence_branch).to_csv(d / "consequences.csv", index=False, float_format="%.10g")
    levels = np.geomspace(1e-3, 5.0, 100) if levels_g is None else np.asarray(levels_g, float)
    for kind in ("classical_damage", "event_based_damage"):
        p = d / f"job_{kind}.ini"
        p.write_text(job_ini(kind, fr.imt, levels, **job_options))
        files[p.name] = p
    for nm in ("source_model_logic_tree.xml", "gsim_logic_tree.xml", "exposure.csv", "exposure.xml", "fragility.xml",
               "consequences.csv"):
        files[nm] = d / nm
    return ExportedInputs(d, files, assets, mapping, branches)
