r"""Capacity curves: pushover input, MDOF -> SDOF transformation, bilinear idealisation.

The pushover (capacity) curve of a building is base shear :math:`V` [kN] against roof
displacement :math:`d_n` [m] from a nonlinear static analysis with a lateral load pattern
proportional to :math:`m_i \Phi_i`. EN 1998-1:2004 Annex B transforms it to an equivalent
single-degree-of-freedom (SDOF) system and idealises that as elastic-perfectly plastic with the
equal-energy rule. This module holds those steps; :mod:`npr9998.methods` uses them.

**What a pushover curve must satisfy** (:class:`PushoverCurve` rejects the rest with an
:class:`~npr9998.errors.NPRInputError` naming the file and row):

* at least one point with a displacement > 0; all values finite;
* roof displacements strictly increasing from point to point (a repeated or decreasing
  displacement is rejected: the curve must be a function of displacement; unloading branches
  and cyclic curves are not accepted);
* displacement >= 0 and base shear >= 0 everywhere (truncate the curve where the analysis
  loses the structure instead of giving negative shear);
* a curve that does not start at ``d = 0`` gets the origin ``(0, 0)`` prepended; a first point
  at ``d = 0`` must have ``V = 0``;
* the peak base shear must be > 0.

Softening after the peak is accepted.

References
----------
EN 1998-1:2004 Annex B (B.2 transformation, B.3 idealisation);
Fajfar P. (2000), Earthquake Spectra 16(3):573-592, doi:10.1193/1.1586128.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from npr9998.errors import NPRInputError

__all__ = [
    "PushoverCurve",
    "StructureModel",
    "BilinearCurve",
    "load_pushover_csv",
    "bilinear_idealisation",
    "sdof_transformation",
]

PUSHOVER_ALIASES = {
    "roof_displacement_m": ("roof_displacement", "displacement_m", "d_m", "d", "dn_m", "roof_disp_m"),
    "base_shear_kn": ("base_shear", "base_shear_kN", "V_kN", "v_kn", "V", "shear_kn"),
}


def _where(source: str, rows: Sequence[int] | None, i: int) -> dict:
    if rows is not None and 0 <= i < len(rows):
        return {"file": source or None, "row": rows[i]}
    return {"file": source or None, "column": f"point {i}"}


@dataclass(frozen=True)
class PushoverCurve:
    """A capacity curve: base shear against roof displacement (MDOF) or F* against d* (SDOF).

    Build it with :meth:`from_points` (validates and prepends the origin when needed) or
    :func:`load_pushover_csv`. The arrays are read-only.

    Attributes
    ----------
    roof_displacement_m
        Roof (control-node) displacements, strictly increasing from 0. [m]
    base_shear_kn
        Base shear at each displacement, >= 0, starting at 0. [kN]
    source
        File name or description, for messages and reports.
    """

    roof_displacement_m: np.ndarray
    base_shear_kn: np.ndarray
    source: str = ""

    def __post_init__(self) -> None:
        d = np.array(self.roof_displacement_m, dtype=float, copy=True)
        v = np.array(self.base_shear_kn, dtype=float, copy=True)
        _validate_points(d, v, self.source, None)
        d.flags.writeable = False
        v.flags.writeable = False
        object.__setattr__(self, "roof_displacement_m", d)
        object.__setattr__(self, "base_shear_kn", v)

    @classmethod
    def from_points(cls, roof_displacement_m, base_shear_kn, *, source: str = "", rows: Sequence[int] | None = None) -> "PushoverCurve":
        """Validate points and build a curve, prepending ``(0, 0)`` if the first d > 0.

        Parameters
        ----------
        roof_displacement_m
            Roof displacements. [m]
        base_shear_kn
            Base shears. [kN]
        source
            File name for error messages.
        rows
            CSV line number of each point, for error messages.
        """
        d = np.asarray(roof_displacement_m, dtype=float).ravel()
        v = np.asarray(base_shear_kn, dtype=float).ravel()
        if d.shape != v.shape:
            raise NPRInputError(f"pushover curve has {d.size} displacements but {v.size} base shears.", file=source or None, fix="give one base shear per displacement.")
        _validate_points(d, v, source, rows, allow_missing_origin=True)
        if d[0] > 0:
            d = np.concatenate([[0.0], d])
            v = np.concatenate([[0.0], v])
        return cls(d, v, source)

    # ---- derived quantities -------------------------------------------------------------
    @property
    def peak_shear_kn(self) -> float:
        """Maximum base shear. [kN]"""
        return float(self.base_shear_kn.max())

    @property
    def ultimate_displacement_m(self) -> float:
        """Last displacement of the curve (the analysis' ultimate point). [m]"""
        return float(self.roof_displacement_m[-1])

    def displacement_at_strength_drop(self, drop: float = 0.2) -> float:
        """First displacement after the peak at which V falls to (1 - drop) V_max [m].

        Linear interpolation between points; the last displacement when the curve never drops
        that far (a common near-collapse definition, e.g. EN 1998-3 practice of a 20 % drop).
        """
        if not (0 < drop < 1):
            raise NPRInputError(f"strength drop {drop!r} must be in (0, 1).", column="strength_drop", fix="use e.g. 0.2 for a 20 % drop.")
        d, v = self.roof_displacement_m, self.base_shear_kn
        ip = int(np.argmax(v))
        level = (1.0 - drop) * v[ip]
        for j in range(ip + 1, d.size):
            if v[j] <= level:
                return float(d[j - 1] + (v[j - 1] - level) / (v[j - 1] - v[j]) * (d[j] - d[j - 1]))
        return float(d[-1])

    def energy_to(self, displacement_m: float) -> float:
        r"""Area under the curve from 0 to ``displacement_m`` (trapezoidal, exact for the polyline). [kN·m]"""
        d, v = self.roof_displacement_m, self.base_shear_kn
        dm = float(displacement_m)
        if not (0 <= dm <= d[-1] * (1 + 1e-12)):
            raise NPRInputError(f"displacement {dm} m is outside the curve [0, {d[-1]}] m.", file=self.source or None, fix="choose a displacement within the curve.")
        k = int(np.searchsorted(d, dm, side="right"))
        dd = np.concatenate([d[:k], [dm]])
        vv = np.concatenate([v[:k], [np.interp(dm, d, v)]])
        return float(np.sum(0.5 * (vv[1:] + vv[:-1]) * np.diff(dd)))

    def scaled(self, force_factor: float = 1.0, displacement_factor: float = 1.0) -> "PushoverCurve":
        """A copy with base shears times ``force_factor`` and displacements times ``displacement_factor``."""
        if not (force_factor > 0 and displacement_factor > 0):
            raise NPRInputError("scale factors must be > 0.", fix="use positive factors.")
        return PushoverCurve(self.roof_displacement_m * displacement_factor, self.base_shear_kn * force_factor, self.source)


def _validate_points(d: np.ndarray, v: np.ndarray, source: str, rows, allow_missing_origin: bool = False) -> None:
    if d.ndim != 1 or v.ndim != 1 or d.shape != v.shape:
        raise NPRInputError("displacements and base shears must be 1-D arrays of equal length.", file=source or None, fix="give one base shear per displacement.")
    if d.size == 0:
        raise NPRInputError("pushover curve has no points.", file=source or None, fix="give at least one point with a displacement > 0.")
    for i in range(d.size):
        if not (math.isfinite(d[i]) and math.isfinite(v[i])):
            raise NPRInputError(f"point {i}: non-finite value (d={d[i]}, V={v[i]}).", **_where(source, rows, i), fix="remove or correct the point.")
        if d[i] < 0:
            raise NPRInputError(f"negative roof displacement {d[i]} m.", **_where(source, rows, i), fix="give displacements >= 0 in the push direction (m).")
        if v[i] < 0:
            raise NPRInputError(f"negative base shear {v[i]} kN.", **_where(source, rows, i), fix="truncate the curve where the analysis loses the structure; base shear must be >= 0 kN.")
    for i in range(1, d.size):
        if not d[i] > d[i - 1]:
            raise NPRInputError(
                f"roof displacement is not increasing ({d[i - 1]} m then {d[i]} m).",
                **_where(source, rows, i),
                fix="sort the points by displacement and remove repeated displacements or unloading branches (the curve must be a function of displacement).",
            )
    if d[0] == 0 and v[0] != 0:
        raise NPRInputError(f"the point at zero displacement has base shear {v[0]} kN.", **_where(source, rows, 0), fix="the curve must start at (0 m, 0 kN).")
    if not allow_missing_origin and d[0] != 0:
        raise NPRInputError("curve does not start at zero displacement.", file=source or None, fix="use PushoverCurve.from_points, which prepends the origin.")
    if d[-1] <= 0:
        raise NPRInputError("pushover curve has no point with a displacement > 0.", file=source or None, fix="give the pushover points (roof displacement > 0).")
    if v.max() <= 0:
        raise NPRInputError("peak base shear is 0 kN.", file=source or None, fix="check the base-shear column and its unit (kN).")


def load_pushover_csv(path: str | Path) -> PushoverCurve:
    """Read a pushover curve from CSV: columns ``roof_displacement_m`` [m], ``base_shear_kn`` [kN].

    Header spellings accepted (case-insensitive) are listed in ``PUSHOVER_ALIASES``; ``;``-
    delimited files with decimal commas are accepted. Validation rules: module docstring.
    """
    from npr9998._io import read_csv_table

    table = read_csv_table(path, required=("roof_displacement_m", "base_shear_kn"), aliases=PUSHOVER_ALIASES, what="pushover curve")
    d, v, lines = [], [], []
    for line, r in table.rows:
        d.append(table.float(line, r, "roof_displacement_m"))
        v.append(table.float(line, r, "base_shear_kn"))
        lines.append(line)
    if not d:
        raise NPRInputError("pushover curve has no data rows.", file=path, fix="add the points below the header.")
    return PushoverCurve.from_points(d, v, source=str(path), rows=lines)


@dataclass(frozen=True)
class StructureModel:
    r"""Storey masses and first-mode shape of a building (for the SDOF transformation).

    Attributes
    ----------
    masses_t
        Storey masses :math:`m_i`, base to roof, each > 0. [t]
    mode_shape
        First-mode shape :math:`\Phi_i`, normalised to 1 at the roof (last entry). [-]
    level_heights_m
        Height of each floor level above the base, increasing; the last is the roof height
        used for drift checks. Optional. [m]
    source
        Where the values came from, for messages.
    """

    masses_t: np.ndarray
    mode_shape: np.ndarray
    level_heights_m: np.ndarray | None = None
    source: str = ""

    def __post_init__(self) -> None:
        src = self.source or None
        m = np.array(self.masses_t, dtype=float, copy=True).ravel()
        phi = np.array(self.mode_shape, dtype=float, copy=True).ravel()
        if m.size == 0:
            raise NPRInputError("no storey masses given.", file=src, column="masses_t", fix="give one mass per storey in tonnes, base to roof.")
        if phi.size != m.size:
            raise NPRInputError(f"{m.size} storey masses but {phi.size} mode-shape values.", file=src, column="mode_shape", fix="give one mode-shape value per storey mass, base to roof.")
        for i, x in enumerate(m):
            if not math.isfinite(x) or x <= 0:
                raise NPRInputError(f"storey mass {i + 1} is {x} t; masses must be finite and > 0.", file=src, column=f"masses_t[{i}]", fix="give positive storey masses in tonnes (t).")
        if not np.all(np.isfinite(phi)):
            raise NPRInputError("mode shape has non-finite values.", file=src, column="mode_shape", fix="give finite mode-shape values.")
        if abs(phi[-1] - 1.0) > 1e-6:
            raise NPRInputError(
                f"mode shape is not normalised to 1 at the roof (roof value {phi[-1]}).",
                file=src,
                column="mode_shape",
                fix=f"divide every value by the roof value {phi[-1]} (EN 1998-1 B.2 uses Phi_n = 1 at the control node).",
            )
        if float(np.sum(m * phi)) <= 0:
            raise NPRInputError("sum of m_i * Phi_i is <= 0.", file=src, column="mode_shape", fix="give the first-mode shape (same sign over the height).")
        h = None
        if self.level_heights_m is not None:
            h = np.array(self.level_heights_m, dtype=float, copy=True).ravel()
            if h.size != m.size:
                raise NPRInputError(f"{m.size} storey masses but {h.size} level heights.", file=src, column="level_heights_m", fix="give one level height per storey.")
            if not np.all(np.isfinite(h)) or h[0] <= 0 or np.any(np.diff(h) <= 0):
                raise NPRInputError(f"level heights {h.tolist()} must be > 0 and increasing.", file=src, column="level_heights_m", fix="give heights above the base in metres, base to roof.")
            h.flags.writeable = False
        m.flags.writeable = False
        phi.flags.writeable = False
        object.__setattr__(self, "masses_t", m)
        object.__setattr__(self, "mode_shape", phi)
        object.__setattr__(self, "level_heights_m", h)

    @classmethod
    def regular(cls, n_storeys: int, storey_mass_t: float, storey_height_m: float, *, source: str = "") -> "StructureModel":
        r"""Equal storeys with a linear mode shape :math:`\Phi_i = z_i / H` (an inverted triangle)."""
        if int(n_storeys) != n_storeys or n_storeys < 1:
            raise NPRInputError(f"n_storeys = {n_storeys!r} must be a positive integer.", file=source or None, column="n_storeys", fix="give the number of storeys above the base.")
        if not (storey_height_m > 0):
            raise NPRInputError(f"storey height {storey_height_m!r} must be > 0 m.", file=source or None, column="storey_height_m", fix="give the storey height in metres.")
        n = int(n_storeys)
        z = storey_height_m * np.arange(1, n + 1)
        return cls(np.full(n, float(storey_mass_t)), z / z[-1], z, source)

    @property
    def n_storeys(self) -> int:
        """Number of storeys (masses). [-]"""
        return int(self.masses_t.size)

    @property
    def total_mass_t(self) -> float:
        r""":math:`\sum m_i`. [t]"""
        return float(self.masses_t.sum())

    @property
    def m_star_t(self) -> float:
        r"""Equivalent SDOF mass :math:`m^* = \sum m_i \Phi_i`, EN 1998-1 eq. B.2. [t]"""
        return float(np.sum(self.masses_t * self.mode_shape))

    @property
    def gamma(self) -> float:
        r"""Transformation factor :math:`\Gamma = m^* / \sum m_i \Phi_i^2`, EN 1998-1 eq. B.3. [-]"""
        return self.m_star_t / float(np.sum(self.masses_t * self.mode_shape**2))

    @property
    def roof_height_m(self) -> float | None:
        """Roof height above the base (last level height), if known. [m]"""
        return None if self.level_heights_m is None else float(self.level_heights_m[-1])


def sdof_transformation(curve: PushoverCurve, structure: StructureModel) -> PushoverCurve:
    r"""Equivalent SDOF capacity curve: :math:`F^* = V/\Gamma`, :math:`d^* = d_n/\Gamma`.

    EN 1998-1:2004 B.2, eqs. B.4 and B.5 (mode shape normalised to 1 at the roof).

    Parameters
    ----------
    curve
        MDOF pushover curve (roof displacement [m], base shear [kN]).
    structure
        Storey masses and mode shape (gives Γ).

    Returns
    -------
    PushoverCurve
        The SDOF curve (d* [m], F* [kN]).
    """
    g = structure.gamma
    return PushoverCurve(curve.roof_displacement_m / g, curve.base_shear_kn / g, (curve.source + " (SDOF)").strip())


@dataclass(frozen=True)
class BilinearCurve:
    r"""Elastic-perfectly plastic idealisation of a capacity curve (equal energy).

    Attributes
    ----------
    f_y_kn
        Yield force :math:`F_y^*`. [kN]
    d_y_m
        Yield displacement :math:`d_y^* = 2(d_m^* - E_m^*/F_y^*)`. [m]
    d_m_m
        Displacement up to which the energies are equated. [m]
    e_m_knm
        Deformation energy of the curve up to :math:`d_m^*`. [kN·m]
    """

    f_y_kn: float
    d_y_m: float
    d_m_m: float
    e_m_knm: float

    @property
    def stiffness_kn_per_m(self) -> float:
        """Elastic stiffness :math:`F_y^*/d_y^*`. [kN/m]"""
        return self.f_y_kn / self.d_y_m

    def force_at(self, displacement_m):
        """Force of the EPP idealisation (plateau held beyond d_m). [kN]"""
        out = np.minimum(np.asarray(displacement_m, dtype=float) * self.stiffness_kn_per_m, self.f_y_kn)
        return float(out) if out.ndim == 0 else out

    @property
    def energy_knm(self) -> float:
        r"""Area under the bilinear curve up to :math:`d_m`: :math:`F_y (d_m - d_y/2)`. [kN·m]"""
        return self.f_y_kn * (self.d_m_m - 0.5 * self.d_y_m)


def bilinear_idealisation(curve: PushoverCurve, d_m_m: float | None = None) -> BilinearCurve:
    r"""Equal-energy elastic-perfectly plastic idealisation, EN 1998-1:2004 B.3 (eq. B.8).

    :math:`F_y^*` is the maximum force of the curve on :math:`[0, d_m^*]` (the strength at the
    plastic mechanism, B.3(1)); the yield displacement follows from equal areas,

    .. math:: d_y^* = 2\left(d_m^* - \frac{E_m^*}{F_y^*}\right)

    with :math:`E_m^*` the area under the curve up to :math:`d_m^*`. So
    :math:`F_y^*(d_m^* - d_y^*/2) = E_m^*` exactly.

    Parameters
    ----------
    curve
        Capacity curve (SDOF or MDOF; the rule is the same). [m], [kN]
    d_m_m
        Displacement up to which energies are equated; default the last point of the curve.
        EN 1998-1 B.3 takes the displacement at the formation of the mechanism; with
        ``iterate=True`` :func:`npr9998.methods.n2_method` sets it to the target displacement
        (B.5(5)). [m]

    Returns
    -------
    BilinearCurve

    Raises
    ------
    NPRInputError
        When ``d_m_m`` is outside the curve, or when the equal-energy rule gives
        :math:`d_y^* > d_m^*` (the curve lost so much strength before :math:`d_m^*` that its
        area is below :math:`F_y^* d_m^*/2`).
    """
    d_end = curve.ultimate_displacement_m
    dm = d_end if d_m_m is None else float(d_m_m)
    if not (0 < dm <= d_end * (1 + 1e-12)):
        raise NPRInputError(f"d_m = {dm} m is outside the curve (0, {d_end}] m.", file=curve.source or None, column="d_m", fix="choose d_m within the pushover curve.")
    dm = min(dm, d_end)
    d, v = curve.roof_displacement_m, curve.base_shear_kn
    inside = v[d <= dm]
    f_y = float(max(inside.max(initial=0.0), np.interp(dm, d, v)))
    e_m = curve.energy_to(dm)
    d_y = 2.0 * (dm - e_m / f_y)
    if d_y <= 0:
        raise NPRInputError("equal-energy idealisation gave d_y <= 0.", file=curve.source or None, fix="check the pushover curve (it must start at the origin with finite stiffness).")
    if d_y > dm * (1 + 1e-9):
        raise NPRInputError(
            f"equal-energy idealisation gives d_y* = {d_y:.4g} m > d_m* = {dm:.4g} m: the curve loses too much strength before d_m "
            f"(area {e_m:.4g} kN·m < F_y* d_m*/2 = {0.5 * f_y * dm:.4g} kN·m).",
            file=curve.source or None,
            column="d_m",
            fix="idealise up to a smaller displacement (e.g. the 20 % strength-drop point: displacement_capacity='strength_drop', or d_m_m=...), or truncate the curve.",
        )
    return BilinearCurve(f_y_kn=f_y, d_y_m=min(d_y, dm), d_m_m=dm, e_m_knm=e_m)
