"""Drivers: assess one building from its input file, the risk verdict, batch input.

This module only orchestrates: it reads and validates the input (a TOML building file or a row
of a batch CSV), resolves defaults (consequence-class spectrum from the hazard record,
catalogue capacity curve where no pushover is given, table values), calls the pure functions of
:mod:`npr9998.methods`, :mod:`npr9998.fragility_link` and :mod:`npr9998.decision`, and bundles
the results in a :class:`BuildingAssessment`. The input schema is documented in
``docs/npr9998.md`` ("Building file").

The risk verdict (:func:`risk_verdict`) asks the HRA engine (``hra.building_lpr``) for the LPR
of the building with its building-specific fragility and compares the mean LPR with the norm
10⁻⁵ per year (Besluit versterking art. 3). ``hra`` is imported only inside the function, and
any callable with the same signature can be passed instead (``lpr_function=``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hra.core.validation import validation_problems

from npr9998._io import pydantic_to_input_error, read_csv_table, read_toml
from npr9998.capacity import PushoverCurve, StructureModel, load_pushover_csv
from npr9998.catalogue import Catalogue, load_catalogue
from npr9998.decision import Normbesluit, normbesluit
from npr9998.errors import NPRInputError
from npr9998.fragility_link import BuildingFragility, FragilityDerivation, derive_building_fragility
from npr9998.methods import capacity_spectrum_method, fundamental_period_estimate, lateral_force_method, n2_method
from npr9998.spectrum import HazardRecord, SpectrumParameters, hazard_record_from_mapping, load_hazard_record
from npr9998.tables import DecisionTables, NormTables, load_decision_tables, load_tables
from npr9998.verdict import NORM_LPR_PER_YR, RiskVerdict

__all__ = [
    "NORM_LPR_PER_YR",
    "RiskVerdict",
    "risk_verdict",
    "BuildingSpec",
    "BuildingAssessment",
    "load_building",
    "assess_building",
    "read_batch",
    "BATCH_COLUMNS",
]

LprFunction = Callable[..., dict]


def risk_verdict(
    cfg: Any,
    x_rd: float,
    y_rd: float,
    fragility: BuildingFragility,
    zone: Any = None,
    *,
    lpr_function: LprFunction | None = None,
    norm_per_yr: float = NORM_LPR_PER_YR,
) -> RiskVerdict:
    """LPR of one building with its own fragility, compared with the norm 1e-5 per year.

    Calls ``lpr_function(cfg, x_rd, y_rd, fragility, zone=zone)``, by default
    ``hra.building_lpr`` (imported here, so :mod:`npr9998` does not need the engine), which
    returns a dict with ``"year"``, ``"lpr_mean"``, ``"lpr_p50"``, ``"lpr_p90"`` (arrays per
    year, LPR in 1/yr).

    Parameters
    ----------
    cfg
        The HRA configuration (``hra.load_config(...)``), passed through.
    x_rd, y_rd
        Building location in RD New. [m, EPSG:28992]
    fragility
        The building's fragility (:func:`npr9998.fragility_link.derive_building_fragility`).
    zone
        Site-response zone, if known (else the engine finds it).
    lpr_function
        Replacement for ``hra.building_lpr`` (tests, other engines).
    norm_per_yr
        The norm. [1/yr]

    Returns
    -------
    RiskVerdict
    """
    for name, v in (("x_rd", x_rd), ("y_rd", y_rd)):
        if v is None or not isinstance(v, (int, float, np.floating)) or not math.isfinite(v):
            raise NPRInputError(f"{name} = {v!r}: the risk verdict needs the building location.", column=name, fix="give x_rd and y_rd in RD New metres (EPSG:28992).")
    if not (norm_per_yr > 0):
        raise NPRInputError(f"norm {norm_per_yr!r} must be > 0.", fix="use 1e-5.")
    if lpr_function is None:
        try:
            from hra import building_lpr as lpr_function  # noqa: PLC0415  (lazy: optional engine)
        except ImportError as exc:
            raise RuntimeError(
                f"the HRA engine function hra.building_lpr is not available ({exc}); install/upgrade the hra package, or pass lpr_function=."
            ) from None
    out = lpr_function(cfg, x_rd, y_rd, fragility, zone=zone)
    missing = [k for k in ("year", "lpr_mean", "lpr_p50", "lpr_p90") if k not in out]
    if missing:
        raise RuntimeError(f"the LPR function returned no {missing}; it must return year, lpr_mean, lpr_p50, lpr_p90.")
    years = np.atleast_1d(np.asarray(out["year"])).astype(int)
    arrs = {k: np.atleast_1d(np.asarray(out[k], dtype=float)) for k in ("lpr_mean", "lpr_p50", "lpr_p90")}
    for k, a in arrs.items():
        if a.shape != years.shape or a.size == 0 or np.any(~np.isfinite(a)) or np.any(a < 0):
            raise RuntimeError(f"the LPR function returned an invalid {k} (shape {a.shape} for {years.size} years, or negative/non-finite values).")
    return RiskVerdict(
        years=tuple(int(y) for y in years),
        lpr_mean=tuple(float(x) for x in arrs["lpr_mean"]),
        lpr_p50=tuple(float(x) for x in arrs["lpr_p50"]),
        lpr_p90=tuple(float(x) for x in arrs["lpr_p90"]),
        norm_per_yr=float(norm_per_yr),
    )


# ------------------------------------------------------------------------------------------
# building input schema


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _pos(v):
    return Field(v, gt=0, allow_inf_nan=False)


class BuildingSection(_Strict):
    """``[building]``: identity, classification, geometry, location."""

    id: str = Field(min_length=1, description="Building identifier.")
    consequence_class: str = Field(min_length=1, description="Consequence class, a key of the tables (e.g. CC1B).")
    typology: str | None = Field(None, description="Catalogue typology (capacity default, typology approach).")
    structural_system: str | None = Field(None, description="Structural system, a key of the tables (q, drift limit); default from the typology.")
    n_storeys: int | None = Field(None, ge=1, description="Number of storeys. [-]")
    storey_height_m: float | None = Field(None, gt=0, allow_inf_nan=False, description="Storey height. [m]")
    height_m: float | None = Field(None, gt=0, allow_inf_nan=False, description="Roof height above the base. [m]")
    floor_area_m2: float | None = Field(None, gt=0, allow_inf_nan=False, description="Gross floor area (all storeys). [m2]")
    x_rd: float | None = Field(None, allow_inf_nan=False, description="RD New x. [m]")
    y_rd: float | None = Field(None, allow_inf_nan=False, description="RD New y. [m]")
    zone: int | str | None = Field(None, description="Site-response zone (optional).")


class HazardSection(_Strict):
    """``[hazard]``: a webtool record file, inline spectra, or one inline spectrum."""

    file: str | None = Field(None, description="Hazard-record CSV/TOML, relative to the building file.")
    location_id: str | None = None
    spectra: list[dict] | None = Field(None, description="Inline [[hazard.spectra]] per return period.")
    return_period_yr: float | None = Field(None, gt=0)
    ag_s_g: float | None = Field(None, ge=0, allow_inf_nan=False)
    p: float | None = Field(None, gt=0, allow_inf_nan=False)
    t_b_s: float | None = Field(None, gt=0, allow_inf_nan=False)
    t_c_s: float | None = Field(None, gt=0, allow_inf_nan=False)
    t_d_s: float | None = Field(None, gt=0, allow_inf_nan=False)
    from_hra: bool = Field(False, description="Fit the spectrum to the HRA's hazard at the building's x_rd, y_rd (needs --hra-config).")


class CapacitySection(_Strict):
    """``[capacity]``: pushover curve and structure, or catalogue default; capacity definition."""

    pushover: str | None = Field(None, description="Pushover CSV (roof_displacement_m, base_shear_kn), relative to the building file.")
    masses_t: list[float] | None = Field(None, description="Storey masses, base to roof. [t]")
    mode_shape: list[float] | None = Field(None, description="First-mode shape, 1 at the roof. [-]")
    level_heights_m: list[float] | None = Field(None, description="Level heights above the base. [m]")
    total_mass_t: float | None = Field(None, gt=0, allow_inf_nan=False, description="Total mass for the lateral force method without storey masses. [t]")
    displacement_capacity: str | float | None = Field(None, description="'ultimate', 'strength_drop', 'drift', 'governing' or metres; default 'governing' when the height and system are known, else 'ultimate'.")
    strength_drop: float = Field(0.2, gt=0, lt=1)
    d_m_m: float | None = Field(None, gt=0, allow_inf_nan=False)
    iterate: bool = False
    base_shear_capacity_kn: float | None = Field(None, gt=0, allow_inf_nan=False, description="Lateral force method: V_R (default: pushover peak). [kN]")
    period_s: float | None = Field(None, gt=0, allow_inf_nan=False, description="Lateral force method: T1 (default: C_t H^0.75). [s]")


class AssessmentSection(_Strict):
    """``[assessment]``: method and options."""

    method: Literal["n2", "csm", "lateral_force"] = "n2"
    damping: float = Field(0.05, ge=0, lt=1)
    csm_procedure: Literal["atc40", "fema440"] = "atc40"
    behaviour_type: Literal["A", "B", "C"] | None = None
    q: float | None = Field(None, ge=1, allow_inf_nan=False)

    @field_validator("method", mode="before")
    @classmethod
    def _method(cls, v):
        return str(v).strip().lower().replace("-", "_").replace(" ", "_") if v is not None else v


class FragilitySection(_Strict):
    """``[fragility]``: building-specific fragility options."""

    imt: str = "AvgSa"
    cs_factors: tuple[float, float, float] = (1.0, 1.5, 2.0)
    beta_record_to_record: float = Field(0.32, ge=0)
    beta_modelling: float = Field(0.24, ge=0)
    beta_capacity: float = Field(0.0, ge=0)
    p_death_inside: tuple[float, float, float] | None = None
    p_death_outside: tuple[float, float, float] | None = None


class DecisionSection(_Strict):
    """``[decision]``: basis of the normbesluit."""

    basis: Literal["unity_check", "lpr_ratio"] | None = None


class BuildingSpec(_Strict):
    """Validated content of a building file (schema: docs/npr9998.md, "Building file")."""

    building: BuildingSection
    hazard: HazardSection
    capacity: CapacitySection = CapacitySection()
    assessment: AssessmentSection = AssessmentSection()
    fragility: FragilitySection = FragilitySection()
    decision: DecisionSection = DecisionSection()


def load_building(path: str | Path) -> BuildingSpec:
    """Read and validate a building TOML file; errors name the file and key."""
    data = read_toml(path)
    try:
        return BuildingSpec.model_validate(data)
    except ValidationError as exc:
        raise pydantic_to_input_error(exc, file=str(path), what="building file", schema_hint="building-file") from None


# ------------------------------------------------------------------------------------------
# assessment of one building


@dataclass(frozen=True)
class BuildingAssessment:
    """Everything computed for one building (see :func:`assess_building`)."""

    building_id: str
    source: str
    spec: BuildingSpec
    spectrum: SpectrumParameters
    consequence_class: str
    typology: str
    structural_system: str
    capacity_source: str
    curve: PushoverCurve | None
    structure: StructureModel | None
    result: Any
    fragility: FragilityDerivation | None
    risk: RiskVerdict | None
    decision: Normbesluit
    tables: dict
    notes: tuple[str, ...] = ()

    def to_record(self) -> dict:
        """Flat row (:data:`npr9998.decision.RECORD_COLUMNS`)."""
        return self.decision.to_record()

    def to_dict(self) -> dict:
        """Full JSON-ready description (schema ``npr9998-results/1``, docs/npr9998.md)."""
        cap = None
        if self.curve is not None:
            cap = {
                "source": self.capacity_source,
                "roof_displacement_m": self.curve.roof_displacement_m.tolist(),
                "base_shear_kn": self.curve.base_shear_kn.tolist(),
            }
        if self.structure is not None:
            cap = cap or {"source": self.capacity_source}
            cap.update(
                masses_t=self.structure.masses_t.tolist(),
                mode_shape=self.structure.mode_shape.tolist(),
                level_heights_m=None if self.structure.level_heights_m is None else self.structure.level_heights_m.tolist(),
            )
        return {
            "building_id": self.building_id,
            "source": self.source,
            "verdict": self.decision.verdict,
            "unity_check": self.decision.unity_check,
            "consequence_class": self.consequence_class,
            "typology": self.typology,
            "structural_system": self.structural_system,
            "tables": self.tables,
            "spectrum": self.spectrum.to_dict(),
            "capacity": cap,
            "assessment": self.result.to_dict(),
            "fragility": None if self.fragility is None else self.fragility.to_dict(),
            "risk": None if self.risk is None else self.risk.to_dict(),
            "normbesluit": self.decision.to_dict(),
            "notes": list(self.notes),
        }


def _located(exc: NPRInputError, source: str, row: int | None) -> NPRInputError:
    """Attach the building's input file (and batch row) to an error raised further down."""
    if exc.file in (None, source):
        return NPRInputError(exc.problem, fix=exc.fix, file=source, row=exc.row if exc.row is not None else row, column=exc.column)
    where = f" (building input {source}" + (f", row {row}" if row is not None else "") + ")"
    return NPRInputError(exc.problem + where, fix=exc.fix, file=exc.file, row=exc.row, column=exc.column)


def hra_site_spectrum(hra_config: Any, x_rd: float, y_rd: float, return_period_yr: float, zone=None,
                      site_id: str = "building") -> SpectrumParameters:
    """The NPR 9998 spectrum fitted to the HRA's mean uniform hazard spectrum (geometric-mean
    component, PGA and SA(T)) at one site of an HRA configuration (:func:`npr9998.site_spectrum.site_spectra`)."""
    import pandas as pd

    from npr9998.site_spectrum import site_spectra

    site = {"id": [site_id], "x": [float(x_rd)], "y": [float(y_rd)]}
    if zone is not None:
        site["zone"] = [int(zone)]
    try:
        row = site_spectra(hra_config, pd.DataFrame(site), [float(return_period_yr)], progress=False).iloc[0]
    except (ValueError, KeyError) as exc:
        raise NPRInputError(f"HRA hazard at ({x_rd:g}, {y_rd:g}): {exc}", column="hazard.from_hra",
                            fix="check the building location and the HRA config's source and ground-motion model.") from None
    if not np.isfinite(row["ag_s_g"]):
        raise NPRInputError(f"the HRA hazard at ({x_rd:g}, {y_rd:g}) gives no spectrum at {return_period_yr:g} yr "
                            "(the model has fewer than 4 spectral periods, or the return period is beyond the curves).",
                            column="hazard.from_hra", fix="use an HRA config with GMM V7/V6 or give the webtool spectrum.")
    return SpectrumParameters(float(row["ag_s_g"]), float(row["p"]), float(row["t_b"]), float(row["t_c"]), float(row["t_d"]),
                              return_period_yr=float(return_period_yr),
                              source=f"HRA hazard fit at ({x_rd:g}, {y_rd:g}), {getattr(hra_config, 'source_file', None) or 'HRA config'}")


def _spectrum(spec: BuildingSpec, base_dir: Path, tables: NormTables, source: str, hra_config: Any = None) -> SpectrumParameters:
    hz = spec.hazard
    cc = tables.consequence_class(spec.building.consequence_class)
    inline_keys = ("ag_s_g", "p", "t_b_s", "t_c_s", "t_d_s")
    given = [k for k in inline_keys if getattr(hz, k) is not None]
    modes = sum([hz.file is not None, hz.spectra is not None, bool(given), bool(hz.from_hra)])
    if modes != 1:
        raise NPRInputError(
            "give exactly one of: hazard.file, [[hazard.spectra]], the inline spectrum (ag_s_g, p, t_b_s, t_c_s, t_d_s), "
            "or from_hra = true.",
            file=source,
            column="hazard",
            fix="keep one form of the hazard record.",
        )
    if hz.from_hra:
        b = spec.building
        if hra_config is None:
            raise NPRInputError("hazard.from_hra = true needs the HRA configuration.", file=source, column="hazard.from_hra",
                                fix="pass --hra-config FILE (or hra_config= to assess_building).")
        if b.x_rd is None or b.y_rd is None:
            raise NPRInputError("hazard.from_hra = true needs the building location.", file=source, column="x_rd/y_rd",
                                fix="give x_rd and y_rd (RD New, m).")
        zone = int(b.zone) if isinstance(b.zone, int) or (isinstance(b.zone, str) and b.zone.strip().isdigit()) else None
        fitted = hra_site_spectrum(hra_config, b.x_rd, b.y_rd, cc.return_period_yr, zone=zone, site_id=b.id)
        record = HazardRecord(spectra={cc.return_period_yr: fitted}, source=fitted.source)
        return record.spectrum_for(cc.return_period_yr, cc.importance_factor)
    if hz.file is not None:
        record = load_hazard_record(base_dir / hz.file, hz.location_id)
    elif hz.spectra is not None:
        record = hazard_record_from_mapping(hz.spectra, source=f"{source} [hazard.spectra]")
    else:
        missing = [k for k in inline_keys if getattr(hz, k) is None]
        if missing:
            raise NPRInputError(f"inline spectrum lacks {missing}.", file=source, column="hazard", fix=f"give all of {list(inline_keys)}.")
        rp = hz.return_period_yr if hz.return_period_yr is not None else cc.return_period_yr
        record = HazardRecord(
            spectra={rp: SpectrumParameters(hz.ag_s_g, hz.p, hz.t_b_s, hz.t_c_s, hz.t_d_s, return_period_yr=rp, source=f"{source} [hazard]")},
            source=source,
        )
    return record.spectrum_for(cc.return_period_yr, cc.importance_factor)


def assess_building(
    spec: BuildingSpec,
    *,
    base_dir: str | Path = ".",
    source: str = "",
    row: int | None = None,
    tables: NormTables | None = None,
    decision_tables: DecisionTables | None = None,
    catalogue: Catalogue | None = None,
    hra_config: Any = None,
    lpr_function: LprFunction | None = None,
) -> BuildingAssessment:
    """Assess one building: spectrum, method, fragility, optional risk verdict, normbesluit.

    Parameters
    ----------
    spec
        Validated building input (:func:`load_building` or a batch row).
    base_dir
        Folder against which relative file names in ``spec`` are resolved.
    source, row
        File (and CSV row) of the input, for messages and the results.
    tables, decision_tables, catalogue
        Defaults: provisional NPR tables, illustrative decision tables and catalogue.
    hra_config
        HRA configuration; when given (or ``lpr_function`` is), the risk verdict is made.
    lpr_function
        Replacement for ``hra.building_lpr``.

    Returns
    -------
    BuildingAssessment
    """
    try:
        return _assess(spec, Path(base_dir), source or "<building>", row, tables, decision_tables, catalogue, hra_config, lpr_function)
    except NPRInputError as exc:
        raise _located(exc, source or "<building>", row) from None


def _assess(spec, base_dir, source, row, tables, decision_tables, catalogue, hra_config, lpr_function) -> BuildingAssessment:
    tables = load_tables() if tables is None else tables
    decision_tables = load_decision_tables() if decision_tables is None else decision_tables
    catalogue = load_catalogue() if catalogue is None else catalogue
    b, cap, am = spec.building, spec.capacity, spec.assessment
    notes: list[str] = []
    if tables.provisional:
        notes.append(f"PROVISIONAL NPR 9998 tables ({tables.table_version}): not a normbesluit.")
    spectrum = _spectrum(spec, base_dir, tables, source, hra_config)

    typ = catalogue.get(b.typology) if b.typology else None
    typ_key = next((k for k, v in catalogue.typologies.items() if v is typ), "") if typ is not None else (b.typology or "")
    system_name = b.structural_system or (typ.structural_system if typ is not None else None)
    system = tables.structural_system(system_name) if system_name else None

    # ---- capacity curve and structure ---------------------------------------------------
    curve: PushoverCurve | None = None
    structure: StructureModel | None = None
    if cap.pushover is not None:
        if cap.masses_t is None or cap.mode_shape is None:
            raise NPRInputError("a pushover curve needs capacity.masses_t and capacity.mode_shape.", file=source, row=row, column="masses_t/mode_shape", fix="give the storey masses [t] and the first-mode shape (1 at the roof), base to roof.")
        curve = load_pushover_csv(base_dir / cap.pushover)
        n = len(cap.masses_t)
        heights = cap.level_heights_m
        if heights is None:
            h_st = b.storey_height_m or (b.height_m / n if b.height_m else None) or (typ.storey_height_m if typ is not None else None)
            if h_st is not None:
                heights = [h_st * (i + 1) for i in range(n)]
        structure = StructureModel(cap.masses_t, cap.mode_shape, heights, source=source)
        capacity_source = f"pushover {cap.pushover}"
    elif typ is not None:
        n = b.n_storeys or typ.n_storeys
        h_st = b.storey_height_m or (b.height_m / n if b.height_m else None)
        if b.floor_area_m2 is None:
            notes.append(f"floor area not given: {typ.default_floor_area_m2:g} m2 of the catalogue assumed for the mass (the N2 verdict does not depend on it).")
        structure = typ.structure(n_storeys=n, floor_area_m2=b.floor_area_m2, storey_height_m=h_st, source=source)
        curve = typ.pushover(structure, source=f"catalogue {catalogue.catalogue_version}: {typ_key}")
        capacity_source = f"catalogue typology {typ_key} ({catalogue.catalogue_version}{', ILLUSTRATIVE' if catalogue.illustrative else ''})"
    elif b.typology:
        catalogue.typology(b.typology)  # raises: unknown typology, no pushover
        raise AssertionError  # pragma: no cover
    else:
        capacity_source = "none (lateral force method inputs)"
        if am.method != "lateral_force":
            raise NPRInputError(f"method {am.method!r} needs a capacity curve.", file=source, row=row, column="capacity.pushover", fix="give a pushover CSV with masses and mode shape, or a catalogue typology.")

    # ---- near-collapse capacity definition ------------------------------------------------
    disp_cap = cap.displacement_capacity
    if disp_cap is None:
        disp_cap = "governing" if (structure is not None and structure.roof_height_m is not None and system is not None) else "ultimate"
    drift_limit = system.drift_limit_nc if system is not None else None

    # ---- method ----------------------------------------------------------------------------
    common = dict(displacement_capacity=disp_cap, drift_limit=drift_limit, strength_drop=cap.strength_drop, d_m_m=cap.d_m_m, tables=tables)
    if am.method == "n2":
        result = n2_method(curve, structure, spectrum, damping=am.damping, iterate=cap.iterate, **common)
    elif am.method == "csm":
        bt = am.behaviour_type or (system.behaviour_type if system is not None else "B")
        result = capacity_spectrum_method(curve, structure, spectrum, procedure=am.csm_procedure, behaviour_type=bt, base_damping=am.damping, **common)
    else:
        q = am.q if am.q is not None else (system.q if system is not None else None)
        if q is None:
            raise NPRInputError("the lateral force method needs q.", file=source, row=row, column="assessment.q / building.structural_system", fix="give the structural system (q from the tables) or assessment.q.")
        if structure is not None:
            mass, n_st = structure.total_mass_t, structure.n_storeys
        elif cap.masses_t is not None:
            mass, n_st = float(sum(cap.masses_t)), len(cap.masses_t)
        elif cap.total_mass_t is not None and b.n_storeys is not None:
            mass, n_st = cap.total_mass_t, b.n_storeys
        else:
            raise NPRInputError("the lateral force method needs the mass.", file=source, row=row, column="capacity.masses_t", fix="give capacity.masses_t, or capacity.total_mass_t with building.n_storeys.")
        v_r = cap.base_shear_capacity_kn if cap.base_shear_capacity_kn is not None else (curve.peak_shear_kn if curve is not None else None)
        if v_r is None:
            raise NPRInputError("the lateral force method needs the base-shear capacity.", file=source, row=row, column="capacity.base_shear_capacity_kn", fix="give base_shear_capacity_kn [kN] or a pushover curve.")
        t1 = cap.period_s
        if t1 is None:
            h = b.height_m or (structure.roof_height_m if structure is not None else None) or ((b.storey_height_m or 0) * (b.n_storeys or 0) or None)
            if h is None:
                raise NPRInputError("the lateral force method needs T1 or the height.", file=source, row=row, column="capacity.period_s", fix="give capacity.period_s [s] or building.height_m [m].")
            t1 = fundamental_period_estimate(h, system.c_t if system is not None else 0.05)
            notes.append(f"T1 = C_t H^0.75 = {t1:.3f} s (EN 1998-1 eq. 4.6).")
        result = lateral_force_method(spectrum, total_mass_t=mass, period_s=t1, q=q, base_shear_capacity_kn=v_r, n_storeys=n_st, tables=tables)
        if not result.applicable:
            notes.append("T1 exceeds min(4 T_C, 2 s): the lateral force method is outside its range (EN 1998-1 §4.3.3.2.1); use N2.")

    # ---- building-specific fragility -------------------------------------------------------
    frag = None
    if curve is not None:
        fs = spec.fragility
        pdi = fs.p_death_inside or (typ.p_death_inside if typ is not None else catalogue.default_p_death_inside)
        pdo = fs.p_death_outside or (typ.p_death_outside if typ is not None else catalogue.default_p_death_outside)
        frag = derive_building_fragility(
            curve,
            structure,
            spectrum,
            p_death_inside=pdi,
            p_death_outside=pdo,
            imt=fs.imt,
            cs_factors=fs.cs_factors,
            beta_record_to_record=fs.beta_record_to_record,
            beta_modelling=fs.beta_modelling,
            beta_capacity=fs.beta_capacity,
            displacement_capacity=disp_cap,
            drift_limit=drift_limit,
            strength_drop=cap.strength_drop,
            d_m_m=cap.d_m_m,
            damping=am.damping,
        )
        if any(frag.extrapolated):
            notes.append("collapse-state limit(s) beyond the last pushover point: the EPP plateau is extrapolated there.")

    # ---- risk verdict ----------------------------------------------------------------------
    risk = None
    if hra_config is not None or lpr_function is not None:
        if frag is None:
            raise NPRInputError("the risk verdict needs a capacity curve (for the building's fragility).", file=source, row=row, column="capacity.pushover", fix="give a pushover curve or a catalogue typology.")
        if b.x_rd is None or b.y_rd is None:
            raise NPRInputError("the risk verdict needs the building location.", file=source, row=row, column="x_rd/y_rd", fix="give x_rd and y_rd (RD New, m).")
        risk = risk_verdict(hra_config, b.x_rd, b.y_rd, frag.fragility, zone=b.zone, lpr_function=lpr_function, norm_per_yr=decision_tables.norm_lpr_per_yr)

    decision = normbesluit(
        result,
        risk=risk,
        building_id=b.id,
        basis=spec.decision.basis,
        typology=typ_key or None,
        floor_area_m2=b.floor_area_m2,
        decision_tables=decision_tables,
        catalogue=catalogue,
    )
    prov = tables.provenance()
    prov.update(
        decision_table_version=decision_tables.table_version,
        decision_tables_source=decision_tables.source,
        decision_tables_sha256=decision_tables.sha256,
        catalogue_version=catalogue.catalogue_version,
        catalogue_source=catalogue.source,
        catalogue_sha256=catalogue.sha256,
    )
    return BuildingAssessment(
        building_id=b.id,
        source=source if row is None else f"{source}:{row}",
        spec=spec,
        spectrum=spectrum,
        consequence_class=b.consequence_class,
        typology=typ_key,
        structural_system=system_name or "",
        capacity_source=capacity_source,
        curve=curve,
        structure=structure,
        result=result,
        fragility=frag,
        risk=risk,
        decision=decision,
        tables=prov,
        notes=tuple(notes),
    )


# ------------------------------------------------------------------------------------------
# batch input

#: Batch CSV columns -> (section, key, kind). kind: "s" text, "f" number, "i" integer,
#: "l" list of numbers separated by ';' or spaces, "b" boolean.
BATCH_COLUMNS: dict[str, tuple[str, str, str]] = {
    "building_id": ("building", "id", "s"),
    "consequence_class": ("building", "consequence_class", "s"),
    "typology": ("building", "typology", "s"),
    "structural_system": ("building", "structural_system", "s"),
    "n_storeys": ("building", "n_storeys", "i"),
    "storey_height_m": ("building", "storey_height_m", "f"),
    "height_m": ("building", "height_m", "f"),
    "floor_area_m2": ("building", "floor_area_m2", "f"),
    "x_rd": ("building", "x_rd", "f"),
    "y_rd": ("building", "y_rd", "f"),
    "zone": ("building", "zone", "s"),
    "hazard_file": ("hazard", "file", "s"),
    "location_id": ("hazard", "location_id", "s"),
    "return_period_yr": ("hazard", "return_period_yr", "f"),
    "ag_s_g": ("hazard", "ag_s_g", "f"),
    "p": ("hazard", "p", "f"),
    "t_b_s": ("hazard", "t_b_s", "f"),
    "t_c_s": ("hazard", "t_c_s", "f"),
    "t_d_s": ("hazard", "t_d_s", "f"),
    "pushover": ("capacity", "pushover", "s"),
    "masses_t": ("capacity", "masses_t", "l"),
    "mode_shape": ("capacity", "mode_shape", "l"),
    "level_heights_m": ("capacity", "level_heights_m", "l"),
    "total_mass_t": ("capacity", "total_mass_t", "f"),
    "displacement_capacity": ("capacity", "displacement_capacity", "s"),
    "base_shear_capacity_kn": ("capacity", "base_shear_capacity_kn", "f"),
    "period_s": ("capacity", "period_s", "f"),
    "method": ("assessment", "method", "s"),
    "damping": ("assessment", "damping", "f"),
    "csm_procedure": ("assessment", "csm_procedure", "s"),
    "behaviour_type": ("assessment", "behaviour_type", "s"),
    "q": ("assessment", "q", "f"),
    "imt": ("fragility", "imt", "s"),
    "p_death_inside": ("fragility", "p_death_inside", "l"),
    "p_death_outside": ("fragility", "p_death_outside", "l"),
    "basis": ("decision", "basis", "s"),
}


def read_batch(path: str | Path) -> list[tuple[int, BuildingSpec]]:
    """Read a batch CSV (one building per row) into validated specs.

    Columns: :data:`BATCH_COLUMNS` (``building_id`` and ``consequence_class`` required; the
    hazard either as ``hazard_file`` [+ ``location_id``] or inline ``ag_s_g, p, t_b_s, t_c_s,
    t_d_s`` [+ ``return_period_yr``]; ``pushover`` with ``masses_t`` and ``mode_shape`` as
    ``;``-separated lists, or a catalogue ``typology``). All rows are checked before any is
    assessed, and all problems (up to 20) are reported together with their row and column.

    Returns
    -------
    list of (row, BuildingSpec)
        CSV line number and spec per building.
    """
    path = Path(path)
    table = read_csv_table(path, required=("building_id", "consequence_class"), optional=tuple(BATCH_COLUMNS), aliases={"building_id": ("id",)}, allow_extra=False, what="batch file")
    if not table.rows:
        raise NPRInputError("batch file has no buildings.", file=path, fix="add one row per building below the header.")
    errors: list[NPRInputError] = []
    specs: list[tuple[int, BuildingSpec]] = []
    seen: dict[str, int] = {}
    for line, r in table.rows:
        try:
            data: dict[str, dict] = {}
            for col in table.columns:
                section, key, kind = BATCH_COLUMNS[col]
                if table.text(r, col) == "":
                    continue
                if kind == "s":
                    val: Any = table.text(r, col)
                elif kind == "f":
                    val = table.float(line, r, col)
                elif kind == "i":
                    x = table.float(line, r, col)
                    if x != int(x):
                        raise NPRInputError(f"{x} is not a whole number.", file=path, row=line, column=col, fix="give an integer.")
                    val = int(x)
                else:
                    val = table.floats(line, r, col)
                if col == "zone" and val.lstrip("-").isdigit():
                    val = int(val)
                if col == "displacement_capacity":
                    try:
                        val = float(val)
                    except ValueError:
                        pass
                data.setdefault(section, {})[key] = val
            data.setdefault("hazard", {})
            bid = data["building"]["id"]
            if bid in seen:
                raise NPRInputError(f"building_id {bid!r} also on row {seen[bid]}.", file=path, row=line, column="building_id", fix="give every building a unique id.")
            seen[bid] = line
            try:
                spec = BuildingSpec.model_validate(data)
            except ValidationError as exc:
                problem = validation_problems(exc)[0]
                loc = tuple(problem.key.split("."))
                col = next((c for c, (s, k, _) in BATCH_COLUMNS.items() if (s, k) == loc[:2]), problem.key)
                raise NPRInputError(f"{problem.message}.", file=path, row=line, column=col,
                                    fix=f"{problem.fix}; see the batch-file columns in docs/npr9998.md.") from None
            specs.append((line, spec))
        except NPRInputError as exc:
            errors.append(exc)
    if errors:
        if len(errors) == 1:
            raise errors[0]
        shown = "\n  ".join(str(e) for e in errors[:20])
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise NPRInputError(f"{len(errors)} invalid rows:\n  {shown}{more}\n", file=path, fix="correct the rows listed.")
    return specs
