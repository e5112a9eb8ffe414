"""What event-based simulation needs from a ground-motion model, beyond its marginal mixture.

The integration engine only asks a model for the *marginal* distribution of ln IM at a site
(:meth:`hra.gmm.base.GroundMotionModel.ln_im_mixture`). Simulating ground-motion fields event by
event needs the parts of that distribution separately:

* the **reference-level median** ``ln Y_ref(M, R)`` [ln g] (rock/reference horizon for models
  with site response, the site itself for models without),
* the **between-event** (``tau``) and **within-event** (``phi``) standard deviations [ln units]
  of the reference residual,
* the **site response** given the realised reference motion: ``ln AF(Y_ref)`` and the
  site-to-site standard deviation ``sd_S2S(Y_ref)`` of the zone, so that

      ln IM = ln Y_ref + ln AF(Y_ref) + sd_S2S(Y_ref) xi,
      ln Y_ref = ln median + tau eta + phi eps,      eta, eps, xi ~ N(0, 1).

For a model whose marginal mixture integrates exactly this (the demo model; the parametric and
Dost models with an identity site term), the event-based simulation reproduces the marginal
distribution of the integration engine building by building, whatever the correlation between
buildings: that is what the consistency tests (tests/test_eventrisk.py) rely on.

The functions here take the model instance (no change to the model classes): a model may also
provide methods ``event_terms`` / ``site_terms`` with the signatures below, which are used first;
otherwise an adapter registered in :data:`ADAPTERS` under the model's ``name`` is used.
Supported: ``"parametric"``, ``"demo"``, ``"dost2004-bommer2013"``.

**Spectral models** (``"groningen-v7"``, ``"groningen-v6"``) do not fit this split: AvgSa is the
geometric mean of 10 periods with a non-linear, (M, R)-dependent amplification per period, on the
rupture distance. Their adapter (:class:`SpectralAdapter`, registered in the same
:data:`ADAPTERS`) builds the static tables of :mod:`hra.eventbased.groningen`, which simulates the
10 correlated reference residuals per building, the finite rupture per event and the surface
spectrum, and returns both IMs of the fragility model (AvgSa and the PGA of the chimney term).

The site response is returned as a **table over ln Y_ref** (:class:`SiteTerms`), which the numba
kernels interpolate linearly: the engine's kernels never see a model's equations (docs/architecture.md §1).
With the default grid step (0.01 in ln Y) the interpolation error of ln AF is below 1e-5.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np

from hra.gmm.base import GroundMotionModel

#: Default grid of reference motion for site tables: ln Y_ref [ln g] from ln 1e-7 g to ln 30 g.
LN_Y_MIN = float(np.log(1e-7))
LN_Y_MAX = float(np.log(30.0))
LN_Y_STEP = 0.01


@dataclass(frozen=True)
class EventTerms:
    """Reference-level ground motion of a set of events on a distance grid.

    Attributes
    ----------
    ln_median
        ln of the reference-level median IM, shape ``(n_mag, n_dist)``. [ln g]
    tau
        Between-event standard deviation per magnitude, shape ``(n_mag,)``. [ln units]
    phi
        Within-event standard deviation per magnitude, shape ``(n_mag,)``. [ln units]
    truncation_sigma
        Truncation of each standard-normal residual (eta, eps) at +-T; 0 = none. The marginal
        models truncate the *total* residual instead, so with truncation the two engines agree
        only approximately (OpenQuake's event-based calculator also truncates each part).
    """

    ln_median: np.ndarray
    tau: np.ndarray
    phi: np.ndarray
    truncation_sigma: float = 0.0


@dataclass(frozen=True)
class SiteTerms:
    """Site response of one site (zone, wierde) as a table over the realised reference motion.

    ``ln_af[i]`` and ``sd[i]`` at ``ln_y = ln_y0 + i * step`` (``n`` points); between points the
    kernels interpolate linearly, beyond the ends they hold the end values.
    ``identity`` is True for models without site response (ln AF = 0, sd = 0).
    """

    ln_y0: float
    step: float
    ln_af: np.ndarray
    sd: np.ndarray
    identity: bool = False

    @property
    def ln_y(self) -> np.ndarray:
        return self.ln_y0 + self.step * np.arange(self.ln_af.size)


def default_ln_y_grid() -> np.ndarray:
    n = int(round((LN_Y_MAX - LN_Y_MIN) / LN_Y_STEP)) + 1
    return LN_Y_MIN + LN_Y_STEP * np.arange(n)


def identity_site_terms() -> SiteTerms:
    return SiteTerms(LN_Y_MIN, LN_Y_MAX - LN_Y_MIN, np.zeros(2), np.zeros(2), identity=True)


# ------------------------------------------------------------------------------------------
# adapters
# ------------------------------------------------------------------------------------------


def _parametric_events(gmm, imt, magnitude, distance_km, branch) -> EventTerms:
    from hra.gmm.parametric import parametric_ln_median

    gmm.check_imt(imt)
    m = np.atleast_1d(np.asarray(magnitude, float))
    mu = parametric_ln_median(m, distance_km, gmm.c0, gmm.c1, gmm.c2, gmm.c3)
    return EventTerms(mu, np.full(m.size, gmm.tau), np.full(m.size, gmm.phi), gmm.truncation_sigma)


def _identity_site(gmm, imt, zone, branch, ln_y, wierde=False) -> SiteTerms:
    return identity_site_terms()


def _demo_events(gmm, imt, magnitude, distance_km, branch) -> EventTerms:
    from hra.gmm.demo import MEDIAN_NODE, SIGMA_LEVELS, demo_reference_ln_median, imt_offset

    gmm.check_imt(imt)
    m = np.atleast_1d(np.asarray(magnitude, float))
    dmed = MEDIAN_NODE.values[branch.get("gmm_median", 1)]
    tau, phi = SIGMA_LEVELS[branch.get("gmm_sigma", 0)]
    mu = demo_reference_ln_median(m, distance_km, dmed + imt_offset(imt))
    return EventTerms(mu, np.full(m.size, tau), np.full(m.size, phi), 0.0)


def _demo_site(gmm, imt, zone, branch, ln_y, wierde=False) -> SiteTerms:
    from hra.gmm.demo import SITE_NODE, ZONES, demo_ln_af, demo_phi_s2s

    if zone not in ZONES:
        raise KeyError(f"demo GMM has no coefficients for zone {zone!r}; known zones: {sorted(ZONES)}")
    dsite = SITE_NODE.values[branch.get("gmm_site", 0)]
    y = np.exp(ln_y)
    return SiteTerms(float(ln_y[0]), float(ln_y[1] - ln_y[0]), demo_ln_af(y, zone, dsite), demo_phi_s2s(y, zone))


def _dost_events(gmm, imt, magnitude, distance_km, branch) -> EventTerms:
    from hra.gmm.dost2004 import dost_ln_median

    gmm.check_imt(imt)
    m = np.atleast_1d(np.asarray(magnitude, float))
    mu = dost_ln_median(imt, m[:, None], np.asarray(distance_km, float)[None, :])
    tau, phi, _ = gmm.sigma_ln(imt)
    return EventTerms(mu, np.full(m.size, tau), np.full(m.size, phi), gmm.truncation_sigma)


@dataclass(frozen=True)
class SpectralAdapter:
    """Adapter of a model simulated period by period: ``factory(gmm, imt, direct_imt, sites,
    m_range, r_grid, median_branches, sigma_branches, site_term)`` returns the static tables
    (:class:`hra.eventbased.groningen.SpectralStatic`) that the event-based risk uses."""

    factory: Callable
    description: str = ""


def _groningen_static(*args, **kwargs):
    from hra.eventbased.groningen import spectral_static

    return spectral_static(*args, **kwargs)


_GRONINGEN = SpectralAdapter(_groningen_static, "10 correlated periods, non-linear AF per period, finite rupture per event")

#: model name -> (event_terms adapter, site_terms adapter), or a :class:`SpectralAdapter`
ADAPTERS: dict[str, tuple[Callable, Callable] | SpectralAdapter] = {
    "parametric": (_parametric_events, _identity_site),
    "demo": (_demo_events, _demo_site),
    "dost2004-bommer2013": (_dost_events, _identity_site),
    "groningen-v7": _GRONINGEN,
    "groningen-v6": _GRONINGEN,
}


def supports_events(gmm: GroundMotionModel) -> bool:
    """True if event-based simulation can use ``gmm``."""
    return hasattr(gmm, "event_terms") or getattr(gmm, "name", None) in ADAPTERS


def is_spectral(gmm: GroundMotionModel) -> bool:
    """True if ``gmm`` is simulated period by period (a :class:`SpectralAdapter` is registered)."""
    return isinstance(ADAPTERS.get(getattr(gmm, "name", None)), SpectralAdapter)


def spectral_static(gmm: GroundMotionModel, *args, **kwargs):
    """Static tables of a spectral model's event simulation (see :class:`SpectralAdapter`)."""
    ad = ADAPTERS.get(getattr(gmm, "name", None))
    if not isinstance(ad, SpectralAdapter):
        raise NotImplementedError(f"ground-motion model {getattr(gmm, 'name', gmm)!r} has no spectral event adapter")
    return ad.factory(gmm, *args, **kwargs)


def _adapter(gmm: GroundMotionModel) -> tuple[Callable, Callable]:
    ad = ADAPTERS.get(getattr(gmm, "name", None))
    if isinstance(ad, SpectralAdapter):
        raise NotImplementedError(
            f"ground-motion model {gmm.name!r} is simulated period by period ({ad.description}); it has no single-IM "
            "event_terms/site_terms split: use spectral_static (hra.eventbased.groningen)")
    if ad is not None:
        return ad
    raise NotImplementedError(
        f"ground-motion model {getattr(gmm, 'name', gmm)!r} does not expose the between-/within-event split and "
        "site terms that event-based simulation needs; give the model methods event_terms/site_terms or register "
        f"an adapter in hra.eventbased.adapters.ADAPTERS (supported: {sorted(ADAPTERS)})"
    )


def event_terms(gmm: GroundMotionModel, imt: str, magnitude, distance_km, branch: Mapping[str, int]) -> EventTerms:
    """Reference median, tau and phi of events.

    Parameters
    ----------
    gmm
        The ground-motion model.
    imt
        Intensity measure (one of ``gmm.imts``).
    magnitude
        Event magnitudes, shape ``(n_mag,)``. [-]
    distance_km
        Hypocentral distances, shape ``(n_dist,)``. [km]
    branch
        Branch index per node name of ``gmm.tree``.

    Returns
    -------
    EventTerms with ``ln_median`` of shape ``(n_mag, n_dist)`` [ln g].
    """
    fn = getattr(gmm, "event_terms", None)
    if callable(fn):
        return fn(imt, magnitude, distance_km, branch)
    return _adapter(gmm)[0](gmm, imt, magnitude, distance_km, branch)


def site_terms(gmm: GroundMotionModel, imt: str, zone: int | None, branch: Mapping[str, int],
               ln_y: np.ndarray | None = None, wierde: bool = False) -> SiteTerms:
    """Site response of ``zone`` (and wierde) as a table over ln Y_ref [ln g].

    Parameters
    ----------
    ln_y
        Equally spaced grid of ln Y_ref [ln g] (default :func:`default_ln_y_grid`).
    """
    ln_y = default_ln_y_grid() if ln_y is None else np.asarray(ln_y, float)
    fn = getattr(gmm, "site_terms", None)
    if callable(fn):
        return fn(imt, zone, branch, ln_y, wierde)
    return _adapter(gmm)[1](gmm, imt, zone, branch, ln_y, wierde)


def marginal_check(gmm: GroundMotionModel, imt: str, magnitude: float, distance_km: float, zone: int | None,
                   branch: Mapping[str, int], n: int = 200_000, seed: int = 0) -> tuple[float, float, float, float]:
    """Mean and sd of ln IM from the event split (sampled) and from the marginal mixture.

    A self-check for adapters: returns ``(mean_events, sd_events, mean_mixture, sd_mixture)``.
    """
    rng = np.random.default_rng(seed)
    et = event_terms(gmm, imt, [magnitude], [distance_km], branch)
    st = site_terms(gmm, imt, zone, branch)
    ln_ref = et.ln_median[0, 0] + et.tau[0] * rng.standard_normal(n) + et.phi[0] * rng.standard_normal(n)
    af = np.interp(ln_ref, st.ln_y, st.ln_af)
    sd = np.interp(ln_ref, st.ln_y, st.sd)
    x = ln_ref + af + sd * rng.standard_normal(n)
    mix = gmm.ln_im_mixture(imt, np.array([magnitude]), np.array([distance_km]), zone, branch)
    w, mu, s = mix.weight[0, 0], mix.mean[0, 0], mix.sd[0, 0]
    m1 = float(w @ mu)
    var = float(w @ (s**2 + mu**2)) - m1**2
    return float(x.mean()), float(x.std()), m1, float(np.sqrt(var))
