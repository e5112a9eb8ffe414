r"""Building-specific lognormal collapse fragility from a capacity curve (N2-based).

For collapse state :math:`k \in \{CS1, CS2, CS3\}` a roof-displacement limit
:math:`d_{LS,k} = f_k\,d_{NC}` is set, with :math:`d_{NC}` the near-collapse roof displacement
capacity of the building (the smallest of the displacement checks of
:func:`npr9998.methods.n2_method`) and :math:`f_k` configurable factors (default 1.0, 1.5, 2.0:
CS1 at near collapse, CS2 and CS3 progressively beyond; the EPP plateau of the idealised curve
is extrapolated beyond the last pushover point, which is flagged).

The spectrum for the consequence class is scaled by :math:`\lambda` (all ordinates, i.e.
:math:`a_{g;S} \to \lambda a_{g;S}`) and the N2 roof target displacement
:math:`d_t(\lambda)` (EN 1998-1 Annex B, :func:`npr9998.methods.n2_target_displacement`) is
solved for :math:`d_t(\lambda_k) = d_{LS,k}` by Brent's method. :math:`d_t(\lambda)` is
continuous and increasing in :math:`\lambda` (it is piecewise linear without idealisation
iteration), so the root is unique. The median capacity in the intensity measure of the HRA
engine is then

.. math:: \hat{IM}_k = \lambda_k\,IM_{ref}

where :math:`IM_{ref}` is the IM of the unscaled spectrum. Supported IMs:

* ``"AvgSa"``: geometric mean of :math:`S_e` at 0.01, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.85,
  1.0 s (the V7 fragility IM, Crowley & Pinho 2020);
* ``"PGA"``: :math:`S_e(0.01\,s)` (as the V7 chain defines PGA);
* ``"SA(T)"``: :math:`S_e(T)` at a given period, e.g. ``"SA(0.3)"``; ``"SA(T*)"`` resolves to
  the building's elastic SDOF period T* rounded to 3 decimals;
* ``"AGS"``: :math:`a_{g;S}` itself (the scale factor on the spectral shape expressed in g).

The lognormal dispersion combines record-to-record variability and modelling uncertainty by
SRSS, :math:`\beta = \sqrt{\beta_{RTR}^2 + \beta_{mod}^2 + \beta_{cap}^2}` (defaults 0.32 and
0.24 give 0.40), the usual FEMA P-58 / Cornell et al. (2002) treatment.

References
----------
EN 1998-1:2004 Annex B; Fajfar (2000) doi:10.1193/1.1586128; Cornell C.A. et al. (2002),
Probabilistic basis for 2000 SAC FEMA steel moment frame guidelines, J. Struct. Eng.
128(4):526-533, doi:10.1061/(ASCE)0733-9445(2002)128:4(526); Crowley H., Pinho R. (2020),
Report on the v7 fragility and consequence models for the Groningen field, NAM.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np
from scipy.optimize import brentq
from scipy.special import ndtr

from npr9998.capacity import PushoverCurve, StructureModel
from npr9998.errors import NPRInputError
from npr9998.methods import CapacityOption, _capacity_names, _displacement_checks, _sdof
from npr9998.spectrum import SpectrumParameters

__all__ = [
    "AVGSA_PERIODS_S",
    "BuildingFragility",
    "FragilityDerivation",
    "intensity_measure",
    "combined_beta",
    "derive_building_fragility",
]

#: Periods of the V7 AvgSa (geometric mean of Sa). [s]
AVGSA_PERIODS_S = (0.01, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.85, 1.0)

_SA_RE = re.compile(r"^\s*SA\(\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*\)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class BuildingFragility:
    r"""Lognormal collapse fragility of one building, per collapse state CS1..CS3.

    :math:`P(CS \ge k \mid IM) = \Phi\left(\ln(IM/\hat{IM}_k)/\beta_k\right)`.

    Attributes
    ----------
    median_g
        Median capacities :math:`\hat{IM}_k`, non-decreasing over CS1..CS3. [g]
    beta
        Lognormal dispersions :math:`\beta_k`. [-]
    p_death_inside, p_death_outside
        Probability of death of a person inside / outside given the (exclusive) collapse state.
        [-]
    imt
        The intensity measure of the medians (e.g. ``"AvgSa"``, ``"PGA"``, ``"SA(0.46)"``).
    """

    median_g: tuple[float, float, float]
    beta: tuple[float, float, float]
    p_death_inside: tuple[float, float, float]
    p_death_outside: tuple[float, float, float]
    imt: str

    def __post_init__(self) -> None:
        for name in ("median_g", "beta", "p_death_inside", "p_death_outside"):
            v = tuple(float(x) for x in getattr(self, name))
            if len(v) != 3 or not all(math.isfinite(x) for x in v):
                raise NPRInputError(f"{name} must be three finite numbers (CS1, CS2, CS3); got {getattr(self, name)!r}.", column=name, fix="give one value per collapse state.")
            object.__setattr__(self, name, v)
        if any(m <= 0 for m in self.median_g) or any(b <= 0 for b in self.beta):
            raise NPRInputError("medians and betas must be > 0.", column="median_g/beta", fix="check the derivation inputs.")
        if any(b > a * (1 + 1e-12) for a, b in zip(self.median_g[1:], self.median_g[:-1])):
            raise NPRInputError(f"medians must not decrease from CS1 to CS3; got {self.median_g}.", column="median_g", fix="use non-decreasing collapse-state limits (cs_factors).")
        for name in ("p_death_inside", "p_death_outside"):
            if any(not (0 <= p <= 1) for p in getattr(self, name)):
                raise NPRInputError(f"{name} must be probabilities in [0, 1]; got {getattr(self, name)}.", column=name, fix="give probabilities, not percentages.")
        if not isinstance(self.imt, str) or not self.imt:
            raise NPRInputError("imt must be a non-empty string.", column="imt", fix="e.g. 'AvgSa'.")

    def probability_of_exceedance(self, im_g) -> np.ndarray:
        r""":math:`P(CS \ge k \mid IM)` for k = 1..3, shape ``(..., 3)``. [-]"""
        im = np.asarray(im_g, dtype=float)[..., None]
        with np.errstate(divide="ignore"):
            z = (np.log(im) - np.log(np.asarray(self.median_g))) / np.asarray(self.beta)
        return ndtr(z)

    def probability_of_state(self, im_g) -> np.ndarray:
        r"""Exclusive :math:`P(CS = k \mid IM) = P(CS \ge k) - P(CS \ge k+1)`, shape ``(..., 3)``. [-]

        With unequal betas the exceedance curves can cross in the far tails; the differences
        are then clipped at 0 (as the V7 chain does).
        """
        pe = self.probability_of_exceedance(im_g)
        nxt = np.concatenate([pe[..., 1:], np.zeros_like(pe[..., :1])], axis=-1)
        return np.clip(pe - nxt, 0.0, 1.0)

    def to_dict(self) -> dict:
        """Plain dict (JSON-ready)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def intensity_measure(spectrum: SpectrumParameters, imt: str, *, t_star_s: float | None = None, damping: float = 0.05) -> tuple[str, float]:
    """Value of an IM for a spectrum: ``(resolved imt name, value in g)``.

    Parameters
    ----------
    spectrum
        The (unscaled) spectrum. [g], [s]
    imt
        ``"AvgSa"``, ``"PGA"``, ``"AGS"``, ``"SA(T)"`` or ``"SA(T*)"`` (module docstring).
    t_star_s
        The building's SDOF period, for ``"SA(T*)"``. [s]
    damping
        Damping of the spectral ordinates (the HRA IMs are 5 %-damped). [-]
    """
    key = imt.strip()
    if key.lower() == "avgsa":
        sa = np.asarray(spectrum.sa_g(np.asarray(AVGSA_PERIODS_S), damping=damping))
        return "AvgSa", float(np.exp(np.mean(np.log(sa))))
    if key.lower() == "pga":
        return "PGA", float(spectrum.sa_g(0.01, damping=damping))
    if key.lower() == "ags":
        return "AGS", float(spectrum.ag_s_g)
    if key.replace(" ", "").upper() == "SA(T*)":
        if t_star_s is None:
            raise NPRInputError("imt 'SA(T*)' needs the SDOF period.", column="imt", fix="derive it from a capacity curve.")
        t = round(float(t_star_s), 3)
        return f"SA({t:g})", float(spectrum.sa_g(t, damping=damping))
    m = _SA_RE.match(key)
    if m:
        t = float(m.group(1))
        return f"SA({t:g})", float(spectrum.sa_g(t, damping=damping))
    raise NPRInputError(f"unknown intensity measure {imt!r}.", column="imt", fix="use 'AvgSa', 'PGA', 'AGS', 'SA(T)' (T in s) or 'SA(T*)'.")


def combined_beta(beta_record_to_record: float = 0.32, beta_modelling: float = 0.24, beta_capacity: float = 0.0) -> float:
    r"""SRSS combination :math:`\sqrt{\beta_{RTR}^2 + \beta_{mod}^2 + \beta_{cap}^2}` [-].

    Examples
    --------
    >>> round(combined_beta(), 10)
    0.4
    """
    parts = (beta_record_to_record, beta_modelling, beta_capacity)
    if any(not (math.isfinite(b) and b >= 0) for b in parts):
        raise NPRInputError(f"dispersions must be finite and >= 0; got {parts}.", column="beta", fix="give lognormal standard deviations, e.g. 0.3.")
    b = math.sqrt(sum(x * x for x in parts))
    if b <= 0:
        raise NPRInputError("combined dispersion is 0.", column="beta", fix="give at least one non-zero dispersion.")
    return b


@dataclass(frozen=True)
class FragilityDerivation:
    """A :class:`BuildingFragility` with the quantities it was derived from.

    Attributes
    ----------
    fragility
        The result.
    scale_factors
        :math:`\\lambda_k`: factor on the spectrum at which the N2 roof displacement reaches
        the limit of CS_k. [-]
    limit_displacements_m
        Roof-displacement limits :math:`d_{LS,k}`. [m]
    nc_displacement_m
        Near-collapse roof-displacement capacity :math:`d_{NC}`. [m]
    cs_factors
        :math:`f_k`. [-]
    im_reference_g
        IM of the unscaled spectrum. [g]
    t_star_s
        Elastic SDOF period T*. [s]
    extrapolated
        Per state, whether :math:`d_{LS,k}` lies beyond the last pushover point.
    beta_components
        The dispersions combined.
    """

    fragility: BuildingFragility
    scale_factors: tuple[float, float, float]
    limit_displacements_m: tuple[float, float, float]
    nc_displacement_m: float
    cs_factors: tuple[float, float, float]
    im_reference_g: float
    t_star_s: float
    extrapolated: tuple[bool, bool, bool]
    beta_components: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["fragility"] = self.fragility.to_dict()
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def derive_building_fragility(
    curve: PushoverCurve,
    structure: StructureModel,
    spectrum: SpectrumParameters,
    *,
    p_death_inside: Sequence[float],
    p_death_outside: Sequence[float],
    imt: str = "AvgSa",
    cs_factors: Sequence[float] = (1.0, 1.5, 2.0),
    beta_record_to_record: float = 0.32,
    beta_modelling: float = 0.24,
    beta_capacity: float = 0.0,
    beta: Sequence[float] | None = None,
    displacement_capacity: CapacityOption = "ultimate",
    drift_limit: float | None = None,
    strength_drop: float = 0.2,
    d_m_m: float | None = None,
    damping: float = 0.05,
    cap_factor: float | None = 3.0,
) -> FragilityDerivation:
    r"""Lognormal collapse fragility of a building from its capacity curve (module docstring).

    Parameters
    ----------
    curve
        MDOF pushover curve. [m], [kN]
    structure
        Storey masses, mode shape, level heights. [t], [-], [m]
    spectrum
        Spectral shape (the consequence-class spectrum; only its shape matters for the
        medians, which are expressed in the IM). [g], [s]
    p_death_inside, p_death_outside
        Probability of death given CS1, CS2, CS3 (typology default or user input). [-]
    imt
        Intensity measure of the HRA engine (``"AvgSa"`` default).
    cs_factors
        :math:`f_k`, non-decreasing, > 0: CS_k limit = :math:`f_k d_{NC}`. [-]
    beta_record_to_record, beta_modelling, beta_capacity
        Dispersions combined by SRSS into one β for all states. [-]
    beta
        Explicit β per state (overrides the combination). [-]
    displacement_capacity, drift_limit, strength_drop, d_m_m
        Define :math:`d_{NC}` and the idealisation as in :func:`npr9998.methods.n2_method`.
    damping, cap_factor
        As :func:`npr9998.methods.n2_method`.

    Returns
    -------
    FragilityDerivation
    """
    f = tuple(float(x) for x in cs_factors)
    if len(f) != 3 or any(not (math.isfinite(x) and x > 0) for x in f) or any(b < a for a, b in zip(f, f[1:])):
        raise NPRInputError(f"cs_factors {tuple(cs_factors)} must be three positive, non-decreasing numbers.", column="cs_factors", fix="e.g. [1.0, 1.5, 2.0].")
    if beta is None:
        b = combined_beta(beta_record_to_record, beta_modelling, beta_capacity)
        betas = (b, b, b)
    else:
        betas = tuple(float(x) for x in beta)
    names = _capacity_names(displacement_capacity)
    sd, sdof_curve = _sdof(curve, structure, d_m_m, names, strength_drop)
    # d_NC: smallest roof-displacement capacity of the displacement checks (demand irrelevant)
    checks = _displacement_checks(0.0, curve, structure, displacement_capacity, drift_limit, strength_drop)
    d_nc = min(c.roof_displacement_capacity_m for c in checks)
    limits = tuple(x * d_nc for x in f)

    def d_t(lam: float) -> float:
        return sd.gamma * sd.target(spectrum.scaled(lam), damping, cap_factor)[4]

    lambdas = []
    for d_ls in limits:
        hi = 1.0
        for _ in range(200):
            if d_t(hi) >= d_ls:
                break
            hi *= 2.0
        else:  # pragma: no cover
            raise NPRInputError("no spectrum scale reaches the collapse-state displacement.", fix="check the capacity curve and spectrum.")
        lo = 0.0 if hi == 1.0 else hi / 2.0
        lambdas.append(float(brentq(lambda x: d_t(x) - d_ls, lo, hi, xtol=1e-14, rtol=1e-12)))
    imt_name, im_ref = intensity_measure(spectrum, imt, t_star_s=sd.t_star_s, damping=0.05)
    if im_ref <= 0:
        raise NPRInputError("the spectrum has zero intensity.", column="ag_s_g", fix="give a spectrum with a_g;S > 0.")
    medians = tuple(lam * im_ref for lam in lambdas)
    frag = BuildingFragility(median_g=medians, beta=betas, p_death_inside=tuple(p_death_inside), p_death_outside=tuple(p_death_outside), imt=imt_name)
    return FragilityDerivation(
        fragility=frag,
        scale_factors=tuple(lambdas),
        limit_displacements_m=limits,
        nc_displacement_m=d_nc,
        cs_factors=f,
        im_reference_g=im_ref,
        t_star_s=sd.t_star_s,
        extrapolated=tuple(bool(x > curve.ultimate_displacement_m * (1 + 1e-12)) for x in limits),
        beta_components={"record_to_record": beta_record_to_record, "modelling": beta_modelling, "capacity": beta_capacity, "explicit": beta is not None},
    )
