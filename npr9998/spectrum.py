r"""Elastic and design response spectra in the NPR 9998 form, displacement spectra and ADRS.

NPR 9998 (the Dutch code for the assessment of buildings against induced earthquakes in
Groningen) uses the shape of the EN 1998-1:2004 §3.2.2.2 horizontal elastic spectrum, with two
substitutions:

* the product :math:`a_g S` (reference rock acceleration times soil factor) is replaced by the
  site-specific surface value :math:`a_{g;S}` [g] that the official webtool gives per location
  and return period (the site response is already included, so there are no ground types and
  no separate soil factor);
* the fixed plateau amplification 2.5 is replaced by the plateau factor :math:`p` [-], also from
  the webtool, together with site-specific corner periods :math:`T_B, T_C, T_D` [s].

So, with :math:`\eta = \sqrt{10 / (5 + \xi)} \ge 0.55` (ξ in percent, EN 1998-1 eq. 3.6):

.. math::

    S_e(T) = a_{g;S} \left[1 + \frac{T}{T_B}(\eta p - 1)\right]     & 0 \le T \le T_B \\
    S_e(T) = a_{g;S}\,\eta\,p                                        & T_B \le T \le T_C \\
    S_e(T) = a_{g;S}\,\eta\,p\,T_C / T                               & T_C \le T \le T_D \\
    S_e(T) = a_{g;S}\,\eta\,p\,T_C T_D / T^2                         & T_D \le T

Setting :math:`a_{g;S} = a_g S` and :math:`p = 2.5` gives EN 1998-1 eqs. 3.2–3.5 back exactly
(tested). Known differences from the NPR 9998 text (check them against the edition you hold;
NPR 9998 is not freely available and its wording was not available to this project):

* NPR 9998:2015 built the spectrum from a reference PGA map, a consequence-class factor and
  ground types A/B/C (as EN 1998-1 does); from NPR 9998:2017/2018 on, the parameters come
  from the webtool per location. Only the webtool form is implemented here.
* The NPR spectrum is tabulated only up to a maximum period (the EN informative range ends at
  4 s); this module evaluates the formula for any T ≥ 0 and does not apply EN 1998-1 Annex A
  (corner periods T_E, T_F of the displacement spectrum).
* The lower bound of the *design* spectrum is written here as β·a_{g;S} (default β = 0.2, from
  the table file), whereas EN 1998-1 eq. 3.16 writes β·a_g (rock). Set β in the table file to
  match your edition.

References
----------
.. [EN1998-1] EN 1998-1:2004, Eurocode 8: Design of structures for earthquake resistance,
   Part 1, §3.2.2.2 (elastic spectrum), §3.2.2.5 (design spectrum), eq. 3.7 (displacement
   spectrum).
.. [NPR9998] NEN, NPR 9998 "Beoordeling van de constructieve veiligheid van een gebouw bij
   nieuwbouw, verbouw en afkeuren - Geïnduceerde aardbevingen", editions 2015, 2017, 2018, 2020.
.. [Fajfar2000] Fajfar P. (2000), A nonlinear analysis method for performance-based seismic
   design, Earthquake Spectra 16(3):573-592, doi:10.1193/1.1586128 (ADRS format).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

import numpy as np

from npr9998.errors import NPRInputError

__all__ = [
    "G",
    "damping_correction",
    "elastic_spectrum",
    "elastic_displacement_spectrum",
    "design_spectrum",
    "adrs",
    "SpectrumParameters",
    "HazardRecord",
    "load_hazard_record",
    "hazard_record_from_mapping",
]

#: Standard gravity [m/s²] (CGPM 1901); converts spectral accelerations in g to m/s².
G = 9.80665

#: Lower bound of the damping correction factor η, EN 1998-1 §3.2.2.2(3).
ETA_MIN = 0.55


def damping_correction(damping: float | np.ndarray) -> float | np.ndarray:
    r"""Damping correction factor :math:`\eta = \max(\sqrt{10/(5 + 100\,\xi)}, 0.55)`.

    EN 1998-1:2004 §3.2.2.2(3), eq. 3.6 (there ξ is in percent; here it is a fraction).

    Parameters
    ----------
    damping
        Viscous damping ratio ξ, as a fraction (0.05 = 5 %). [-]

    Returns
    -------
    float or numpy.ndarray
        η [-]; 1.0 at ξ = 0.05.

    Examples
    --------
    >>> round(damping_correction(0.10), 4)
    0.8165
    """
    xi = np.asarray(damping, dtype=float)
    if np.any(~np.isfinite(xi)) or np.any(xi < 0) or np.any(xi >= 1):
        raise NPRInputError(f"damping ratio {damping!r} is outside [0, 1).", fix="give damping as a fraction, e.g. 0.05 for 5 %.")
    eta = np.maximum(np.sqrt(10.0 / (5.0 + 100.0 * xi)), ETA_MIN)
    return float(eta) if eta.ndim == 0 else eta


def _check_shape(ag_s_g, p, t_b, t_c, t_d, where: str = "spectrum") -> None:
    vals = {"ag_s_g": ag_s_g, "p": p, "t_b": t_b, "t_c": t_c, "t_d": t_d}
    for k, v in vals.items():
        if not isinstance(v, (int, float, np.floating, np.integer)) or not math.isfinite(float(v)):
            raise NPRInputError(f"{where}: {k} = {v!r} is not a finite number.", column=k, fix="give a real number.")
    if ag_s_g < 0:
        raise NPRInputError(f"{where}: ag_s_g = {ag_s_g} < 0.", column="ag_s_g", fix="a_g;S is a (positive) acceleration in g.")
    if p <= 0:
        raise NPRInputError(f"{where}: plateau factor p = {p} must be > 0.", column="p", fix="take p from the webtool record (typically 1.5-3).")
    if not (0 < t_b <= t_c <= t_d):
        raise NPRInputError(
            f"{where}: corner periods must satisfy 0 < T_B <= T_C <= T_D; got T_B={t_b}, T_C={t_c}, T_D={t_d}.",
            column="t_b/t_c/t_d",
            fix="check the order and units (seconds) of the corner periods.",
        )


def _periods(period_s) -> np.ndarray:
    t = np.asarray(period_s, dtype=float)
    if np.any(~np.isfinite(t)) or np.any(t < 0):
        raise NPRInputError(f"periods must be finite and >= 0 s; got {period_s!r}.", fix="pass vibration periods in seconds.")
    return t


def _out(a: np.ndarray):
    return float(a) if a.ndim == 0 else a


def elastic_spectrum(period_s, ag_s_g, p, t_b, t_c, t_d, damping=0.05):
    r"""Horizontal elastic acceleration spectrum :math:`S_e(T)` in the NPR 9998 form [g].

    EN 1998-1:2004 §3.2.2.2 eqs. 3.2–3.5 with :math:`a_g S \to a_{g;S}` and :math:`2.5 \to p`
    (NPR 9998:2018/2020 §3.2.2; see the module docstring for the differences known):

    .. math::

        S_e = a_{g;S}[1 + T/T_B(\eta p - 1)]  \quad (0 \le T \le T_B);\qquad
        a_{g;S}\eta p \quad (T_B..T_C);\qquad
        a_{g;S}\eta p T_C/T \quad (T_C..T_D);\qquad
        a_{g;S}\eta p T_C T_D/T^2 \quad (T > T_D)

    with :math:`\eta = \sqrt{10/(5 + 100\xi)} \ge 0.55`.

    Parameters
    ----------
    period_s
        Vibration period(s) T, scalar or array. [s]
    ag_s_g
        Surface design ground acceleration :math:`a_{g;S}` (webtool value). [g]
    p
        Plateau factor (replaces the 2.5 of EN 1998-1). [-]
    t_b, t_c, t_d
        Corner periods, 0 < T_B <= T_C <= T_D. [s]
    damping
        Viscous damping ratio ξ as a fraction. [-]

    Returns
    -------
    float or numpy.ndarray
        :math:`S_e(T)` [g]; a float for scalar input, an array of the input's shape otherwise.

    Examples
    --------
    >>> elastic_spectrum(0.3, 0.2, 2.5, 0.1, 0.4, 2.0)
    0.5
    """
    _check_shape(ag_s_g, p, t_b, t_c, t_d)
    t = _periods(period_s)
    eta = damping_correction(damping)
    plateau = ag_s_g * eta * p
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        se = np.select(
            [t <= t_b, t <= t_c, t <= t_d],
            [ag_s_g * (1.0 + t / t_b * (eta * p - 1.0)), np.full_like(t, plateau), plateau * t_c / t],
            plateau * t_c * t_d / t**2,
        )
    return _out(se)


def elastic_displacement_spectrum(period_s, ag_s_g, p, t_b, t_c, t_d, damping=0.05):
    r"""Elastic displacement spectrum :math:`S_{De}(T) = S_e(T)\,(T/2\pi)^2\,g` [m].

    EN 1998-1:2004 eq. 3.7 (pseudo-spectral relation), applied at every period; EN 1998-1
    Annex A (long-period corners T_E, T_F) is **not** applied.

    Parameters
    ----------
    period_s, ag_s_g, p, t_b, t_c, t_d, damping
        As :func:`elastic_spectrum`. [s], [g], [-], [s], [s], [s], [-]

    Returns
    -------
    float or numpy.ndarray
        Spectral displacement [m].

    Examples
    --------
    At T = 1 s on the 1/T branch, S_e = 0.2 * 2.5 * 0.4 / 1 = 0.2 g and
    S_De = 0.2 * 9.80665 / (2 pi)^2 = 0.049681 m:

    >>> round(elastic_displacement_spectrum(1.0, 0.2, 2.5, 0.1, 0.4, 2.0), 6)
    0.049681
    """
    t = _periods(period_s)
    se = np.asarray(elastic_spectrum(t, ag_s_g, p, t_b, t_c, t_d, damping))
    return _out(se * (t / (2.0 * np.pi)) ** 2 * G)


def design_spectrum(period_s, ag_s_g, p, t_b, t_c, t_d, q, beta=0.2):
    r"""Design spectrum for elastic analysis :math:`S_d(T)` with behaviour factor q [g].

    EN 1998-1:2004 §3.2.2.5 eqs. 3.13–3.16 with :math:`a_g S \to a_{g;S}`, :math:`2.5 \to p`:

    .. math::

        S_d = a_{g;S}[2/3 + T/T_B\,(p/q - 2/3)] \quad (0 \le T \le T_B);\qquad
        a_{g;S}\,p/q \quad (T_B..T_C);\\
        \max(a_{g;S}\,p/q\,T_C/T,\ \beta a_{g;S}) \quad (T_C..T_D);\qquad
        \max(a_{g;S}\,p/q\,T_C T_D/T^2,\ \beta a_{g;S}) \quad (T > T_D)

    The lower bound is written on :math:`a_{g;S}` (EN writes β·a_g); β is a table value.

    Parameters
    ----------
    period_s
        Period(s). [s]
    ag_s_g, p, t_b, t_c, t_d
        Spectrum parameters as in :func:`elastic_spectrum`. [g], [-], [s]
    q
        Behaviour factor, >= 1. [-]
    beta
        Lower-bound factor β (EN 1998-1 recommends 0.2). [-]

    Returns
    -------
    float or numpy.ndarray
        :math:`S_d(T)` [g].

    Examples
    --------
    >>> design_spectrum(1.0, 0.2, 2.5, 0.1, 0.4, 2.0, q=1.5)
    0.13333333333333333
    """
    _check_shape(ag_s_g, p, t_b, t_c, t_d)
    if not (isinstance(q, (int, float, np.floating)) and math.isfinite(q) and q >= 1.0):
        raise NPRInputError(f"behaviour factor q = {q!r} must be a number >= 1.", column="q", fix="take q from the table for the structural system (e.g. 1.5 for URM).")
    if not (math.isfinite(beta) and 0 <= beta <= 1):
        raise NPRInputError(f"lower-bound factor beta = {beta!r} must be in [0, 1].", column="beta", fix="EN 1998-1 recommends 0.2.")
    t = _periods(period_s)
    floor = beta * ag_s_g
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        sd = np.select(
            [t <= t_b, t <= t_c, t <= t_d],
            [
                ag_s_g * (2.0 / 3.0 + t / t_b * (p / q - 2.0 / 3.0)),
                np.full_like(t, ag_s_g * p / q),
                np.maximum(ag_s_g * p / q * t_c / t, floor),
            ],
            np.maximum(ag_s_g * p / q * t_c * t_d / t**2, floor),
        )
    return _out(sd)


def adrs(period_s, ag_s_g, p, t_b, t_c, t_d, damping=0.05) -> tuple[np.ndarray, np.ndarray]:
    r"""Acceleration-displacement response spectrum (ADRS) points :math:`(S_{De}, S_e)`.

    Each period T maps to the point :math:`(S_{De}(T)\,[m],\ S_e(T)\,[g])`; radial lines from
    the origin are lines of constant period (Fajfar 2000, Fig. 2).

    Parameters
    ----------
    period_s
        Periods at which to evaluate (array). [s]
    ag_s_g, p, t_b, t_c, t_d, damping
        As :func:`elastic_spectrum`.

    Returns
    -------
    tuple of numpy.ndarray
        ``(sd_m, sa_g)``: spectral displacement [m] and acceleration [g].
    """
    t = np.atleast_1d(_periods(period_s))
    sa = np.asarray(elastic_spectrum(t, ag_s_g, p, t_b, t_c, t_d, damping))
    return sa * (t / (2.0 * np.pi)) ** 2 * G, sa


@dataclass(frozen=True)
class SpectrumParameters:
    """One NPR 9998 elastic spectrum: :math:`a_{g;S}, p, T_B, T_C, T_D` (one return period).

    Attributes
    ----------
    ag_s_g
        Surface design ground acceleration :math:`a_{g;S}`. [g]
    p
        Plateau factor. [-]
    t_b_s, t_c_s, t_d_s
        Corner periods. [s]
    return_period_yr
        Return period the parameters belong to, if known. [yr]
    importance_factor
        Factor already applied to ``ag_s_g`` (1.0 for a webtool value as given). [-]
    source
        Where the values came from (file and row, or "inline"), for reports.
    """

    ag_s_g: float
    p: float
    t_b_s: float
    t_c_s: float
    t_d_s: float
    return_period_yr: float | None = None
    importance_factor: float = 1.0
    source: str = ""

    def __post_init__(self) -> None:
        _check_shape(self.ag_s_g, self.p, self.t_b_s, self.t_c_s, self.t_d_s, where=f"spectrum {self.source or ''}".strip())
        if self.return_period_yr is not None and not (self.return_period_yr > 0):
            raise NPRInputError(f"return period {self.return_period_yr} must be > 0 years.", column="return_period_yr", fix="give the return period in years, e.g. 2475.")

    @property
    def shape(self) -> tuple[float, float, float, float, float]:
        """``(ag_s_g, p, t_b, t_c, t_d)`` for the spectrum functions."""
        return (self.ag_s_g, self.p, self.t_b_s, self.t_c_s, self.t_d_s)

    def sa_g(self, period_s, damping: float = 0.05):
        """Elastic spectral acceleration, :func:`elastic_spectrum`. [g]"""
        return elastic_spectrum(period_s, *self.shape, damping=damping)

    def sd_m(self, period_s, damping: float = 0.05):
        """Elastic spectral displacement, :func:`elastic_displacement_spectrum`. [m]"""
        return elastic_displacement_spectrum(period_s, *self.shape, damping=damping)

    def design_sa_g(self, period_s, q: float, beta: float = 0.2):
        """Design spectral acceleration, :func:`design_spectrum`. [g]"""
        return design_spectrum(period_s, *self.shape, q=q, beta=beta)

    def scaled(self, factor: float) -> "SpectrumParameters":
        """The same shape with :math:`a_{g;S}` multiplied by ``factor`` (>= 0)."""
        if not (math.isfinite(factor) and factor >= 0):
            raise NPRInputError(f"spectrum scale factor {factor!r} must be finite and >= 0.", fix="use a non-negative factor.")
        return replace(self, ag_s_g=self.ag_s_g * factor)

    def to_dict(self) -> dict:
        """Plain dict (JSON-ready)."""
        return {
            "ag_s_g": self.ag_s_g,
            "p": self.p,
            "t_b_s": self.t_b_s,
            "t_c_s": self.t_c_s,
            "t_d_s": self.t_d_s,
            "return_period_yr": self.return_period_yr,
            "importance_factor": self.importance_factor,
            "source": self.source,
        }


#: Accepted header spellings of a hazard-record CSV (case-insensitive).
HAZARD_ALIASES: Mapping[str, tuple[str, ...]] = {
    "return_period_yr": ("return_period", "T_R", "TR", "herhalingstijd", "rp"),
    "ag_s_g": ("ag_s", "a_g;s", "ag;s", "agS", "ag_d", "a_g;d"),
    "p": ("plateau_factor",),
    "t_b_s": ("t_b", "TB"),
    "t_c_s": ("t_c", "TC"),
    "t_d_s": ("t_d", "TD"),
    "location_id": ("location", "locatie"),
    "x_rd": ("x",),
    "y_rd": ("y",),
}


@dataclass(frozen=True)
class HazardRecord:
    """The webtool hazard record of one location: a spectrum per return period.

    Attributes
    ----------
    spectra
        Mapping return period [yr] -> :class:`SpectrumParameters`.
    location_id
        Identifier of the location, if given.
    x_rd, y_rd
        Location in RD New. [m, EPSG:28992]
    source
        File the record was read from.
    """

    spectra: Mapping[float, SpectrumParameters]
    location_id: str = ""
    x_rd: float | None = None
    y_rd: float | None = None
    source: str = ""

    @property
    def return_periods(self) -> tuple[float, ...]:
        """Return periods present, ascending. [yr]"""
        return tuple(sorted(self.spectra))

    def spectrum_for(self, return_period_yr: float, importance_factor: float = 1.0) -> SpectrumParameters:
        """Spectrum for an exact return period, with :math:`a_{g;S}` times ``importance_factor``.

        No interpolation between return periods is done (the webtool gives the values to use).

        Raises
        ------
        NPRInputError
            When the return period is not in the record.
        """
        for rp, spec in self.spectra.items():
            if abs(rp - return_period_yr) <= 1e-9 * max(1.0, return_period_yr):
                return replace(spec.scaled(importance_factor), importance_factor=importance_factor, return_period_yr=rp)
        raise NPRInputError(
            f"hazard record has return periods {list(self.return_periods)} yr but {return_period_yr:g} yr is required.",
            file=self.source or None,
            column="return_period_yr",
            fix=f"add the webtool spectrum for {return_period_yr:g} yr to the record, or use tables whose consequence class asks for a return period you have.",
        )


def hazard_record_from_mapping(entries: list[Mapping], *, source: str = "", location_id: str = "", x_rd=None, y_rd=None) -> HazardRecord:
    """Build a :class:`HazardRecord` from a list of dicts (e.g. a TOML ``[[hazard.spectra]]``).

    Each dict has ``return_period_yr``, ``ag_s_g``, ``p``, ``t_b_s``, ``t_c_s``, ``t_d_s``.
    """
    spectra: dict[float, SpectrumParameters] = {}
    keys = ("return_period_yr", "ag_s_g", "p", "t_b_s", "t_c_s", "t_d_s")
    for i, e in enumerate(entries):
        where = f"{source}[{i}]" if source else f"spectra[{i}]"
        missing = [k for k in keys if k not in e]
        if missing:
            raise NPRInputError(f"spectrum entry {i} lacks {missing}.", file=source or None, column=where, fix=f"give all of {list(keys)} for every return period.")
        extra = [k for k in e if k not in keys]
        if extra:
            raise NPRInputError(f"spectrum entry {i} has unknown key(s) {extra}.", file=source or None, column=where, fix=f"use only {list(keys)}.")
        vals = {}
        for k in keys:
            v = e[k]
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise NPRInputError(f"{k} = {v!r} is not a number.", file=source or None, column=f"{where}.{k}", fix="write a plain number.")
            vals[k] = float(v)
        rp = vals["return_period_yr"]
        if rp in spectra:
            raise NPRInputError(f"return period {rp:g} yr appears twice.", file=source or None, column=where, fix="keep one spectrum per return period.")
        try:
            spectra[rp] = SpectrumParameters(vals["ag_s_g"], vals["p"], vals["t_b_s"], vals["t_c_s"], vals["t_d_s"], return_period_yr=rp, source=where)
        except NPRInputError as exc:
            raise NPRInputError(exc.problem, file=source or None, column=where, fix=exc.fix) from None
    if not spectra:
        raise NPRInputError("hazard record has no spectra.", file=source or None, fix="give at least one return period.")
    return HazardRecord(spectra=spectra, location_id=location_id, x_rd=x_rd, y_rd=y_rd, source=source)


def load_hazard_record(path: str | Path, location_id: str | None = None) -> HazardRecord:
    """Read a webtool hazard record (CSV or TOML) for one location.

    CSV schema (header row, one row per return period; header aliases in
    :data:`HAZARD_ALIASES`): ``return_period_yr, ag_s_g, p, t_b_s, t_c_s, t_d_s`` and optionally
    ``location_id, x_rd, y_rd``. A file with several locations needs ``location_id`` and the
    ``location_id`` argument. TOML schema: ``location_id``, ``x_rd``, ``y_rd`` (optional) and
    ``[[spectra]]`` tables with the same six keys.

    Parameters
    ----------
    path
        The file.
    location_id
        Which location to take from a multi-location CSV.

    Returns
    -------
    HazardRecord
    """
    from npr9998._io import read_csv_table, read_toml

    path = Path(path)
    if path.suffix.lower() == ".toml":
        data = read_toml(path)
        return hazard_record_from_mapping(
            data.get("spectra", []), source=str(path), location_id=str(data.get("location_id", "")), x_rd=data.get("x_rd"), y_rd=data.get("y_rd")
        )
    table = read_csv_table(
        path,
        required=("return_period_yr", "ag_s_g", "p", "t_b_s", "t_c_s", "t_d_s"),
        optional=("location_id", "x_rd", "y_rd"),
        aliases=HAZARD_ALIASES,
        what="hazard record",
    )
    rows = table.rows
    if "location_id" in table.columns:
        ids = sorted({table.text(r, "location_id") for _, r in rows})
        if location_id is None:
            if len(ids) > 1:
                raise NPRInputError(f"file holds {len(ids)} locations {ids[:5]}... but no location was chosen.", file=path, column="location_id", fix="pass the location_id of the building (column 'location_id' in the batch file).")
        else:
            rows = [(ln, r) for ln, r in rows if table.text(r, "location_id") == str(location_id)]
            if not rows:
                raise NPRInputError(f"location {location_id!r} not in the file (it has {ids[:10]}).", file=path, column="location_id", fix="check the location_id.")
    elif location_id not in (None, ""):
        raise NPRInputError(f"location {location_id!r} asked for but the file has no 'location_id' column.", file=path, fix="add a location_id column or leave location_id empty.")
    spectra: dict[float, SpectrumParameters] = {}
    for line, r in rows:
        vals = {k: table.float(line, r, k) for k in ("return_period_yr", "ag_s_g", "p", "t_b_s", "t_c_s", "t_d_s")}
        rp = vals["return_period_yr"]
        if rp in spectra:
            raise NPRInputError(f"return period {rp:g} yr appears twice for this location.", file=path, row=line, column="return_period_yr", fix="keep one row per return period.")
        try:
            spectra[rp] = SpectrumParameters(vals["ag_s_g"], vals["p"], vals["t_b_s"], vals["t_c_s"], vals["t_d_s"], return_period_yr=rp, source=f"{path}:{line}")
        except NPRInputError as exc:
            raise NPRInputError(exc.problem, file=path, row=line, column=exc.column, fix=exc.fix) from None
    if not spectra:
        raise NPRInputError("hazard record has no data rows.", file=path, fix="add one row per return period.")
    first = rows[0][1]
    x = table.float(rows[0][0], first, "x_rd", required=False) if "x_rd" in table.columns else None
    y = table.float(rows[0][0], first, "y_rd", required=False) if "y_rd" in table.columns else None
    loc = table.text(first, "location_id") if "location_id" in table.columns else (location_id or "")
    return HazardRecord(spectra=spectra, location_id=loc, x_rd=x, y_rd=y, source=str(path))
