r"""NPR 9998 assessment methods: lateral force, N2 (EN 1998-1 Annex B), capacity spectrum.

Each method is a pure function that returns a frozen result dataclass with the demand, the
capacity, the unity check (demand / capacity) of every check made, the governing check,
pass/fail, the intermediate quantities, and the edition and version of the normative tables
used (:mod:`npr9998.tables`).

Units: masses in tonnes [t], forces in kilonewton [kN], displacements in metres [m],
accelerations in g (1 g = 9.80665 m/s²). A mass in t times an acceleration in m/s² is a force
in kN, so no other conversion factors appear.

References
----------
.. [EC8-1] EN 1998-1:2004 §4.3.3.2 (lateral force method), Annex B (target displacement).
.. [EC8-3] EN 1998-3:2005 §2.1 (near-collapse limit state).
.. [Fajfar2000] Fajfar P. (2000), A nonlinear analysis method for performance-based seismic
   design, Earthquake Spectra 16(3):573-592, doi:10.1193/1.1586128.
.. [ATC40] ATC-40 (1996), Seismic evaluation and retrofit of concrete buildings, Applied
   Technology Council, ch. 8 (capacity spectrum method, Tables 8-1 to 8-4).
.. [FEMA440] FEMA 440 (2005), Improvement of nonlinear static seismic analysis procedures,
   ch. 6 (effective period and damping, eqs. 6-5 to 6-10; modified ADRS).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Literal, Sequence

import numpy as np
from scipy.optimize import brentq

from npr9998.capacity import BilinearCurve, PushoverCurve, StructureModel, bilinear_idealisation, sdof_transformation
from npr9998.errors import NPRInputError
from npr9998.spectrum import G, SpectrumParameters, damping_correction
from npr9998.tables import NormTables, load_tables

__all__ = [
    "Check",
    "LateralForceResult",
    "N2Result",
    "CSMResult",
    "lateral_force_method",
    "fundamental_period_estimate",
    "n2_target_displacement",
    "n2_method",
    "capacity_spectrum_method",
    "atc40_effective_damping",
    "fema440_effective_parameters",
]


# ------------------------------------------------------------------------------------------
# common result pieces


@dataclass(frozen=True)
class Check:
    """One verification: ``demand`` against ``capacity`` in ``unit``.

    Attributes
    ----------
    name
        What is checked (e.g. ``"roof displacement vs ultimate displacement of the curve"``).
    demand, capacity
        Values in ``unit``.
    unit
        ``"m"``, ``"kN"`` or ``"-"`` (drift).
    roof_displacement_capacity_m
        The capacity expressed as a roof displacement, for displacement checks [m]; used by
        the building-specific fragility. ``None`` for force checks.
    """

    name: str
    demand: float
    capacity: float
    unit: str
    roof_displacement_capacity_m: float | None = None

    @property
    def unity_check(self) -> float:
        """demand / capacity [-] (> 1 fails)."""
        return self.demand / self.capacity if self.capacity > 0 else math.inf

    def to_dict(self) -> dict:
        return {**asdict(self), "unity_check": self.unity_check}


class _ResultMixin:
    """Properties shared by the result dataclasses (they all have ``checks``)."""

    checks: tuple[Check, ...]

    @property
    def governing_check(self) -> Check:
        """The check with the largest unity check."""
        return max(self.checks, key=lambda c: c.unity_check)

    @property
    def governing(self) -> str:
        """Name of the governing check."""
        return self.governing_check.name

    @property
    def demand(self) -> float:
        """Demand of the governing check (unit of that check)."""
        return self.governing_check.demand

    @property
    def capacity(self) -> float:
        """Capacity of the governing check (unit of that check)."""
        return self.governing_check.capacity

    @property
    def unity_check(self) -> float:
        """Largest demand/capacity over the checks [-]."""
        return self.governing_check.unity_check

    @property
    def passes(self) -> bool:
        """True when every unity check is <= 1."""
        return self.unity_check <= 1.0

    def to_dict(self) -> dict:
        """JSON-ready dict of all fields plus the derived verdict fields."""
        out = {}
        for k, v in self.__dict__.items():
            if isinstance(v, SpectrumParameters):
                out[k] = v.to_dict()
            elif k == "checks":
                out[k] = [c.to_dict() for c in v]
            elif isinstance(v, np.generic):
                out[k] = v.item()
            else:
                out[k] = v
        out.update(governing=self.governing, demand=self.demand, capacity=self.capacity, unity_check=self.unity_check, passes=self.passes)
        return out


def _tables(tables: NormTables | None) -> NormTables:
    return load_tables() if tables is None else tables


# ------------------------------------------------------------------------------------------
# (a) lateral force method


@dataclass(frozen=True, kw_only=True)
class LateralForceResult(_ResultMixin):
    """Result of :func:`lateral_force_method` (EN 1998-1 §4.3.3.2).

    Attributes
    ----------
    period_s
        Fundamental period used, T1. [s]
    q
        Behaviour factor. [-]
    beta
        Lower-bound factor of the design spectrum. [-]
    sd_g
        Design spectral acceleration :math:`S_d(T_1)`. [g]
    lambda_factor
        Correction factor λ (0.85 or 1.0). [-]
    total_mass_t
        Mass m. [t]
    f_b_kn
        Base shear demand :math:`F_b = S_d(T_1)\\,m\\,\\lambda`. [kN]
    base_shear_capacity_kn
        Base-shear capacity. [kN]
    applicable
        Whether EN 1998-1 §4.3.3.2.1(2)a holds: :math:`T_1 \\le \\min(4 T_C, 2.0\\,s)`.
    """

    method: str = "lateral force"
    period_s: float
    q: float
    beta: float
    sd_g: float
    lambda_factor: float
    total_mass_t: float
    n_storeys: int
    f_b_kn: float
    base_shear_capacity_kn: float
    applicable: bool
    spectrum: SpectrumParameters
    checks: tuple[Check, ...]
    edition: str
    table_version: str
    provisional: bool


def fundamental_period_estimate(height_m: float, c_t: float = 0.05) -> float:
    r"""Approximate fundamental period :math:`T_1 = C_t H^{3/4}` [s], EN 1998-1 eq. 4.6.

    Parameters
    ----------
    height_m
        Building height above the foundation or a rigid basement, up to 40 m. [m]
    c_t
        0.085 (steel moment frames), 0.075 (RC moment frames, eccentric braced steel), 0.050
        (all other structures). [-]

    Examples
    --------
    >>> round(fundamental_period_estimate(16.0), 4)
    0.4
    """
    if not (math.isfinite(height_m) and 0 < height_m):
        raise NPRInputError(f"height {height_m!r} must be > 0 m.", column="height_m", fix="give the building height in metres.")
    if not (c_t > 0):
        raise NPRInputError(f"C_t = {c_t!r} must be > 0.", column="c_t", fix="use 0.05, 0.075 or 0.085 (EN 1998-1 §4.3.3.2.2(3)).")
    return c_t * height_m**0.75


def lateral_force_method(
    spectrum: SpectrumParameters,
    *,
    total_mass_t: float,
    period_s: float,
    q: float,
    base_shear_capacity_kn: float,
    n_storeys: int,
    beta: float | None = None,
    tables: NormTables | None = None,
) -> LateralForceResult:
    r"""Lateral force method: :math:`F_b = S_d(T_1)\,m\,\lambda` against the base-shear capacity.

    EN 1998-1:2004 §4.3.3.2.2 eq. 4.5, with :math:`S_d` the design spectrum of
    :func:`npr9998.spectrum.design_spectrum` (NPR form) and
    :math:`\lambda = 0.85` if :math:`T_1 \le 2 T_C` and the building has more than two storeys,
    else 1.0. :math:`S_d` in g is multiplied by g = 9.80665 m/s²; with m in t, F_b is in kN.

    Parameters
    ----------
    spectrum
        Elastic spectrum parameters (already for the consequence class). [g], [s]
    total_mass_t
        Seismic mass m above the foundation. [t]
    period_s
        Fundamental period T1 (e.g. :func:`fundamental_period_estimate`). [s]
    q
        Behaviour factor (table value for the structural system). [-]
    base_shear_capacity_kn
        Base-shear capacity V_R (e.g. the peak of a pushover curve). [kN]
    n_storeys
        Number of storeys above the base (for λ). [-]
    beta
        Lower-bound factor; default from ``tables``. [-]
    tables
        Normative tables (edition recorded in the result); default the provisional set.

    Returns
    -------
    LateralForceResult
    """
    t = _tables(tables)
    beta = t.design_spectrum.beta if beta is None else beta
    for name, val in (("total_mass_t", total_mass_t), ("period_s", period_s), ("base_shear_capacity_kn", base_shear_capacity_kn)):
        if not (isinstance(val, (int, float, np.floating)) and math.isfinite(val) and val > 0):
            raise NPRInputError(f"{name} = {val!r} must be a finite number > 0.", column=name, fix=f"give {name} (units in the name).")
    if int(n_storeys) != n_storeys or n_storeys < 1:
        raise NPRInputError(f"n_storeys = {n_storeys!r} must be a positive integer.", column="n_storeys", fix="give the number of storeys above the base.")
    sd = float(spectrum.design_sa_g(period_s, q=q, beta=beta))
    lam = 0.85 if (period_s <= 2.0 * spectrum.t_c_s and n_storeys > 2) else 1.0
    f_b = sd * G * total_mass_t * lam
    applicable = period_s <= min(4.0 * spectrum.t_c_s, 2.0)
    return LateralForceResult(
        period_s=float(period_s),
        q=float(q),
        beta=float(beta),
        sd_g=sd,
        lambda_factor=lam,
        total_mass_t=float(total_mass_t),
        n_storeys=int(n_storeys),
        f_b_kn=f_b,
        base_shear_capacity_kn=float(base_shear_capacity_kn),
        applicable=bool(applicable),
        spectrum=spectrum,
        checks=(Check("base shear F_b vs base-shear capacity", f_b, float(base_shear_capacity_kn), "kN"),),
        edition=t.edition,
        table_version=t.table_version,
        provisional=t.provisional,
    )


# ------------------------------------------------------------------------------------------
# (b) N2 method


def n2_target_displacement(
    se_t_star_g: float,
    t_star_s: float,
    t_c_s: float,
    f_y_star_kn: float,
    m_star_t: float,
    cap_factor: float | None = 3.0,
) -> tuple[float, float, float, str, bool]:
    r"""Target displacement of the equivalent SDOF system, EN 1998-1:2004 B.5.

    .. math::

        d_{et}^* = S_e(T^*)\,g\,\left[\frac{T^*}{2\pi}\right]^2 \quad \text{(B.9)} \qquad
        q_u = \frac{S_e(T^*)\,g\,m^*}{F_y^*} \quad \text{(B.12)}

    * :math:`T^* \ge T_C`: :math:`d_t^* = d_{et}^*` (equal displacement, B.10);
    * :math:`T^* < T_C` and :math:`q_u \le 1` (:math:`F_y^*/m^* \ge S_e(T^*)`): elastic,
      :math:`d_t^* = d_{et}^*` (B.11 first case);
    * :math:`T^* < T_C` and :math:`q_u > 1`:
      :math:`d_t^* = \frac{d_{et}^*}{q_u}\left(1 + (q_u - 1)\frac{T_C}{T^*}\right) \ge d_{et}^*`
      (B.11), and :math:`d_t^*` "need not exceed :math:`3 d_{et}^*`" (applied as a cap with
      ``cap_factor = 3``; ``None`` disables it).

    Parameters
    ----------
    se_t_star_g
        Elastic spectral acceleration at T*. [g]
    t_star_s
        Period of the idealised SDOF system T*. [s]
    t_c_s
        Corner period T_C of the spectrum. [s]
    f_y_star_kn
        Yield force of the idealised SDOF system. [kN]
    m_star_t
        SDOF mass m*. [t]
    cap_factor
        Cap on :math:`d_t^*/d_{et}^*` in the short-period range (3 in EN 1998-1 B.5). [-]

    Returns
    -------
    tuple
        ``(d_et_star_m, q_u, d_t_star_m, regime, capped)`` with regime one of ``"elastic"``,
        ``"short-period inelastic"``, ``"equal displacement"``.
    """
    if not (t_star_s > 0 and f_y_star_kn > 0 and m_star_t > 0 and se_t_star_g >= 0):
        raise NPRInputError("N2 needs T* > 0, F_y* > 0, m* > 0 and S_e >= 0.", fix="check the capacity curve, masses and spectrum.")
    d_et = se_t_star_g * G * (t_star_s / (2.0 * math.pi)) ** 2
    q_u = se_t_star_g * G * m_star_t / f_y_star_kn
    capped = False
    if t_star_s >= t_c_s:
        return d_et, q_u, d_et, "equal displacement", False
    if q_u <= 1.0:
        return d_et, q_u, d_et, "elastic", False
    d_t = d_et / q_u * (1.0 + (q_u - 1.0) * t_c_s / t_star_s)
    d_t = max(d_t, d_et)
    if cap_factor is not None and d_t > cap_factor * d_et:
        d_t, capped = cap_factor * d_et, True
    return d_et, q_u, d_t, "short-period inelastic", capped


@dataclass(frozen=True, kw_only=True)
class N2Result(_ResultMixin):
    r"""Result of :func:`n2_method` (EN 1998-1 Annex B; Fajfar 2000).

    Attributes
    ----------
    gamma
        Transformation factor Γ (B.3). [-]
    m_star_t
        SDOF mass m* (B.2). [t]
    f_y_star_kn, d_y_star_m
        Yield force and displacement of the idealised SDOF system (B.3, B.8). [kN], [m]
    d_m_star_m, e_m_star_knm
        Displacement and energy used for the idealisation. [m], [kN·m]
    t_star_s
        Period T* (B.7). [s]
    se_t_star_g
        :math:`S_e(T^*)`. [g]
    d_et_star_m
        Elastic SDOF target displacement (B.9). [m]
    q_u
        Ratio of elastic demand to yield strength (B.12). [-]
    d_t_star_m
        SDOF target displacement (B.10/B.11). [m]
    d_t_m
        MDOF (roof) target displacement :math:`\Gamma d_t^*` (B.6 inverse, B.5(6)). [m]
    regime
        ``"elastic"``, ``"short-period inelastic"`` or ``"equal displacement"``.
    capped
        Whether the 3 d_et* cap applied.
    iterations
        Number of idealisation passes (1 without iteration).
    performance_point_sd_m, performance_point_sa_g
        Point of the SDOF response in ADRS: (d_t*, min(S_e(T*), F_y*/(m* g))). [m], [g]
    """

    method: str = "N2"
    gamma: float
    m_star_t: float
    f_y_star_kn: float
    d_y_star_m: float
    d_m_star_m: float
    e_m_star_knm: float
    t_star_s: float
    se_t_star_g: float
    d_et_star_m: float
    q_u: float
    d_t_star_m: float
    d_t_m: float
    regime: str
    capped: bool
    iterations: int
    damping: float
    performance_point_sd_m: float
    performance_point_sa_g: float
    spectrum: SpectrumParameters
    checks: tuple[Check, ...]
    edition: str
    table_version: str
    provisional: bool


CapacityOption = str | float | Sequence[str]


def _capacity_names(displacement_capacity) -> list:
    if isinstance(displacement_capacity, (int, float)) and not isinstance(displacement_capacity, bool):
        return [float(displacement_capacity)]
    if isinstance(displacement_capacity, str):
        names = ["ultimate", "drift"] if displacement_capacity == "governing" else [displacement_capacity]
    else:
        names = list(displacement_capacity)
    for n in names:
        if n not in ("ultimate", "strength_drop", "drift"):
            raise NPRInputError(
                f"unknown displacement capacity {n!r}.",
                column="displacement_capacity",
                fix="use 'ultimate' (last point of the curve), 'strength_drop', 'drift', 'governing' (ultimate and drift) or a number in metres.",
            )
    return names


def _displacement_checks(
    d_t_m: float,
    curve: PushoverCurve,
    structure: StructureModel,
    displacement_capacity: CapacityOption,
    drift_limit: float | None,
    strength_drop: float,
) -> tuple[Check, ...]:
    """Near-collapse checks of the roof displacement (EN 1998-3 §2.1 NC limit state)."""
    checks = []
    for n in _capacity_names(displacement_capacity):
        if isinstance(n, float):
            if not (math.isfinite(n) and n > 0):
                raise NPRInputError(f"displacement capacity {n} m must be > 0.", column="displacement_capacity", fix="give the near-collapse roof displacement in metres.")
            checks.append(Check("roof displacement vs given near-collapse displacement", d_t_m, n, "m", n))
        elif n == "ultimate":
            d_u = curve.ultimate_displacement_m
            checks.append(Check("roof displacement vs ultimate displacement of the pushover curve", d_t_m, d_u, "m", d_u))
        elif n == "strength_drop":
            d_u = curve.displacement_at_strength_drop(strength_drop)
            checks.append(Check(f"roof displacement vs displacement at {100 * strength_drop:g} % strength drop", d_t_m, d_u, "m", d_u))
        else:  # drift
            h = structure.roof_height_m
            if h is None:
                raise NPRInputError("a drift check needs the level heights of the building.", column="level_heights_m", fix="give level_heights_m (or height_m / n_storeys), or use displacement_capacity='ultimate'.")
            if drift_limit is None or not (0 < drift_limit < 1):
                raise NPRInputError(f"drift limit {drift_limit!r} must be in (0, 1).", column="drift_limit", fix="take drift_limit_nc of the structural system from the tables.")
            checks.append(Check("roof drift vs near-collapse drift limit", d_t_m / h, float(drift_limit), "-", float(drift_limit) * h))
    return tuple(checks)


def _idealisation_end(curve_sdof: PushoverCurve, gamma: float, d_m_m: float | None, names: list, strength_drop: float) -> float:
    if d_m_m is not None:
        return float(d_m_m) / gamma
    if "strength_drop" in names:
        return curve_sdof.displacement_at_strength_drop(strength_drop)
    return curve_sdof.ultimate_displacement_m


@dataclass(frozen=True)
class _SDOF:
    """Idealised SDOF system (internal; shared by N2, CSM and the fragility link)."""

    gamma: float
    m_star_t: float
    bilinear: BilinearCurve

    @property
    def t_star_s(self) -> float:
        """T* = 2π sqrt(m* d_y*/F_y*), EN 1998-1 eq. B.7 (t·m/kN = s²). [s]"""
        return 2.0 * math.pi * math.sqrt(self.m_star_t * self.bilinear.d_y_m / self.bilinear.f_y_kn)

    @property
    def a_y_g(self) -> float:
        """Yield acceleration F_y*/(m* g). [g]"""
        return self.bilinear.f_y_kn / (self.m_star_t * G)

    def target(self, spectrum: SpectrumParameters, damping: float, cap_factor: float | None):
        t_star = self.t_star_s
        se = float(spectrum.sa_g(t_star, damping=damping))
        return (t_star, se) + n2_target_displacement(se, t_star, spectrum.t_c_s, self.bilinear.f_y_kn, self.m_star_t, cap_factor)


def _sdof(curve: PushoverCurve, structure: StructureModel, d_m_m: float | None, names: list, strength_drop: float = 0.2) -> tuple[_SDOF, PushoverCurve]:
    sdof_curve = sdof_transformation(curve, structure)
    gamma = structure.gamma
    bil = bilinear_idealisation(sdof_curve, _idealisation_end(sdof_curve, gamma, d_m_m, names, strength_drop))
    return _SDOF(gamma, structure.m_star_t, bil), sdof_curve


def n2_method(
    curve: PushoverCurve,
    structure: StructureModel,
    spectrum: SpectrumParameters,
    *,
    damping: float = 0.05,
    displacement_capacity: CapacityOption = "ultimate",
    drift_limit: float | None = None,
    strength_drop: float = 0.2,
    d_m_m: float | None = None,
    iterate: bool = False,
    cap_factor: float | None = 3.0,
    tables: NormTables | None = None,
    max_iterations: int = 50,
    rtol: float = 1e-6,
) -> N2Result:
    r"""N2 method: target displacement from a pushover curve and an elastic spectrum.

    EN 1998-1:2004 Annex B (Fajfar 2000):

    1. SDOF transformation (B.2): :math:`m^* = \sum m_i\Phi_i`,
       :math:`\Gamma = m^*/\sum m_i\Phi_i^2`, :math:`F^* = V/\Gamma`, :math:`d^* = d_n/\Gamma`.
    2. Equal-energy elastic-perfectly plastic idealisation (B.3):
       :math:`d_y^* = 2(d_m^* - E_m^*/F_y^*)`, see
       :func:`npr9998.capacity.bilinear_idealisation`.
    3. Period (B.4): :math:`T^* = 2\pi\sqrt{m^* d_y^*/F_y^*}`.
    4. Target displacement (B.5): :func:`n2_target_displacement`.
    5. Optional iteration (B.5(5)): repeat 2-4 with :math:`d_m^* = d_t^*` until stable.
    6. Roof displacement (B.6): :math:`d_t = \Gamma d_t^*`, checked against the near-collapse
       displacement capacity (EN 1998-3 §2.1).

    Parameters
    ----------
    curve
        MDOF pushover curve (roof displacement [m], base shear [kN]).
    structure
        Storey masses [t], mode shape (1 at the roof) and optionally level heights [m].
    spectrum
        Elastic spectrum for the consequence class. [g], [s]
    damping
        Viscous damping ratio of the spectrum. [-]
    displacement_capacity
        Near-collapse capacity: ``"ultimate"`` (last point of the curve, default),
        ``"strength_drop"`` (first point after the peak where V falls by ``strength_drop``),
        ``"drift"`` (``drift_limit`` times roof height), ``"governing"`` (ultimate and drift;
        the larger unity check governs), a list of those names, or a number [m].
    drift_limit
        Near-collapse roof-drift limit for ``"drift"`` (table value). [-]
    strength_drop
        Fractional strength drop defining the ``"strength_drop"`` capacity. [-]
    d_m_m
        Roof displacement up to which the curve is idealised; default the last point of the
        curve (or the strength-drop point when that capacity is used). [m]
    iterate
        Iterate the idealisation with :math:`d_m^* = d_t^*` (EN 1998-1 B.5(5)).
    cap_factor
        :math:`d_t^* \le` cap_factor :math:`d_{et}^*` in the short-period range (3 in EN). [-]
    tables
        Normative tables, recorded in the result; default the provisional set.

    Returns
    -------
    N2Result
    """
    t = _tables(tables)
    names = _capacity_names(displacement_capacity)
    sd, sdof_curve = _sdof(curve, structure, d_m_m, names, strength_drop)
    t_star, se, d_et, q_u, d_t_star, regime, capped = sd.target(spectrum, damping, cap_factor)
    iterations = 1
    if iterate:
        d_end = sdof_curve.ultimate_displacement_m
        for iterations in range(2, max_iterations + 2):
            dm_new = min(max(d_t_star, 1e-9 * d_end), d_end)
            if abs(dm_new - sd.bilinear.d_m_m) <= rtol * max(dm_new, 1e-12):
                iterations -= 1
                break
            sd = _SDOF(sd.gamma, sd.m_star_t, bilinear_idealisation(sdof_curve, dm_new))
            t_star, se, d_et, q_u, d_t_star, regime, capped = sd.target(spectrum, damping, cap_factor)
        else:
            raise NPRInputError(f"N2 idealisation did not converge in {max_iterations} iterations.", fix="use iterate=False (idealise up to the ultimate displacement).")
    d_t = sd.gamma * d_t_star
    checks = _displacement_checks(d_t, curve, structure, displacement_capacity, drift_limit, strength_drop)
    b = sd.bilinear
    return N2Result(
        gamma=sd.gamma,
        m_star_t=sd.m_star_t,
        f_y_star_kn=b.f_y_kn,
        d_y_star_m=b.d_y_m,
        d_m_star_m=b.d_m_m,
        e_m_star_knm=b.e_m_knm,
        t_star_s=t_star,
        se_t_star_g=se,
        d_et_star_m=d_et,
        q_u=q_u,
        d_t_star_m=d_t_star,
        d_t_m=d_t,
        regime=regime,
        capped=capped,
        iterations=iterations,
        damping=damping,
        performance_point_sd_m=d_t_star,
        performance_point_sa_g=min(se, sd.a_y_g),
        spectrum=spectrum,
        checks=checks,
        edition=t.edition,
        table_version=t.table_version,
        provisional=t.provisional,
    )


# ------------------------------------------------------------------------------------------
# (c) capacity-spectrum method

_ATC40_KAPPA = {
    # behaviour type: (beta_0 threshold, kappa below, a, b) with kappa = a - b * (1 - d_y/d_p) above
    "A": (0.1625, 1.0, 1.13, 0.51),
    "B": (0.25, 0.67, 0.845, 0.446),
    "C": (math.inf, 0.33, 0.33, 0.0),
}


def atc40_effective_damping(mu: float, behaviour_type: str = "B", base_damping: float = 0.05) -> float:
    r"""Effective damping of an elastic-perfectly plastic system, ATC-40 eqs. 8-5 to 8-9.

    For a bilinear EPP curve at ductility :math:`\mu = d_p/d_y` the hysteretic damping is
    :math:`\beta_0 = 0.637 (a_y d_p - d_y a_p)/(a_p d_p) = 0.637 (1 - 1/\mu)` and

    .. math:: \beta_{eff} = \kappa \beta_0 + \beta_{base}

    with κ from ATC-40 Table 8-1: type A: 1.0 for :math:`\beta_0 \le 0.1625`, else
    :math:`1.13 - 0.51(1 - 1/\mu)`; type B: 0.67 for :math:`\beta_0 \le 0.25`, else
    :math:`0.845 - 0.446(1 - 1/\mu)`; type C: 0.33.

    Parameters
    ----------
    mu
        Displacement ductility (>= 1; values below 1 are treated as 1). [-]
    behaviour_type
        ATC-40 structural behaviour type ``"A"``, ``"B"`` or ``"C"`` (Table 8-4). [-]
    base_damping
        Viscous damping of the elastic system (5 % in ATC-40). [-]

    Returns
    -------
    float
        Effective damping ratio [-].
    """
    if behaviour_type not in _ATC40_KAPPA:
        raise NPRInputError(f"unknown ATC-40 behaviour type {behaviour_type!r}.", column="behaviour_type", fix="use 'A', 'B' or 'C'.")
    x = 1.0 - 1.0 / max(mu, 1.0)
    beta0 = 0.637 * x
    thr, k_low, a, b = _ATC40_KAPPA[behaviour_type]
    kappa = k_low if beta0 <= thr else a - b * x
    return kappa * beta0 + base_damping


def fema440_effective_parameters(mu: float, base_damping: float = 0.05) -> tuple[float, float]:
    r"""Effective damping and period ratio, FEMA 440 eqs. 6-5 to 6-10 (any hysteresis type).

    With :math:`\mu` the ductility and damping in percent:

    * :math:`1 < \mu < 4`: :math:`\beta_{eff} = 4.9(\mu-1)^2 - 1.1(\mu-1)^3 + \beta_0`,
      :math:`T_{eff}/T_0 = 0.20(\mu-1)^2 - 0.038(\mu-1)^3 + 1`;
    * :math:`4 \le \mu \le 6.5`: :math:`\beta_{eff} = 14.0 + 0.32(\mu-1) + \beta_0`,
      :math:`T_{eff}/T_0 = 0.28 + 0.13(\mu-1) + 1`;
    * :math:`\mu > 6.5`:
      :math:`\beta_{eff} = 19\left[\frac{0.64(\mu-1)-1}{[0.64(\mu-1)]^2}\right](T_{eff}/T_0)^2 + \beta_0`,
      :math:`T_{eff}/T_0 = 0.89\left[\sqrt{\frac{\mu-1}{1+0.05(\mu-2)}} - 1\right] + 1`.

    Parameters
    ----------
    mu
        Displacement ductility (values below 1 are treated as 1). [-]
    base_damping
        Elastic viscous damping :math:`\beta_0` as a fraction. [-]

    Returns
    -------
    tuple of float
        ``(beta_eff, t_eff_over_t0)``; damping as a fraction. [-]
    """
    m1 = max(mu, 1.0) - 1.0
    b0 = 100.0 * base_damping
    if m1 + 1.0 < 4.0:
        beta = 4.9 * m1**2 - 1.1 * m1**3 + b0
        ratio = 0.20 * m1**2 - 0.038 * m1**3 + 1.0
    elif m1 + 1.0 <= 6.5:
        beta = 14.0 + 0.32 * m1 + b0
        ratio = 0.28 + 0.13 * m1 + 1.0
    else:
        ratio = 0.89 * (math.sqrt(m1 / (1.0 + 0.05 * (m1 - 1.0))) - 1.0) + 1.0
        x = 0.64 * m1
        beta = 19.0 * ((x - 1.0) / x**2) * ratio**2 + b0
    return beta / 100.0, ratio


@dataclass(frozen=True, kw_only=True)
class CSMResult(_ResultMixin):
    r"""Result of :func:`capacity_spectrum_method`.

    Attributes
    ----------
    procedure
        ``"atc40"`` or ``"fema440"``.
    gamma, m_star_t, f_y_star_kn, d_y_star_m, t_star_s
        SDOF transformation and EPP idealisation, as in :class:`N2Result`; ``t_star_s`` is
        the initial period T_0. [-], [t], [kN], [m], [s]
    elastic
        Whether the performance point is on the elastic branch.
    mu
        Ductility at the performance point :math:`d_p^*/d_y^*` (1 when elastic). [-]
    beta_eff
        Effective damping at the performance point. [-]
    eta
        Spectral reduction :math:`\eta(\beta_{eff})` (EN 1998-1 eq. 3.6, >= 0.55). [-]
    period_used_s
        Secant period (ATC-40) or effective period (FEMA 440) at the performance point. [s]
    sd_p_star_m, sa_p_g
        Performance point in ADRS. [m], [g]
    d_t_m
        Roof displacement :math:`\Gamma d_p^*`. [m]
    beyond_curve
        Whether the performance point lies beyond the last point of the curve (EPP plateau
        extrapolated).
    """

    method: str = "capacity spectrum"
    procedure: str
    behaviour_type: str
    gamma: float
    m_star_t: float
    f_y_star_kn: float
    d_y_star_m: float
    d_m_star_m: float
    t_star_s: float
    elastic: bool
    mu: float
    beta_eff: float
    eta: float
    period_used_s: float
    sd_p_star_m: float
    sa_p_g: float
    d_t_m: float
    beyond_curve: bool
    base_damping: float
    spectrum: SpectrumParameters
    checks: tuple[Check, ...]
    edition: str
    table_version: str
    provisional: bool


def _csm_state(d: float, sd: _SDOF, spectrum: SpectrumParameters, procedure: str, behaviour_type: str, base_damping: float):
    """Demand displacement at trial point d on the EPP plateau: (demand_d, mu, beta, period)."""
    mu = d / sd.bilinear.d_y_m
    t0 = sd.t_star_s
    if procedure == "atc40":
        beta = atc40_effective_damping(mu, behaviour_type, base_damping)
        period = 2.0 * math.pi * math.sqrt(d / (sd.a_y_g * G))  # secant period on the plateau
    else:
        beta, ratio = fema440_effective_parameters(mu, base_damping)
        period = ratio * t0
    beta = min(beta, 0.99)
    return float(spectrum.sd_m(period, damping=beta)), mu, beta, period


def capacity_spectrum_method(
    curve: PushoverCurve,
    structure: StructureModel,
    spectrum: SpectrumParameters,
    *,
    procedure: Literal["atc40", "fema440"] = "atc40",
    behaviour_type: str = "B",
    base_damping: float = 0.05,
    displacement_capacity: CapacityOption = "ultimate",
    drift_limit: float | None = None,
    strength_drop: float = 0.2,
    d_m_m: float | None = None,
    tables: NormTables | None = None,
) -> CSMResult:
    r"""Capacity-spectrum method with effective damping (ATC-40 / FEMA 440 style).

    The capacity curve is transformed to the SDOF/ADRS format as in the N2 method
    (:math:`S_a = F^*/(m^* g)`, :math:`S_d = d^*`; identical to ATC-40 eqs. 8-1/8-2 with a mode
    shape normalised at the roof) and idealised as elastic-perfectly plastic (equal energy).
    The demand is the NPR elastic spectrum reduced for the effective damping with
    :math:`\eta(\beta_{eff}) = \sqrt{10/(5 + 100\beta_{eff})} \ge 0.55` (EN 1998-1 eq. 3.6),
    in place of the ATC-40 reduction factors SR_A, SR_V.

    The performance point :math:`d_p^*` solves, for :math:`d > d_y^*`,

    .. math:: S_{De}(T(d), \beta_{eff}(d)) = d

    * ``procedure="atc40"``: :math:`T = T_{sec} = 2\pi\sqrt{d/(a_y g)}` (the radial line
      through the trial point) and :math:`\beta_{eff}` from :func:`atc40_effective_damping`
      (ATC-40 procedure B, on the EPP idealisation);
    * ``procedure="fema440"``: :math:`T = T_{eff}` and :math:`\beta_{eff}` from
      :func:`fema440_effective_parameters`; this is the intersection with the modified ADRS
      (FEMA 440 §6.3: the MADRS at :math:`T_{sec}` has displacement :math:`S_{De}(T_{eff})`).

    If the elastic demand :math:`S_{De}(T_0, \beta_{base})` does not exceed :math:`d_y^*`, the
    point is elastic. Otherwise the smallest root is found (scan over ductility 1 to 10⁴, then
    Brent's method); a root always exists because the demand displacement is bounded for
    long periods. Beyond the last point of the curve the EPP plateau is extrapolated and the
    check then fails. The FEMA 440 coefficients are discontinuous at μ = 4 and 6.5 (as
    published); a sign change that falls on such a jump returns the jump point.

    Parameters
    ----------
    curve, structure, spectrum
        As :func:`n2_method`.
    procedure
        ``"atc40"`` or ``"fema440"``.
    behaviour_type
        ATC-40 structural behaviour type for ``"atc40"``. [-]
    base_damping
        Elastic viscous damping. [-]
    displacement_capacity, drift_limit, strength_drop, d_m_m, tables
        As :func:`n2_method`.

    Returns
    -------
    CSMResult
    """
    if procedure not in ("atc40", "fema440"):
        raise NPRInputError(f"unknown capacity-spectrum procedure {procedure!r}.", column="procedure", fix="use 'atc40' or 'fema440'.")
    if behaviour_type not in _ATC40_KAPPA:
        raise NPRInputError(f"unknown ATC-40 behaviour type {behaviour_type!r}.", column="behaviour_type", fix="use 'A', 'B' or 'C'.")
    t = _tables(tables)
    names = _capacity_names(displacement_capacity)
    sd, sdof_curve = _sdof(curve, structure, d_m_m, names, strength_drop)
    d_y = sd.bilinear.d_y_m
    t0 = sd.t_star_s
    d_el = float(spectrum.sd_m(t0, damping=base_damping))
    if d_el <= d_y:
        d_p, mu, beta, period, elastic = d_el, 1.0, base_damping, t0, True
    else:
        elastic = False

        def resid(d):
            return _csm_state(d, sd, spectrum, procedure, behaviour_type, base_damping)[0] - d

        grid = d_y * np.logspace(0.0, 4.0, 801)
        prev = grid[0] * (1 + 1e-12)
        r_prev = resid(prev)
        root = None
        for d in grid[1:]:
            r = resid(d)
            if r_prev > 0 >= r:
                root = brentq(resid, prev, d, xtol=1e-14, rtol=1e-12)
                break
            prev, r_prev = d, r
        if root is None:  # pragma: no cover - bounded demand makes this unreachable
            raise NPRInputError("no performance point found up to a ductility of 10^4.", fix="check the spectrum and capacity curve units.")
        d_p = float(root)
        _, mu, beta, period = _csm_state(d_p, sd, spectrum, procedure, behaviour_type, base_damping)
    sa_p = float(sd.bilinear.force_at(d_p)) / (sd.m_star_t * G)
    d_t = sd.gamma * d_p
    checks = _displacement_checks(d_t, curve, structure, displacement_capacity, drift_limit, strength_drop)
    return CSMResult(
        procedure=procedure,
        behaviour_type=behaviour_type,
        gamma=sd.gamma,
        m_star_t=sd.m_star_t,
        f_y_star_kn=sd.bilinear.f_y_kn,
        d_y_star_m=d_y,
        d_m_star_m=sd.bilinear.d_m_m,
        t_star_s=t0,
        elastic=elastic,
        mu=float(mu),
        beta_eff=float(beta),
        eta=float(damping_correction(beta)),
        period_used_s=float(period),
        sd_p_star_m=d_p,
        sa_p_g=sa_p,
        d_t_m=d_t,
        beyond_curve=bool(d_p > sdof_curve.ultimate_displacement_m),
        base_damping=base_damping,
        spectrum=spectrum,
        checks=checks,
        edition=t.edition,
        table_version=t.table_version,
        provisional=t.provisional,
    )
