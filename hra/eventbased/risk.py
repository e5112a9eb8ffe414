"""Event-based risk: joint simulation of events, ground-motion fields, collapses and deaths.

The integration engine (:mod:`hra.integration.engine`) gives each building's marginal LPR without noise.
Joint simulation gives what marginals cannot: how many people may die in **one** earthquake
(group risk, F-N curves), collapses per year per municipality, and event sets that other tools
can replay. Data flow:

1. :func:`hra.eventbased.catalogue.event_set_for`: catalogues per calendar year and logic-tree realisation
   (``n_years_simulated`` replica years per calendar year, split over the realisations);
2. per event, :mod:`hra.eventbased.gmf`: between-event residual, spatially correlated within-event field,
   site terms shared per zone, and the surface IM at every building within the event's cut-off
   distance (below);
3. per event and building (:func:`hra.eventbased.kernels.event_damage`):

   * **conditional expectation** (default for the rates): given the realised IM, P(CS >= k | IM)
     from the lognormal fragility (mixture over the building's typology candidates), the death
     probability of a person inside / outside, and the expected deaths
     ``n_in P_die,in + n_out P_die,out``;
   * **sampling** (default for the F-N curve): the collapse state drawn from P(CS = k | IM) with
     the building's typology (drawn once per realisation, as the integration engine's Monte-Carlo
     realisations do, or per event for a typology *mixture*), and the deaths inside and outside
     as Poisson variates with means ``n_in Pd_in,k`` and ``n_out Pd_out,k`` (exact if the number
     of people present is Poisson; their mean is all the exposure gives).

4. reductions: per building and year the annual rates (``sum_e w_e x_e``, ``w_e`` = the annual
   rate each event stands for), their Monte-Carlo standard errors (compound Poisson:
   ``SE^2 = sum_e w_e^2 x_e^2``), the F-N curve with bootstrap bands, per-municipality
   aggregates and the top events.

Ground-motion models simulated period by period (GMM V7/V6: 10 correlated periods, non-linear
AF per period, one finite rupture per event; :mod:`hra.eventbased.groningen`) take a second path
per event (:func:`_run_chunk_spectral`): the adapter's cut-off, the buildings within reach and
their correlated unit normals, the adapter's kernel for ln AvgSa and ln PGA, then the same damage
code. A fragility model with a direct outside-death term on a second IM (FCM chimneys on PGA)
adds ``(1 - p) P_direct(PGA)`` to the LPR and Poisson chimney deaths outside, as
:func:`hra.integration.engine.death_tables` does; only models whose adapter gives both IMs jointly accept it.

Occupancy: ``population_inside`` (persons inside on average) of the exposure when given: that
many people inside, and ``population_inside (1 - p) / p`` passers-by outside next to the building
(``p`` = ``[fragility] presence_inside``; the same occupants spend the fraction 1 - p near the
building). Without the column: one occupant, inside with probability ``p`` and outside otherwise,
which makes the expected deaths per event equal to the LPR term of docs/lpr.md §1.

The event-based LPR estimator of a building is ``sum_e w_e (p P_die,in + (1 - p) P_die,out)``;
its expectation is the integration engine's LPR of the same realisations exactly when the model's
event split reproduces its marginal mixture (:mod:`hra.eventbased.adapters`), which the
consistency tests check building by building.

**Cut-off.** A building-event pair is skipped when even a ``cutoff_sigma`` within-event and site
residual (given the event's realised between-event residual) cannot lift the surface IM above
``min_t,k theta_t,k exp(-cutoff_sigma beta_t,k)``, where every collapse probability is below
Phi(-cutoff_sigma) (3e-5 for the default 4). The neglected contribution is of the order of
Phi(-4)^2 per pair at the edge and far less inside, negligible against the Monte-Carlo error;
``cutoff_sigma = inf`` switches the cut-off off (the ``[source] max_distance_km`` still applies,
as in the integration engine).

**Group-risk reference.** Dutch external-safety policy compares F-N curves with the orientation
value (oriëntatiewaarde) for group risk of the *Besluit externe veiligheid inrichtingen* (Bevi,
2004): ``F(N) = 1e-3 / N^2`` per year for ``N >= 10`` deaths (1e-5/yr for 10, 1e-7/yr for 100
deaths), per establishment. There is no legal group-risk norm for Groningen earthquakes (the
Meijdam committee, 2015, advised that group risk be considered but set no norm); the line is a
reference only, configurable through ``group_risk_reference`` (coefficient, exponent, N_min).

Random streams: catalogues from ``SeedSequence(seed, spawn_key=(PURPOSE_EVENTS, year, r))``;
per-event ground-motion and damage draws are counter based on a key derived from
``SeedSequence(seed, spawn_key=(PURPOSE_GMF, year, r))`` and the event's row
(:mod:`hra.eventbased.kernels`); typology draws of realisation ``r`` use the integration engine's
stream (``PURPOSE_TYPOLOGY``, counter ``r``); bootstrap draws use
``SeedSequence(seed, spawn_key=(PURPOSE_BOOTSTRAP, year))``. Per-event results are identical
for any chunking; per-building sums are equal to rounding (sums are grouped by chunk).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Optional, Sequence, Union

import numpy as np
import xarray as xr
from pydantic import ConfigDict, Field, ValidationError, model_validator

from hra.config import EventBasedSection
from hra.core.validation import format_validation_error
from hra.eventbased import kernels as ek
from hra.integration import kernels
from hra.eventbased.catalogue import REAL_FACTOR, EventSet, event_set_for
from hra.eventbased.gmf import BuildingGrid, FieldGrid
from hra.eventbased import adapters as es
from hra.core.logictree import PURPOSE_BOOTSTRAP, PURPOSE_GMF, PURPOSE_TYPOLOGY, Realisations
from hra.core.random import seed_key

log = logging.getLogger("hra")

#: Default F-N thresholds N (deaths).
FN_THRESHOLDS = (1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 500, 1000)
#: Pairs whose ln IM lies more than this many fragility betas below every median are skipped:
#: Phi(-8.3) = 5e-17, below the rounding of the sums.
NEGLIGIBLE_SIGMA = 8.3
#: Bevi orientation value of group risk: F(N) = 1e-3 / N^2 per year for N >= 10.
BEVI_GROUP_RISK = (1e-3, 2.0, 10)


class EventRiskError(ValueError):
    """An input combination the event-based calculation cannot run; says what to change."""


class EventRiskOptions(EventBasedSection):
    """Options of an event-based run (defaults in brackets).

    Attributes
    ----------
    n_years_simulated
        Simulated (replica) years per calendar year over all realisations [10,000]. [yr]
    realisations
        Logic-tree realisations: an int (Monte-Carlo draws, the integration engine's streams),
        ``"all"`` (enumeration) or an explicit :class:`hra.core.logictree.Realisations` [1].
    seed
        Seed of every stream [``[run] seed``].
    years
        Calendar years [all of the run].
    location, depth
        Epicentres uniform in the cell or at its centre ["uniform"]; depth [km] or
        [(depth_km, weight), ...] [``[source] depth_km``].
    correlation_range_km
        Range of the exponential within-event correlation exp(-3 d / range) [8.5, Jayaram &
        Baker 2009 for PGA]; 0 = independent within-event residuals. [km]
    grid_spacing_m
        Node spacing of the correlated field [range / 17]. [m]
    site_term
        "zone": one site term per (event, zone) ["zone"]; "building": independent per building.
    cutoff_sigma
        Cut-off of building-event pairs (module docstring) [4.0]; ``inf`` = none.
    rates
        Per-building rates by "expectation" (conditional on the ground motion) or "sampling".
    fn_from
        Deaths per event for the F-N curve: "sampling" (integer deaths) or "expectation".
    fn_thresholds
        N values of the F-N curve [1 .. 1000].
    bootstrap, confidence
        Bootstrap replicas over simulated years [500] and band [0.95] of the F-N curve.
    top_events
        Events reported per year, by deaths then collapses [20].
    event_chunk
        Events per task chunk [2000] (never spans two (year, realisation) catalogues).
    tasks_per_worker
        Tasks per dask worker when running in parallel [2].
    keep_event_table
        Store the per-event table on dim ``event`` [True].
    group_risk_reference
        (C, alpha, N_min) of the reference line F = C / N^alpha [Bevi: 1e-3, 2, 10].
    distance_nodes
        Log-spaced hypocentral-distance nodes of the median tables [512].
    direct_nodes_max
        Events that reach at most this many field nodes get their field by Cholesky on those
        nodes, larger ones by FFT on the window [128] (:mod:`hra.eventbased.gmf`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    # The fields of [event_based] (hra.config.EventBasedSection), with the types a Python caller may
    # also give, plus the options that only the Python API sets.
    realisations: Union[Literal["all"], Annotated[int, Field(ge=1)], Realisations] = 1
    years: Optional[tuple[int, ...]] = None
    fn_thresholds: tuple[float, ...] = FN_THRESHOLDS
    depth: Any = None
    tasks_per_worker: int = Field(2, ge=1)
    group_risk_reference: tuple[float, float, float] = BEVI_GROUP_RISK
    distance_nodes: int = Field(512, ge=2)
    direct_nodes_max: int = Field(128, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _api_names(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            if "n_years_simulated" in data:  # the Python name of [event_based] years_simulated
                data["years_simulated"] = data.pop("n_years_simulated")
            if data.get("fn_thresholds", FN_THRESHOLDS) is None:
                data.pop("fn_thresholds")
        return data

    @property
    def n_years_simulated(self) -> int:
        """Simulated (replica) years per calendar year over all realisations. [yr]"""
        return self.years_simulated

    @classmethod
    def from_config(cls, cfg, **overrides) -> "EventRiskOptions":
        """Options from the ``[event_based]`` section of a config (:class:`hra.config.EventBasedSection`);
        ``overrides`` that are not None win (``years_simulated`` or any attribute name)."""
        eb = getattr(cfg, "event_based", None)
        kw: dict[str, Any] = {} if eb is None else eb.model_dump(exclude={"output"})
        kw.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(kw)
        except ValidationError as exc:
            raise EventRiskError(format_validation_error(exc, "invalid event-based options:", one_line=True)) from None


# ------------------------------------------------------------------------------------------
# static data shared by all chunks
# ------------------------------------------------------------------------------------------


@dataclass
class EventStatic:
    """Everything the chunk function needs besides the events (sent once to every worker)."""

    gmm: Any
    imt: str
    # distance grid of the medians
    r_grid: np.ndarray
    ln_r0: float
    dln: float
    r_max_km: float
    # per realisation
    real_gmm_combo: np.ndarray  # (R,)
    real_frag: np.ndarray  # (R,)
    real_cons: np.ndarray  # (R,)
    gmm_branches: list  # combo -> branch dict
    site_af: dict  # combo -> (s, l)
    site_sd: dict
    site_bound: dict  # combo -> (l,) monotone upper bound of ln IM + n sd over sites
    ln_y0: float
    dly: float
    identity: bool
    site_zone: np.ndarray  # (s,)
    n_zones: int
    # fragility
    ln_theta: np.ndarray  # (t, f, k)
    beta: np.ndarray
    pd_in: np.ndarray  # (t, c, k)
    pd_out: np.ndarray
    presence: float
    ln_im_min: np.ndarray  # (f,)
    ln_im_negligible: np.ndarray  # (f,)
    # buildings
    bx: np.ndarray
    by: np.ndarray
    bsite: np.ndarray
    bkey: np.ndarray
    typ_idx: np.ndarray
    typ_prob: np.ndarray
    n_in: np.ndarray
    n_out: np.ndarray
    bgrid: BuildingGrid
    # options
    n_years: int
    correlated: bool
    shared_site_term: bool
    epistemic_typology: bool
    cutoff_sigma: float
    typology_key: np.uint64
    direct_max: int = 128
    # models simulated period by period (GMM V6/V7: hra.eventbased.groningen) and the engine's
    # treatment of magnitude-dependent median weights (hra.chain.MedianMap)
    spectral: Any = None
    median_map: Any = None
    median_mode: str = "realisation"
    # direct outside-death term on a second IM (chimneys): (t, c) ln medians (-inf: none), betas;
    # (c,) cut-off and negligible levels
    has_direct: bool = False
    d_ln_med: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    d_beta: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    ln_d_min: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ln_d_negligible: np.ndarray = field(default_factory=lambda: np.zeros(0))


def _occupancy(population: np.ndarray, presence: float) -> tuple[np.ndarray, np.ndarray]:
    """Persons inside and outside per building (module docstring)."""
    pop = np.asarray(population, float)
    known = np.isfinite(pop)
    n_in = np.where(known, pop, presence)
    if presence > 0:
        n_out = np.where(known, pop * (1.0 - presence) / presence, 1.0 - presence)
    else:
        n_in = np.where(known, 0.0, 0.0)
        n_out = np.where(known, pop, 1.0)
    return np.ascontiguousarray(n_in), np.ascontiguousarray(n_out)


def _population(prep) -> np.ndarray:
    """population_inside of the run's exposure (plain or EDB layout, read once by
    :func:`hra.inputs.exposure.read_buildings`), aligned with prep.buildings (NaN where unknown)."""
    return np.asarray(prep.buildings.population_inside, dtype=float)


def make_static(prep, events: EventSet, opts: EventRiskOptions, population: np.ndarray | None = None) -> EventStatic:
    """Resolve the model branches of every realisation and lay out the buildings."""
    gmm = prep.gmm
    fr = prep.fragility
    if not es.supports_events(gmm):
        es._adapter(gmm)  # raises with the explanation
    spectral = es.is_spectral(gmm)
    if fr.direct_imt is not None and not spectral:
        raise EventRiskError(f"fragility model {fr.name!r} has a direct outside-death term on {fr.direct_imt}; with "
                             f"ground-motion model {gmm.name!r} the event-based calculation cannot simulate that second IM "
                             "jointly with the first (supported: groningen-v7, groningen-v6)")
    src = prep.cfg.source
    real = events.realisations
    names = [n.name for n in real.nodes]
    # the realisations carry the engine's GMM tree (a magnitude-dependent median node is replaced by
    # virtual branches, or dropped for a per-event mixture: hra.chain.engine_gmm_tree)
    gnames = [n.name for n in gmm.tree.nodes if n.name in names]
    # distinct GMM branch combinations used
    gcols = [names.index(n) for n in gnames]
    gsub = real.index[:, gcols] if gcols else np.zeros((real.n, 0), np.int64)
    combos, inverse = np.unique(gsub, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1).astype(np.int64)
    branches = [{nm: int(c[j]) for j, nm in enumerate(gnames)} for c in combos]

    def col(name):
        return real.index[:, names.index(name)].astype(np.int64) if name in names else np.zeros(real.n, np.int64)

    ln_y = es.default_ln_y_grid()
    zones_of_sites = [z for z, _ in prep.sites]
    uz = sorted(set(zones_of_sites))
    site_zone = np.array([uz.index(z) for z in zones_of_sites], dtype=np.int64)
    site_af, site_sd, bound = {}, {}, {}
    identity = True
    n = float(opts.cutoff_sigma) if np.isfinite(opts.cutoff_sigma) else 0.0
    for u, br in enumerate(branches if not spectral else ()):
        af = np.zeros((len(prep.sites), ln_y.size))
        sd = np.zeros_like(af)
        for s, (zone, wierde) in enumerate(prep.sites):
            st = es.site_terms(gmm, fr.imt, None if gmm.zones is None else int(zone), br, ln_y, wierde)
            if st.identity:
                continue
            identity = False
            af[s] = np.interp(ln_y, st.ln_y, st.ln_af)
            sd[s] = np.interp(ln_y, st.ln_y, st.sd)
        site_af[u], site_sd[u] = af, sd
        bound[u] = np.maximum.accumulate((ln_y[None, :] + af + n * sd).max(axis=0))
    ln_theta = np.log(fr.median_g)
    nsig = opts.cutoff_sigma if np.isfinite(opts.cutoff_sigma) else np.inf
    ln_im_min = (ln_theta - nsig * fr.beta).min(axis=(0, 2)) if np.isfinite(nsig) else np.full(fr.median_g.shape[1], -np.inf)
    b = prep.buildings
    if population is None:
        population = _population(prep)
    n_in, n_out = _occupancy(population, float(fr.presence_inside))
    corr = opts.correlation_range_km > 0
    grid = FieldGrid.for_points(b.x, b.y, opts.correlation_range_km if corr else 1.0,
                                opts.grid_spacing_m if corr else max(opts.grid_spacing_m or 0.0, 1000.0))
    bgrid = BuildingGrid.build(grid, b.x, b.y)
    r_lo = float(min(np.min(np.atleast_1d(_depths(events))), src.depth_km))
    r_grid = np.exp(np.linspace(math.log(r_lo), math.log(src.max_distance_km), opts.distance_nodes))
    median_map = getattr(prep, "median_map", None)
    median_mode = getattr(prep.cfg.ground_motion, "median_weights", "realisation")
    spec = None
    if spectral:
        identity = False
        spec = _spectral_static(prep, events, opts, branches, r_grid, median_map, median_mode)
    has_direct = fr.direct_imt is not None and fr.presence_inside < 1.0
    if has_direct:
        dmed = np.asarray(fr.direct_median_g, float)
        d_ln_med = np.where(dmed > 0, np.log(np.where(dmed > 0, dmed, 1.0)), -np.inf)
        d_beta = np.asarray(fr.direct_beta, float)
        fin = np.isfinite(d_ln_med)
        ln_d_min = (np.where(fin, d_ln_med - (nsig if np.isfinite(nsig) else 0.0) * d_beta, np.inf).min(axis=0)
                    if np.isfinite(nsig) else np.full(d_ln_med.shape[1], -np.inf))
        ln_d_negl = np.where(fin, d_ln_med - NEGLIGIBLE_SIGMA * d_beta, np.inf).min(axis=0)
    else:
        d_ln_med = d_beta = np.zeros((len(fr.typologies), fr.p_death_inside.shape[1]))
        ln_d_min = np.full(fr.p_death_inside.shape[1], np.inf)
        ln_d_negl = np.full(fr.p_death_inside.shape[1], np.inf)

    return EventStatic(
        gmm=gmm, imt=fr.imt, r_grid=r_grid, ln_r0=float(np.log(r_grid[0])), dln=float(np.log(r_grid[1] / r_grid[0])),
        r_max_km=float(src.max_distance_km),
        real_gmm_combo=inverse, real_frag=col("fragility"), real_cons=col("consequence"), gmm_branches=branches,
        site_af=site_af, site_sd=site_sd, site_bound=bound, ln_y0=float(ln_y[0]), dly=float(ln_y[1] - ln_y[0]),
        identity=identity, site_zone=site_zone, n_zones=len(uz),
        ln_theta=np.ascontiguousarray(ln_theta), beta=np.ascontiguousarray(fr.beta),
        pd_in=np.ascontiguousarray(fr.p_death_inside), pd_out=np.ascontiguousarray(fr.p_death_outside),
        presence=float(fr.presence_inside), ln_im_min=ln_im_min,
        ln_im_negligible=(ln_theta - NEGLIGIBLE_SIGMA * fr.beta).min(axis=(0, 2)),
        bx=np.ascontiguousarray(b.x, dtype=float), by=np.ascontiguousarray(b.y, dtype=float),
        bsite=np.ascontiguousarray(prep.site_index, dtype=np.int64), bkey=np.ascontiguousarray(b.keys, dtype=np.uint64),
        typ_idx=np.ascontiguousarray(b.typology_index, dtype=np.int64), typ_prob=np.ascontiguousarray(b.typology_prob),
        n_in=n_in, n_out=n_out, bgrid=bgrid, n_years=int(events.years.size), correlated=corr,
        shared_site_term=opts.site_term == "zone", epistemic_typology=prep.cfg.run.typology_uncertainty == "epistemic",
        cutoff_sigma=float(opts.cutoff_sigma), typology_key=seed_key(events.seed, PURPOSE_TYPOLOGY),
        direct_max=int(opts.direct_nodes_max), spectral=spec, median_map=median_map, median_mode=median_mode,
        has_direct=bool(has_direct), d_ln_med=np.ascontiguousarray(d_ln_med), d_beta=np.ascontiguousarray(d_beta),
        ln_d_min=np.asarray(ln_d_min, float), ln_d_negligible=np.asarray(ln_d_negl, float),
    )


def _spectral_static(prep, events: EventSet, opts: EventRiskOptions, branches: list[dict], r_grid: np.ndarray,
                     median_map, median_mode: str):
    """Tables of a model simulated period by period, for the physical branches the realisations reach."""
    from hra.eventbased.groningen import MAG_STEP, physical_median_branches

    gmm = prep.gmm
    fr = prep.fragility
    m_lo = float(prep.cfg.source.m_min)
    m_hi = float(max(prep.m_max_node.values))
    mgrid = np.arange(m_lo, m_hi + MAG_STEP, MAG_STEP)
    ks: set[int] = set()
    for br in branches:
        if median_map is not None and median_mode == "mixture":
            ks.update(range(median_map.mix.shape[2]))
        else:
            ks.update(int(k) for k in physical_median_branches(gmm, median_map, median_mode, br.get("gmm_median", 0), mgrid))
    sig = {(br.get("gmm_tau", 0), br.get("gmm_phi_ss", 0)) for br in branches}
    return es.spectral_static(gmm, fr.imt, fr.direct_imt if fr.presence_inside < 1.0 else None, prep.sites,
                              (m_lo, m_hi), r_grid, sorted(ks), sorted(sig), opts.site_term)


def _depths(events: EventSet):
    d = events.depth
    if np.isscalar(d):
        return float(d)
    return [float(p[0]) for p in d]


# ------------------------------------------------------------------------------------------
# chunks
# ------------------------------------------------------------------------------------------


def make_chunks(events: EventSet, chunk: int) -> list[dict]:
    """Event chunks, each within one (year, realisation) catalogue, in event-table order."""
    ev = events.events
    years = list(events.years)
    out = []
    if len(ev) == 0:
        return out
    key = ev["year"].to_numpy() * (events.realisations.n + 1) + ev["realisation"].to_numpy()
    bounds = np.flatnonzero(np.diff(key)) + 1
    starts = np.concatenate([[0], bounds])
    ends = np.concatenate([bounds, [len(ev)]])
    rate = events.event_rate()
    for s0, e0 in zip(starts, ends):
        for a in range(s0, e0, chunk):
            sl = slice(a, min(a + chunk, e0))
            year = int(ev["year"].iloc[a])
            out.append(dict(
                start=a, year=year, y_idx=years.index(year), realisation=int(ev["realisation"].iloc[a]),
                row=(ev["event_id"].to_numpy()[sl] % REAL_FACTOR).astype(np.int64),
                magnitude=ev["magnitude"].to_numpy()[sl], x=ev["x"].to_numpy()[sl], y=ev["y"].to_numpy()[sl],
                depth=ev["depth_km"].to_numpy()[sl], w_rate=rate[sl], seed=events.seed,
            ))
    return out


def _typology_draw(st: EventStatic, realisation: int) -> np.ndarray:
    """Candidate index per building for realisation r (the integration engine's draw)."""
    n_b, n_j = st.typ_idx.shape
    out = np.zeros(n_b, dtype=np.int64)
    _draw_candidates(st.typology_key, st.bkey, st.typ_idx, st.typ_prob, int(realisation), out)
    return out


from hra.core._numba import jit  # noqa: E402


@jit
def _draw_candidates(seed_key, bkeys, typ_idx, typ_prob, counter, out):
    for b in range(bkeys.shape[0]):
        nj = 0
        for j in range(typ_idx.shape[1]):
            if typ_idx[b, j] >= 0 and typ_prob[b, j] > 0.0:
                nj += 1
        out[b] = kernels.draw_candidate(seed_key, bkeys[b], counter, typ_prob[b], nj)


def cutoff_distances(st: EventStatic, ln_med: np.ndarray, tau: np.ndarray, phi: np.ndarray, eta: np.ndarray,
                     combo: int, frag: int) -> np.ndarray:
    """Hypocentral cut-off distance per event [km] (0: the event cannot damage anything)."""
    n_e = ln_med.shape[0]
    if not np.isfinite(st.cutoff_sigma):
        return np.full(n_e, st.r_max_km)
    ln_ref_max = ln_med + (tau * eta + st.cutoff_sigma * phi)[:, None]
    ln_y = st.ln_y0 + st.dly * np.arange(st.site_bound[combo].size)
    surf = np.interp(ln_ref_max, ln_y, st.site_bound[combo]) if not st.identity else ln_ref_max
    ok = surf >= st.ln_im_min[frag]
    any_ok = ok.any(axis=1)
    last = ok.shape[1] - 1 - np.argmax(ok[:, ::-1], axis=1)
    r = st.r_grid[np.minimum(last + 1, st.r_grid.size - 1)]
    return np.where(any_ok, np.minimum(r, st.r_max_km), 0.0)


def _chunk_setup(chunk: dict, st: EventStatic):
    """The realisation's branches, the chunk's magnitudes, an empty event table and the event keys."""
    r = chunk["realisation"]
    combo = int(st.real_gmm_combo[r])
    branch = st.gmm_branches[combo]
    mags = np.asarray(chunk["magnitude"], float)
    n_e = mags.size
    ev_out = np.zeros((n_e, ek.N_EVENT_STATS))
    ev_out[:, ek.E_MAX_LN_IM] = -np.inf
    base = seed_key(chunk["seed"], PURPOSE_GMF, chunk["year"], r)
    keys = np.array([ek.event_key(base, int(i)) for i in chunk["row"]], dtype=np.uint64)
    return r, combo, int(st.real_frag[r]), int(st.real_cons[r]), branch, mags, n_e, ev_out, keys


def run_chunk(chunk: dict, st: EventStatic, acc: np.ndarray | None = None) -> dict:
    """Process one chunk of events; accumulates per-building statistics into ``acc`` (b, y, N_STATS)."""
    n_b = st.bx.size
    if acc is None:
        acc = np.zeros((n_b, st.n_years, ek.N_STATS))
    if st.spectral is not None:
        return _run_chunk_spectral(chunk, st, acc)
    r, combo, f, c, branch, mags, n_e, ev_out, keys = _chunk_setup(chunk, st)
    if n_e == 0:
        return {"acc": acc, "events": ev_out, "start": chunk["start"]}
    terms = es.event_terms(st.gmm, st.imt, mags, st.r_grid, branch)
    tau = np.broadcast_to(np.asarray(terms.tau, float), (n_e,))
    phi = np.broadcast_to(np.asarray(terms.phi, float), (n_e,))
    eta = np.empty(n_e)
    ek.event_normals(keys, ek.TAG_ETA, 0, eta)
    if terms.truncation_sigma > 0:
        eta = np.array([ek.truncated_from_normal(z, terms.truncation_sigma) for z in eta])
    r_cut = cutoff_distances(st, terms.ln_median, tau, phi, eta, combo, f)
    ln_theta = np.ascontiguousarray(st.ln_theta[:, f, :])
    beta = np.ascontiguousarray(st.beta[:, f, :])
    pd_in = np.ascontiguousarray(st.pd_in[:, c, :])
    pd_out = np.ascontiguousarray(st.pd_out[:, c, :])
    typ_draw = _typology_draw(st, r) if st.epistemic_typology else np.zeros(n_b, np.int64)
    af, sd = st.site_af[combo], st.site_sd[combo]
    g = st.bgrid
    ncx = g.grid.n_cells[0]
    xi = np.zeros(st.n_zones)
    empty_field = np.zeros((1, 1))
    for e in range(n_e):
        depth = float(chunk["depth"][e])
        rc = float(r_cut[e])
        if rc <= depth:
            continue
        r_epi_m = math.sqrt(rc * rc - depth * depth) * 1000.0
        ex, ey = float(chunk["x"][e]), float(chunk["y"][e])
        ci0, ci1, cj0, cj1 = g.grid.window(ex, ey, r_epi_m)
        if ci1 <= ci0 or cj1 <= cj0 or g.count(ci0, ci1, cj0, cj1) == 0:
            continue
        key = keys[e]
        if st.correlated:
            nwx, nwy = ci1 - ci0 + 1, cj1 - cj0 + 1
            mark = np.zeros(nwx * nwy, dtype=np.int8)
            nodes = np.empty(nwx * nwy, dtype=np.int64)
            n_aff, n_nodes = ek.collect_nodes(ex, ey, depth, rc, st.bx, st.by, g.gi, g.gj, g.cell_start, g.cell_order,
                                              ncx, ci0, ci1, cj0, cj1, mark, nodes)
            if n_aff == 0:
                continue
            if n_nodes <= st.direct_max:
                fld, c10, c01, c11 = g.grid.direct_field(key, nodes[:n_nodes], nwx, nwy, ci0, cj0)
            else:
                fld, c10, c01, c11 = g.grid.field(key, nwx, nwy)
        else:
            fld, c10, c01, c11 = empty_field, 0.0, 0.0, 0.0
        if not st.identity and st.shared_site_term:
            ek.fill_normals(key, ek.TAG_XI, xi)
        ek.event_damage(
            ex, ey, depth, np.ascontiguousarray(terms.ln_median[e]), st.ln_r0, st.dln, rc, float(tau[e]), float(phi[e]),
            float(eta[e]), xi, key, float(chunk["w_rate"][e]), int(chunk["y_idx"]),
            fld, ci0, cj0, c10, c01, c11, st.correlated,
            af, sd, st.ln_y0, st.dly, st.identity, st.site_zone, st.shared_site_term,
            ln_theta, beta, pd_in, pd_out, st.presence, st.epistemic_typology, float(st.ln_im_negligible[f]),
            st.bx, st.by, st.bsite, st.bkey, st.typ_idx, st.typ_prob, typ_draw, st.n_in, st.n_out,
            g.fx, g.fy, g.gi, g.gj, g.cell_start, g.cell_order, ncx, ci0, ci1, cj0, cj1,
            acc, ev_out[e],
        )
    return {"acc": acc, "events": ev_out, "start": chunk["start"]}


def _run_chunk_spectral(chunk: dict, st: EventStatic, acc: np.ndarray) -> dict:
    """:func:`run_chunk` for a model simulated period by period (GMM V6/V7): per event the finite
    rupture, the between-event residual vector and the cut-off (adapter), the buildings within
    reach and their correlated unit normals (generic), their ln AvgSa and ln PGA (adapter kernel),
    then damage and deaths with the direct chimney term (generic)."""
    from hra.eventbased.groningen import physical_median_branches

    sp = st.spectral
    n_b = st.bx.size
    r, combo, f, c, branch, mags, n_e, ev_out, keys = _chunk_setup(chunk, st)
    if n_e == 0:
        return {"acc": acc, "events": ev_out, "start": chunk["start"]}
    u = None
    if st.median_map is not None and st.median_mode == "mixture":
        u = np.empty(n_e)
        ek.event_uniforms(keys, ek.TAG_MEDIAN, 0, u)
    kphys = physical_median_branches(st.gmm, st.median_map, st.median_mode, branch.get("gmm_median", 0), mags, u)
    bvec = sp.between(keys, kphys, branch)
    rups = sp.ruptures(keys, mags)
    r_cut = sp.cutoff(mags, kphys, branch, bvec, float(st.ln_im_min[f]), float(st.ln_d_min[c]) if st.has_direct else np.inf,
                      st.cutoff_sigma, st.r_max_km)
    im0, fm = sp.mag_index(mags)
    ln_theta = np.ascontiguousarray(st.ln_theta[:, f, :])
    beta = np.ascontiguousarray(st.beta[:, f, :])
    pd_in = np.ascontiguousarray(st.pd_in[:, c, :])
    pd_out = np.ascontiguousarray(st.pd_out[:, c, :])
    d_ln_med = np.ascontiguousarray(st.d_ln_med[:, c])
    d_beta = np.ascontiguousarray(st.d_beta[:, c])
    d_negl = float(st.ln_d_negligible[c]) if st.has_direct else np.inf
    typ_draw = _typology_draw(st, r) if st.epistemic_typology else np.zeros(n_b, np.int64)
    g = st.bgrid
    ncx = g.grid.n_cells[0]
    shared_xi = sp.s2s_mode != "epistemic" and not sp.per_building_site
    no_xi = np.zeros((1, sp.n_periods))
    bidx_buf = np.empty(n_b, dtype=np.int64)
    for e in range(n_e):
        depth = float(chunk["depth"][e])
        rc = float(r_cut[e])
        if rc <= depth:
            continue
        r_epi_km = math.sqrt(rc * rc - depth * depth) + float(rups[e, 0])  # R_rup <= rc needs r_e <= this
        r_hyp = min(math.sqrt(r_epi_km * r_epi_km + depth * depth), st.r_max_km)
        if r_hyp <= depth:
            continue
        ex, ey = float(chunk["x"][e]), float(chunk["y"][e])
        ci0, ci1, cj0, cj1 = g.grid.window(ex, ey, math.sqrt(r_hyp * r_hyp - depth * depth) * 1000.0)
        if ci1 <= ci0 or cj1 <= cj0 or g.count(ci0, ci1, cj0, cj1) == 0:
            continue
        key = keys[e]
        nwx, nwy = ci1 - ci0 + 1, cj1 - cj0 + 1
        mark = np.zeros(nwx * nwy, dtype=np.int8)
        nodes = np.empty(nwx * nwy, dtype=np.int64)
        n_aff, n_nodes = ek.collect_buildings(ex, ey, depth, r_hyp, st.bx, st.by, g.gi, g.gj, g.cell_start, g.cell_order,
                                              ncx, ci0, ci1, cj0, cj1, mark, nodes, bidx_buf)
        if n_aff == 0:
            continue
        bidx = bidx_buf[:n_aff].copy()
        if st.correlated:
            if n_nodes <= st.direct_max:
                fld, c10, c01, c11 = g.grid.direct_field(key, nodes[:n_nodes], nwx, nwy, ci0, cj0)
            else:
                fld, c10, c01, c11 = g.grid.field(key, nwx, nwy)
        else:
            fld, c10, c01, c11 = np.zeros((1, 1)), 0.0, 0.0, 0.0
        gval = np.empty(n_aff)
        ek.field_values(bidx, key, st.bkey, fld, ci0, cj0, c10, c01, c11, st.correlated, g.fx, g.fy, g.gi, g.gj, gval)
        xi = sp.site_terms_zone(key) if shared_xi else no_xi
        ln_im, ln_im2 = sp.ims(ex, ey, depth, mags[e], key, rc, st.r_max_km, rups[e], im0[e], fm[e], int(kphys[e]),
                               branch, bvec[e], bidx, st, gval, xi)
        ek.damage_listed(bidx, ln_im, ln_im2, st.has_direct, key, float(chunk["w_rate"][e]), int(chunk["y_idx"]),
                         ln_theta, beta, pd_in, pd_out, d_ln_med, d_beta, st.presence, st.epistemic_typology,
                         float(st.ln_im_negligible[f]), d_negl, st.bkey, st.typ_idx, st.typ_prob, typ_draw, st.n_in,
                         st.n_out, acc, ev_out[e])
    return {"acc": acc, "events": ev_out, "start": chunk["start"]}


def _run_group(group: list[dict], static: EventStatic) -> dict:
    acc = None
    outs = []
    for ch in group:
        res = run_chunk(ch, static, acc)
        acc = res["acc"]
        outs.append((res["start"], res["events"]))
    return {"acc": acc, "events": outs}


# ------------------------------------------------------------------------------------------
# reductions
# ------------------------------------------------------------------------------------------


def fn_curve(deaths: np.ndarray, rate: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """Annual frequency of events with N or more deaths: ``F(N) = sum_e w_e [deaths_e >= N]``. [yr^-1]"""
    d = np.asarray(deaths, float)
    w = np.asarray(rate, float)
    return np.array([w[d >= n].sum() for n in thresholds])


def fn_bootstrap(deaths: np.ndarray, rate: np.ndarray, realisation: np.ndarray, sim_year: np.ndarray,
                 years_per_realisation: int, thresholds: Sequence[float], n_boot: int, confidence: float,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap band of the F-N curve: simulated years resampled with replacement within each
    realisation (the years are independent replicas); returns (lower, upper) per threshold."""
    thr = np.asarray(thresholds, float)
    T = int(years_per_realisation)
    if deaths.size == 0 or n_boot < 1:
        z = np.zeros(thr.size)
        return z, z.copy()
    real_ids, r_inv = np.unique(realisation, return_inverse=True)
    R = real_ids.size
    unit = r_inv * T + sim_year  # (realisation, replica year) unit of each event
    # counts of events >= N per unit, weighted by the event rate (same within a realisation)
    counts = np.zeros((R * T, thr.size))
    ge = (deaths[:, None] >= thr[None, :]).astype(float) * rate[:, None]
    np.add.at(counts, unit, ge)
    reps = np.empty((n_boot, thr.size))
    offs = (np.arange(R) * T)[:, None]
    for i in range(n_boot):
        idx = (offs + rng.integers(0, T, size=(R, T))).reshape(-1)
        reps[i] = counts[idx].sum(axis=0)
    a = (1.0 - confidence) / 2.0
    return np.quantile(reps, a, axis=0), np.quantile(reps, 1.0 - a, axis=0)


@dataclass
class EventRiskResult:
    """Raw results of :func:`compute_event_based` (see :func:`event_based_dataset`)."""

    prep: Any
    events: EventSet
    options: EventRiskOptions
    acc: np.ndarray  # (b, y, N_STATS)
    event_stats: np.ndarray  # (n_events, N_EVENT_STATS)
    population: np.ndarray
    timings: dict = field(default_factory=dict)

    def stat(self, index: int) -> np.ndarray:
        return self.acc[:, :, index]

    @property
    def collapse_rate(self) -> np.ndarray:
        """Annual rate of CS >= CS1 per building and year. [yr^-1]"""
        return self.stat(ek.S_CS1 if self.options.rates == "expectation" else ek.S_SCOLL)

    @property
    def lpr(self) -> np.ndarray:
        """Event-based LPR estimate per building and year. [yr^-1]"""
        return self.stat(ek.S_LPR if self.options.rates == "expectation" else ek.S_SLPR)

    @property
    def lpr_se(self) -> np.ndarray:
        """Monte-Carlo standard error of :attr:`lpr` (compound Poisson). [yr^-1]"""
        return np.sqrt(self.stat(ek.S_LPR2 if self.options.rates == "expectation" else ek.S_SLPR2))


def compute_event_based(cfg, options: EventRiskOptions | None = None, prep=None, progress: bool | None = None,
                        events: EventSet | None = None) -> EventRiskResult:
    """Simulate events, ground-motion fields and damage; return the raw accumulators.

    Parameters
    ----------
    cfg : hra.Config of the run (source, ground motion, exposure, fragility, compute).
    options : :class:`EventRiskOptions`.
    prep : a :class:`hra.chain.Prepared` to reuse (default: :func:`hra.chain.prepare`).
    events : an event set to replay (default: simulated from ``options``).
    """
    import sys

    from hra.core.executor import Executor
    from hra.chain import prepare

    opts = options or EventRiskOptions.from_config(cfg)
    t0 = time.perf_counter()
    if progress is None:
        progress = cfg.compute.progress if cfg.compute.progress is not None else sys.stderr.isatty()
    prep = prep or prepare(cfg)
    if events is None:
        events = event_set_for(prep, opts.n_years_simulated, opts.realisations, opts.seed, opts.location, opts.depth,
                               opts.years)
    t_ev = time.perf_counter()
    population = _population(prep)
    st = make_static(prep, events, opts, population)
    chunks = make_chunks(events, opts.event_chunk)
    n_b = prep.buildings.n
    ev_stats = np.zeros((events.n_events, ek.N_EVENT_STATS))
    with Executor.from_config(cfg.compute, progress) as ex:
        if ex.parallel and len(chunks) > 1:
            n_tasks = max(1, min(len(chunks), cfg.compute.n_workers * opts.tasks_per_worker))
            groups = [list(g) for g in np.array_split(np.array(chunks, dtype=object), n_tasks) if len(g)]
            parts = ex.map(_run_group, groups, label="events", shared={"static": st})
            acc = np.zeros((n_b, events.years.size, ek.N_STATS))
            for p in parts:
                acc += p["acc"]
                for start, out in p["events"]:
                    ev_stats[start:start + out.shape[0]] = out
        else:
            from hra.core.progress import progress_bar

            acc = np.zeros((n_b, events.years.size, ek.N_STATS))
            with progress_bar(len(chunks), "events", enabled=progress) as advance:
                for ch in chunks:
                    res = run_chunk(ch, st, acc)
                    ev_stats[ch["start"]:ch["start"] + res["events"].shape[0]] = res["events"]
                    advance()
    t_run = time.perf_counter()
    timings = dict(events_s=t_ev - t0, damage_s=t_run - t_ev, total_s=t_run - t0)
    return EventRiskResult(prep, events, opts, acc, ev_stats, population, timings)


# ------------------------------------------------------------------------------------------
# Dataset
# ------------------------------------------------------------------------------------------

_STATES = ("CS1", "CS2", "CS3")


def _v(data, dims, units, long_name, **extra):
    attrs = {"units": units, "long_name": long_name}
    attrs.update({k: v for k, v in extra.items() if v})
    return (dims, data, attrs)


def event_based_dataset(res: EventRiskResult, start: _dt.datetime | None = None, end: _dt.datetime | None = None) -> xr.Dataset:
    """Assemble the event-based risk Dataset (CF attributes, provenance) from raw results."""
    from hra.outputs import provenance

    prep, events, opts = res.prep, res.events, res.options
    b = prep.buildings
    years = events.years
    Y = years.size
    ev = events.events
    rate = events.event_rate()
    exp_mode = opts.rates == "expectation"
    acc = res.acc
    deaths_fn = res.event_stats[:, ek.E_DEATHS_SAMP if opts.fn_from == "sampling" else ek.E_DEATHS_EXP]
    thr = np.asarray(opts.fn_thresholds, float)
    fn = np.zeros((Y, thr.size))
    lo = np.zeros((Y, thr.size))
    hi = np.zeros((Y, thr.size))
    ev_year = ev["year"].to_numpy()
    for iy, year in enumerate(years):
        m = ev_year == year
        fn[iy] = fn_curve(deaths_fn[m], rate[m], thr)
        rng = np.random.default_rng(np.random.SeedSequence(events.seed, spawn_key=(PURPOSE_BOOTSTRAP, int(year))))
        lo[iy], hi[iy] = fn_bootstrap(deaths_fn[m], rate[m], ev["realisation"].to_numpy()[m], ev["sim_year"].to_numpy()[m],
                                      events.years_per_realisation, thr, opts.bootstrap, opts.confidence, rng)
    C, alpha, n_min = opts.group_risk_reference
    ref = np.where(thr >= n_min, C / thr**alpha, np.nan)
    exceed = np.array([bool(np.any((fn[iy] > ref) & np.isfinite(ref))) for iy in range(Y)])
    coll = acc[:, :, ek.S_CS1] if exp_mode else acc[:, :, ek.S_SCOLL]
    fat = acc[:, :, ek.S_DEATHS] if exp_mode else acc[:, :, ek.S_SDEATHS]
    lpr = acc[:, :, ek.S_LPR] if exp_mode else acc[:, :, ek.S_SLPR]
    lpr_se = np.sqrt(acc[:, :, ek.S_LPR2] if exp_mode else acc[:, :, ek.S_SLPR2])
    coll_se = np.sqrt(acc[:, :, ek.S_CS1SQ] if exp_mode else acc[:, :, ek.S_SCOLL2])
    by_state = np.stack([acc[:, :, ek.S_CS1], acc[:, :, ek.S_CS2], acc[:, :, ek.S_CS3]], axis=-1)
    # municipalities
    muni = np.asarray(b.municipality, dtype=str)
    names, inv = np.unique(muni, return_inverse=True)
    m_coll = np.zeros((names.size, Y))
    m_fat = np.zeros((names.size, Y))
    for iy in range(Y):
        m_coll[:, iy] = np.bincount(inv, weights=coll[:, iy], minlength=names.size)
        m_fat[:, iy] = np.bincount(inv, weights=fat[:, iy], minlength=names.size)
    m_n = np.bincount(inv, minlength=names.size)
    # top events per year
    K = int(opts.top_events)
    top = {k: np.full((Y, K), np.nan) for k in ("deaths", "collapses", "magnitude", "x", "y", "rate", "deaths_expected")}
    top_id = np.full((Y, K), -1, dtype=np.int64)
    coll_fn = res.event_stats[:, ek.E_COLL_SAMP if opts.fn_from == "sampling" else ek.E_COLL_EXP]
    for iy, year in enumerate(years):
        idx = np.flatnonzero(ev_year == year)
        if idx.size == 0:
            continue
        order = idx[np.lexsort((ev["event_id"].to_numpy()[idx], -coll_fn[idx], -deaths_fn[idx]))][:K]
        n = order.size
        top_id[iy, :n] = ev["event_id"].to_numpy()[order]
        top["deaths"][iy, :n] = deaths_fn[order]
        top["deaths_expected"][iy, :n] = res.event_stats[order, ek.E_DEATHS_EXP]
        top["collapses"][iy, :n] = coll_fn[order]
        top["magnitude"][iy, :n] = ev["magnitude"].to_numpy()[order]
        top["x"][iy, :n] = ev["x"].to_numpy()[order]
        top["y"][iy, :n] = ev["y"].to_numpy()[order]
        top["rate"][iy, :n] = rate[order]
    n_sim = np.array([(ev_year == y).sum() for y in years], dtype=np.int64)
    coords = {
        "building": ("building", np.asarray(b.ids, dtype=str), {"long_name": "building identifier (index)"}),
        "building_id": ("building", np.asarray(b.ids, dtype=str), {"long_name": "building identifier"}),
        "x_rd": ("building", np.asarray(b.x, float), {"units": "m", "long_name": "x coordinate (RD New, EPSG:28992)",
                                                      "standard_name": "projection_x_coordinate"}),
        "y_rd": ("building", np.asarray(b.y, float), {"units": "m", "long_name": "y coordinate (RD New, EPSG:28992)",
                                                      "standard_name": "projection_y_coordinate"}),
        "municipality": ("building", muni, {"long_name": "municipality"}),
        "year": ("year", years, {"units": "1", "long_name": "calendar year whose rates are simulated"}),
        "state": ("state", np.array(_STATES), {"long_name": "collapse state (exceedance of)"}),
        "fn_n": ("fn_n", thr, {"units": "1", "long_name": "number of fatalities N (F-N: N or more)"}),
        "municipality_name": ("municipality_index", names, {"long_name": "municipality"}),
    }
    data = {
        "collapse_rate": _v(coll, ("building", "year"), "yr-1", "annual rate of collapse (CS >= CS1), event-based"),
        "collapse_rate_se": _v(coll_se, ("building", "year"), "yr-1", "Monte-Carlo standard error of collapse_rate"),
        "collapse_rate_by_state": _v(by_state, ("building", "year", "state"), "yr-1",
                                     "annual rate of exceeding each collapse state (conditional expectation)"),
        "lpr_event": _v(lpr, ("building", "year"), "yr-1",
                        "local personal risk, event-based estimate over the simulated realisations"),
        "lpr_event_se": _v(lpr_se, ("building", "year"), "yr-1", "Monte-Carlo standard error of lpr_event (compound Poisson)"),
        "fatality_rate": _v(fat, ("building", "year"), "yr-1", "expected fatalities per year at the building (persons per year)"),
        "population_inside": _v(res.population, ("building",), "1", "persons inside on average (NaN: one occupant assumed)"),
        "expected_fatalities": _v(fat.sum(axis=0), ("year",), "yr-1", "expected fatalities per year, all buildings (persons per year)"),
        "expected_collapses": _v(coll.sum(axis=0), ("year",), "yr-1", "expected collapsed buildings per year (CS >= CS1)"),
        "fn_frequency": _v(fn, ("year", "fn_n"), "yr-1", f"F-N curve: annual frequency of events with N or more fatalities ({opts.fn_from})"),
        "fn_lower": _v(lo, ("year", "fn_n"), "yr-1", f"F-N curve: bootstrap {opts.confidence:.0%} band, lower"),
        "fn_upper": _v(hi, ("year", "fn_n"), "yr-1", f"F-N curve: bootstrap {opts.confidence:.0%} band, upper"),
        "group_risk_reference": _v(ref, ("fn_n",), "yr-1",
                                   f"group-risk reference line F = {C:g} / N^{alpha:g} for N >= {n_min:g} "
                                   "(Bevi orientation value; reference only)"),
        "group_risk_exceeds_reference": _v(exceed, ("year",), "1", "F-N curve above the reference line at some N"),
        "municipality_collapses": _v(m_coll, ("municipality_index", "year"), "yr-1", "expected collapsed buildings per year per municipality"),
        "municipality_fatalities": _v(m_fat, ("municipality_index", "year"), "yr-1", "expected fatalities per year per municipality"),
        "municipality_buildings": _v(m_n, ("municipality_index",), "1", "number of buildings per municipality"),
        "n_events": _v(n_sim, ("year",), "1", "number of simulated events (M >= m_min)"),
        "n_events_expected": _v(events.expected_counts.sum(axis=1), ("year",), "1", "expected number of events: sum of rates x simulated years"),
        "top_event_id": _v(top_id, ("year", "top"), "1", "event id of the top events (by deaths, then collapses)"),
    }
    for k, (u, ln) in {"deaths": ("1", f"fatalities of the top events ({opts.fn_from})"),
                       "deaths_expected": ("1", "expected fatalities of the top events given their ground motion"),
                       "collapses": ("1", "collapsed buildings of the top events"),
                       "magnitude": ("1", "magnitude of the top events"),
                       "x": ("m", "epicentre x of the top events (RD New)"), "y": ("m", "epicentre y of the top events (RD New)"),
                       "rate": ("yr-1", "annual rate each top event stands for")}.items():
        data[f"top_event_{k}"] = _v(top[k], ("year", "top"), u, ln)
    if opts.keep_event_table:
        st = res.event_stats
        coords["event_id"] = ("event", ev["event_id"].to_numpy(), {"long_name": "event identifier"})
        for col_, u, ln in (("year", "1", "calendar year"), ("realisation", "1", "logic-tree realisation"),
                            ("sim_year", "1", "simulated (replica) year"), ("magnitude", "1", "magnitude"),
                            ("x", "m", "epicentre x (RD New)"), ("y", "m", "epicentre y (RD New)"),
                            ("depth_km", "km", "hypocentral depth")):
            data[f"event_{col_}"] = _v(ev[col_].to_numpy(), ("event",), u, ln)
        data["event_deaths"] = _v(st[:, ek.E_DEATHS_SAMP], ("event",), "1", "sampled fatalities of the event")
        data["event_deaths_expected"] = _v(st[:, ek.E_DEATHS_EXP], ("event",), "1", "expected fatalities given the ground-motion field")
        data["event_collapses"] = _v(st[:, ek.E_COLL_SAMP], ("event",), "1", "sampled collapsed buildings")
        data["event_collapses_expected"] = _v(st[:, ek.E_COLL_EXP], ("event",), "1", "expected collapsed buildings given the field")
        data["event_buildings_reached"] = _v(st[:, ek.E_N_AFFECTED].astype(np.int64), ("event",), "1",
                                             "buildings within the event's cut-off distance")
        mx = st[:, ek.E_MAX_LN_IM]
        data["event_max_im"] = _v(np.where(np.isfinite(mx), np.exp(mx), 0.0), ("event",), "g",
                                  f"largest {prep.fragility.imt} at a building reached by the event")
        data["event_rate"] = _v(rate, ("event",), "yr-1", "annual rate the event stands for in its calendar year")
    ds = xr.Dataset(data, coords=coords)
    from hra.outputs import add_crs

    add_crs(ds)
    start = start or _dt.datetime.now(_dt.timezone.utc)
    end = end or _dt.datetime.now(_dt.timezone.utc)
    cfg = prep.cfg
    opts_json = {k: (v if not isinstance(v, Realisations) else f"explicit ({v.n})") for k, v in opts.model_dump(exclude={"output"}).items()
                 if k != "realisations"}
    opts_json["realisations"] = opts.realisations if not isinstance(opts.realisations, Realisations) else f"explicit ({opts.realisations.n})"
    prov = provenance(cfg.sha256(), prep.files, events.seed, events.realisations.n, events.realisations.exact, start, end,
                      config=cfg, extra={"calculation": "event-based", "ground_motion_model": prep.gmm.name,
                             "fragility_model": prep.fragility.name, "event_options": _jsonable(opts_json),
                             "n_years_simulated": events.n_years_simulated,
                             "years_per_realisation": events.years_per_realisation,
                             "n_events": int(events.n_events),
                             "branches": events.branch_table().to_dict(orient="list") if events.realisations.n <= 200 else "omitted (> 200)",
                             "timings_s": {k: round(v, 3) for k, v in res.timings.items()}})
    now = end.isoformat(timespec="seconds")
    ds.attrs.update({
        "title": "Event-based seismic risk: collapse and fatality rates, F-N curve",
        "Conventions": "CF-1.10", "institution": "groningen-hra", "crs": "EPSG:28992 (Amersfoort / RD New)",
        "n_years_simulated": int(events.n_years_simulated), "rates_method": opts.rates, "fn_method": opts.fn_from,
        "group_risk_reference": "Bevi (2004) orientation value F(N) = 1e-3/N^2 per year, N >= 10 (reference only)",
        "history": f"[{now}] hra event-based run", "provenance": json.dumps(prov, sort_keys=True, default=str),
    })
    return ds


def _jsonable(d: dict) -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, float) and not np.isfinite(v):
            out[k] = str(v)
        elif isinstance(v, (tuple, list)):
            out[k] = [float(x) if isinstance(x, (int, float, np.floating)) else str(x) for x in v]
        else:
            out[k] = v
    return out


def run_event_based(cfg, options: EventRiskOptions | None = None, prep=None, progress: bool | None = None,
                    events: EventSet | None = None) -> xr.Dataset:
    """Event-based risk of a run: the Dataset of :func:`event_based_dataset`.

    Examples
    --------
    >>> import hra  # doctest: +SKIP
    >>> cfg = hra.demo_config(2000, realisations=1, years=(2025,))  # doctest: +SKIP
    >>> ds = run_event_based(cfg, EventRiskOptions(n_years_simulated=2000))  # doctest: +SKIP
    >>> float(ds["expected_fatalities"][0])  # doctest: +SKIP
    """
    start = _dt.datetime.now(_dt.timezone.utc)
    res = compute_event_based(cfg, options, prep=prep, progress=progress, events=events)
    return event_based_dataset(res, start, _dt.datetime.now(_dt.timezone.utc))
