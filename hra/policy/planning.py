"""Municipal strengthening plans within yearly capacity (concept Besluit art. 5, 6).

Each municipality plans its buildings through five stages

    opname -> beoordeling -> normbesluit -> versterkingsbesluit -> uitvoering

(inspection, assessment, norm decision, strengthening decision, execution) and the plans of all
municipalities together are checked against a global capacity (art. 6.3).

Order (art. 5.4)
----------------
Within a municipality, buildings are planned in this order:

1. by profile: ``verhoogd``, then ``langjarig_licht_verhoogd``, then ``licht_verhoogd``, then
   the optional additions of ``normaal`` buildings (art. 5.5); other ``normaal`` buildings and
   opted-out buildings (art. 13) are not planned;
2. within a profile, by decreasing statistic (column ``sort_by``, default
   ``lpr_p90_short_max``: the highest P90 of the LPR in the short horizon) [yr⁻¹];
3. then by decreasing *time-unsafe criterion* (column ``time_unsafe_column``, default
   ``time_unsafe_years``) when the column is present. We take the time-unsafe criterion of the
   uitgangspunten (3.2) to be **how long a building is expected to be unsafe**: the number of
   years of the risk run in which its P90 exceeds 1e-5 [yr]; a building that stays unsafe
   longer comes first. Any numeric column where larger means more urgent can be used instead;
4. then by ``building_id`` (ascending), so that the order is deterministic.

Schedule model (integer years)
------------------------------
* Every stage of a building is carried out within one calendar year and takes one unit of that
  stage's capacity in that year. Capacities are numbers of buildings per year per stage.
* ``opname`` can be in ``start_year`` at the earliest; stage *s* can be in year
  ``Y_s >= Y_{s-1} + lead_years[s]`` (the lead time, in whole years, after the year in which
  the previous stage finished; 0 allows the same year).
* Buildings are taken one by one in plan order, and each stage goes into the earliest year
  that satisfies the lead time and still has capacity (a serial list schedule). Capacity is
  therefore never exceeded, and a building is never delayed by a building later in the order.
  In particular the additions of art. 5.5 come last and only use capacity left over, so they
  never delay a building of a higher profile.
* Nothing is scheduled after ``start_year + horizon_years - 1``; stages that do not fit are
  left empty and the building is listed as not (fully) scheduled.

Capacities
----------
Per municipality and stage, the capacity of a year is the first of: a year-specific value for
that municipality, the municipality's own value, a year-specific default, the default value
(``[capacity]``). A municipality without any value for a stage is an error. Global capacities
(``[capacity_global]`` and year-specific ``scope = "global"`` values) are used only by the
feasibility check (art. 6.3): for each stage and year it sums the buildings planned by all
municipalities and reports the overload ``max(0, planned - global capacity)``. A stage without
a global capacity is not checked.

Configuration (TOML)::

    start_year = 2026
    horizon_years = 30
    additions = ["B0042"]          # normaal buildings added (art. 5.5); or add_all_normaal = true
    [lead_years]                   # years after the previous stage's year
    beoordeling = 0
    normbesluit = 0
    versterkingsbesluit = 1
    uitvoering = 1
    [capacity]                     # per municipality per year [buildings/yr]
    opname = 100
    beoordeling = 80
    normbesluit = 80
    versterkingsbesluit = 60
    uitvoering = 40
    [capacity_municipality.Eemsdelta]
    uitvoering = 20
    [capacity_global]              # all municipalities together (art. 6.3)
    uitvoering = 100
    [[capacity_year]]
    scope = "municipality"         # "default", "municipality" or "global"
    municipality = "Eemsdelta"
    stage = "uitvoering"
    year = 2027
    capacity = 5

or a CSV with columns ``scope, municipality, stage, year, capacity`` (``year`` empty: every
year), with ``start_year`` etc. given on the command line.
"""

from __future__ import annotations

import importlib.util
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hra.core.fileio import atomic_write
from hra.core.validation import format_validation_error
from hra.policy.profiles import PROFILE_ORDER, PROFILE_RANK, ProfileError

__all__ = [
    "PLAN_PROFILES",
    "STAGES",
    "LeadYears",
    "PlanConfig",
    "PlanResult",
    "StageCapacity",
    "YearCapacity",
    "check_feasibility",
    "load_plan_config",
    "make_plan",
    "order_buildings",
    "plot_plan",
    "prepare_profiles",
    "read_profiles",
    "write_plan",
]

#: The stages of the strengthening process, in order.
STAGES: tuple[str, ...] = ("opname", "beoordeling", "normbesluit", "versterkingsbesluit", "uitvoering")

#: Profiles that are always planned (art. 5.4), high to low.
PLAN_PROFILES: tuple[str, ...] = ("verhoogd", "langjarig_licht_verhoogd", "licht_verhoogd")

UNKNOWN_MUNICIPALITY = "unknown"

Stage = Literal["opname", "beoordeling", "normbesluit", "versterkingsbesluit", "uitvoering"]


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


class StageCapacity(BaseModel):
    """Capacity per stage. [buildings/yr]; a stage left out has no value at this level."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    opname: int | None = Field(default=None, ge=0, description="Inspections per year. [buildings/yr]")
    beoordeling: int | None = Field(default=None, ge=0, description="Assessments per year. [buildings/yr]")
    normbesluit: int | None = Field(default=None, ge=0, description="Norm decisions per year. [buildings/yr]")
    versterkingsbesluit: int | None = Field(default=None, ge=0,
                                            description="Strengthening decisions per year. [buildings/yr]")
    uitvoering: int | None = Field(default=None, ge=0, description="Executions per year. [buildings/yr]")


class LeadYears(BaseModel):
    """Lead time of each stage after the previous one. [yr]

    ``Y_stage >= Y_previous + lead``; 0 allows both in the same year.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    beoordeling: int = Field(default=0, ge=0, description="Years after opname. [yr]")
    normbesluit: int = Field(default=0, ge=0, description="Years after beoordeling. [yr]")
    versterkingsbesluit: int = Field(default=0, ge=0, description="Years after normbesluit. [yr]")
    uitvoering: int = Field(default=0, ge=0, description="Years after versterkingsbesluit. [yr]")


class YearCapacity(BaseModel):
    """A capacity for one stage in one year, for the default, a municipality, or the global level."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scope: Literal["default", "municipality", "global"] = "municipality"
    municipality: str | None = None
    stage: Stage
    year: int = Field(description="Calendar year. [yr]")
    capacity: int = Field(ge=0, description="Capacity in that year. [buildings/yr]")

    @model_validator(mode="after")
    def _municipality_needed(self) -> "YearCapacity":
        if self.scope == "municipality" and not (self.municipality or "").strip():
            raise ValueError("scope 'municipality' needs a municipality name")
        return self


class PlanConfig(BaseModel):
    """Settings of a plan: start, horizon, lead times, capacities, additions and sort columns."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start_year: int = Field(description="First year of the plan. [yr]")
    horizon_years: int = Field(default=30, ge=1, le=500, description="Number of plan years. [yr]")
    lead_years: LeadYears = Field(default_factory=LeadYears)
    capacity: StageCapacity = Field(default_factory=StageCapacity,
                                    description="Default capacity of every municipality. [buildings/yr]")
    capacity_municipality: dict[str, StageCapacity] = Field(default_factory=dict)
    capacity_global: StageCapacity | None = Field(default=None,
                                                  description="All municipalities together (art. 6.3).")
    capacity_year: list[YearCapacity] = Field(default_factory=list)
    additions: list[str] = Field(default_factory=list, description="normaal buildings added (art. 5.5).")
    add_all_normaal: bool = Field(default=False, description="Add every normaal building (art. 5.5).")
    sort_by: str = Field(default="lpr_p90_short_max", description="Statistic ordering a profile, decreasing.")
    time_unsafe_column: str = Field(default="time_unsafe_years",
                                    description="Second sort key, decreasing, used when present.")

    @property
    def last_year(self) -> int:
        """Last plan year. [yr]"""
        return self.start_year + self.horizon_years - 1

    def has_global(self) -> bool:
        """Whether any global capacity is set (feasibility check, art. 6.3)."""
        g = self.capacity_global
        any_const = g is not None and any(getattr(g, s) is not None for s in STAGES)
        return any_const or any(y.scope == "global" for y in self.capacity_year)


def _format_errors(err: ValidationError) -> str:
    return format_validation_error(err, keys_hint="see hra.policy.planning.PlanConfig for the keys", one_line=True)


def _validate_config(data: Mapping[str, Any], where: str) -> PlanConfig:
    try:
        return PlanConfig.model_validate(data)
    except ValidationError as err:
        raise ProfileError(f"{where}: {_format_errors(err)} (capacities are numbers of buildings per year, >= 0; "
                           "lead times whole years >= 0)") from None


def _csv_capacities(path: Path) -> dict[str, Any]:
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ProfileError(f"capacity file {path}: cannot read it as CSV: {err}") from None
    df.columns = [c.strip().lower() for c in df.columns]
    for c in ("stage", "capacity"):
        if c not in df.columns:
            raise ProfileError(f"capacity file {path}: column {c!r} is missing; need scope, municipality, stage, "
                               "year, capacity")
    data: dict[str, Any] = {"capacity": {}, "capacity_municipality": {}, "capacity_global": {}, "capacity_year": []}
    for i, r in enumerate(df.to_dict("records"), start=2):  # row 1 is the header
        scope = (r.get("scope") or "").strip().lower()
        mun = (r.get("municipality") or "").strip()
        if not scope:
            scope = "municipality" if mun else "default"
        stage = r["stage"].strip()
        if stage not in STAGES:
            raise ProfileError(f"capacity file {path}: row {i}, column 'stage': {stage!r} is not one of "
                               f"{', '.join(STAGES)}")
        try:
            cap = int(float(r["capacity"]))
            if cap != float(r["capacity"]):
                raise ValueError
        except ValueError:
            raise ProfileError(f"capacity file {path}: row {i}, column 'capacity': {r['capacity']!r} is not a whole "
                               "number of buildings per year") from None
        if cap < 0:
            raise ProfileError(f"capacity file {path}: row {i}, column 'capacity': {cap} is negative; capacities are "
                               "numbers of buildings per year, >= 0")
        year = (r.get("year") or "").strip()
        if scope not in ("default", "municipality", "global"):
            raise ProfileError(f"capacity file {path}: row {i}, column 'scope': {scope!r} is not default, "
                               "municipality or global")
        if scope == "municipality" and not mun:
            raise ProfileError(f"capacity file {path}: row {i}, column 'municipality' is empty for scope municipality")
        if year:
            try:
                y = int(year)
            except ValueError:
                raise ProfileError(f"capacity file {path}: row {i}, column 'year': {year!r} is not a year") from None
            data["capacity_year"].append({"scope": scope, "municipality": mun or None, "stage": stage, "year": y,
                                          "capacity": cap})
        elif scope == "default":
            data["capacity"][stage] = cap
        elif scope == "global":
            data["capacity_global"][stage] = cap
        else:
            data["capacity_municipality"].setdefault(mun, {})[stage] = cap
    if not data["capacity_global"]:
        data["capacity_global"] = None
    return data


def load_plan_config(path: str | Path | None = None, **overrides: Any) -> PlanConfig:
    """Read plan settings and capacities from a TOML or CSV file.

    Parameters
    ----------
    path
        TOML file with the keys of :class:`PlanConfig`, or CSV file with columns ``scope``
        (``default``/``municipality``/``global``; empty: ``municipality`` if a municipality is
        given, else ``default``), ``municipality``, ``stage``, ``year`` (empty: every year) and
        ``capacity`` [buildings/yr]. ``None``: only ``overrides``.
    **overrides
        Keys set on top of the file (e.g. ``start_year=2026``); ``None`` values are ignored.

    Raises
    ------
    ProfileError
        Unreadable file, unknown keys, negative capacities or lead times (naming file, row or
        key), or a missing ``start_year``.
    """
    data: dict[str, Any] = {}
    where = "plan settings"
    if path is not None:
        p = Path(path)
        where = f"capacity file {p}"
        if not p.is_file():
            raise ProfileError(f"capacity file {p} does not exist; give a TOML or CSV file of capacities")
        if p.suffix.lower() == ".csv":
            data = _csv_capacities(p)
        else:
            try:
                data = tomllib.loads(p.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
                raise ProfileError(f"capacity file {p}: cannot read it as TOML: {err}") from None
    data.update({k: v for k, v in overrides.items() if v is not None})
    if "start_year" not in data:
        raise ProfileError(f"{where}: 'start_year' is not set; add start_year = YYYY to the TOML file or pass "
                           "--start-year")
    return _validate_config(data, where)


class _Capacities:
    """Capacity lookup: (municipality, stage, year) -> buildings per year."""

    def __init__(self, cfg: PlanConfig) -> None:
        self.cfg = cfg
        self.year_mun: dict[tuple[str, str, int], int] = {}
        self.year_def: dict[tuple[str, int], int] = {}
        self.year_glob: dict[tuple[str, int], int] = {}
        for yc in cfg.capacity_year:
            if yc.scope == "municipality":
                self.year_mun[(str(yc.municipality), yc.stage, yc.year)] = yc.capacity
            elif yc.scope == "default":
                self.year_def[(yc.stage, yc.year)] = yc.capacity
            else:
                self.year_glob[(yc.stage, yc.year)] = yc.capacity
        self._cache: dict[tuple[str, str, int], int] = {}

    def defined(self, municipality: str, stage: str) -> bool:
        m = self.cfg.capacity_municipality.get(municipality)
        return (
            (m is not None and getattr(m, stage) is not None)
            or getattr(self.cfg.capacity, stage) is not None
            or any(k[0] == municipality and k[1] == stage for k in self.year_mun)
            or any(k[0] == stage for k in self.year_def)
        )

    def get(self, municipality: str, stage: str, year: int) -> int:
        key = (municipality, stage, year)
        if key in self._cache:
            return self._cache[key]
        val: int | None = self.year_mun.get(key)
        if val is None:
            m = self.cfg.capacity_municipality.get(municipality)
            val = getattr(m, stage) if m is not None else None
        if val is None:
            val = self.year_def.get((stage, year))
        if val is None:
            val = getattr(self.cfg.capacity, stage)
        val = 0 if val is None else int(val)  # only year-specific values given: other years have none
        self._cache[key] = val
        return val

    def global_(self, stage: str, year: int) -> float:
        val = self.year_glob.get((stage, year))
        if val is None and self.cfg.capacity_global is not None:
            val = getattr(self.cfg.capacity_global, stage)
        return math.nan if val is None else float(val)


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def read_profiles(source: str | Path | pd.DataFrame) -> pd.DataFrame:
    """Read a profile table: a CSV (``hra profiles export``), a register file or a register URL.

    Parameters
    ----------
    source
        A DataFrame (returned as is), the path of a CSV file, the path of an SQLite register file
        (recognised by its header) or an SQLAlchemy URL of a profile register
        (``sqlite:///register.db``); of a register, :meth:`~hra.policy.register.Register.export` is used.

    Raises
    ------
    ProfileError
        If the file does not exist or cannot be read.
    """
    if isinstance(source, pd.DataFrame):
        return source
    text = str(source)
    if "://" in text:
        from hra.policy.register import Register  # local import: planning does not need a database otherwise

        with Register(text, create=False) as reg:
            return reg.export()
    p = Path(text)
    if not p.is_file():
        raise ProfileError(f"profile table {p} does not exist; give the CSV written by `hra profiles export`, a "
                           "register file (register.db) or a register URL (sqlite:///register.db)")
    with open(p, "rb") as fh:
        is_sqlite = fh.read(16) == b"SQLite format 3\x00"
    if is_sqlite:  # a register file given by its path
        from hra.policy.register import Register

        with Register(p, create=False) as reg:
            return reg.export()
    try:
        return pd.read_csv(p, dtype={"building_id": str, "municipality": str, "connected_group": str},
                           keep_default_na=False, na_values=[""])
    except (OSError, pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        raise ProfileError(f"profile table {p}: cannot read it as CSV: {err}") from None


def _missing(v: Any) -> bool:
    """True for None, NaN, pd.NA, NaT and blank strings."""
    if v is None or (isinstance(v, str) and not v.strip()):
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _truthy(v: Any) -> bool:
    if _missing(v):
        return False
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, float, np.integer, np.floating)):
        return not (isinstance(v, float) and math.isnan(v)) and v != 0
    return str(v).strip().lower() in ("true", "1", "yes", "ja", "y")


def prepare_profiles(table: pd.DataFrame, *, exposure: pd.DataFrame | None = None,
                     where: str = "profile table") -> pd.DataFrame:
    """Normalise a profile table for planning.

    Parameters
    ----------
    table
        Columns ``building_id`` and ``applied_profile`` (register export) or ``profile``
        (:func:`hra.policy.profiles.assign_profiles`); optional ``municipality``, ``opted_out`` and
        the sort columns.
    exposure
        Optional table with ``building_id`` and ``municipality``, used when ``table`` has no
        municipality column. Without both, all buildings are in municipality ``"unknown"``.
    where
        Name of the input, for error messages.

    Returns
    -------
    pandas.DataFrame
        The table with columns ``building_id`` (str), ``profile``, ``municipality`` and
        ``opted_out`` (bool) set.

    Raises
    ------
    ProfileError
        Missing columns, duplicate building ids, unknown profiles (naming the row), or buildings
        missing from the exposure table.
    """
    if "building_id" not in table.columns:
        raise ProfileError(f"{where}: column 'building_id' is missing")
    df = table.copy()
    df["building_id"] = df["building_id"].astype(str)
    dup = df.loc[df["building_id"].duplicated(), "building_id"].unique()
    if len(dup):
        raise ProfileError(f"{where}: building_id {', '.join(map(repr, dup[:5]))} occurs more than once; give each "
                           "building one row")
    if "applied_profile" in df.columns:
        pcol = "applied_profile"
    elif "profile" in df.columns:
        pcol = "profile"
    else:
        raise ProfileError(f"{where}: needs a column 'applied_profile' (register export) or 'profile'")
    profiles = []
    for i, v in enumerate(df[pcol].tolist()):
        if _missing(v):
            profiles.append(None)
            continue
        v = str(v).strip()
        if v not in PROFILE_RANK:
            raise ProfileError(f"{where}: row {i + 1} (building {df['building_id'].iloc[i]!r}), column {pcol!r}: "
                               f"unknown profile {v!r}; use one of {', '.join(PROFILE_ORDER)}")
        profiles.append(v)
    df["profile"] = pd.Series(profiles, index=df.index, dtype=object)
    if "municipality" in df.columns:
        mun = df["municipality"]
    elif exposure is not None:
        for c in ("building_id", "municipality"):
            if c not in exposure.columns:
                raise ProfileError(f"exposure table: column {c!r} is missing (needed for the municipality)")
        m = dict(zip(exposure["building_id"].astype(str), exposure["municipality"]))
        missing = [b for b in df["building_id"] if b not in m]
        if missing:
            raise ProfileError(f"exposure table: {len(missing)} building(s) of the {where} are missing, e.g. "
                               f"{', '.join(map(repr, missing[:5]))}; add them with their municipality")
        mun = df["building_id"].map(m)
    else:
        mun = pd.Series([None] * len(df), index=df.index, dtype=object)
    df["municipality"] = [UNKNOWN_MUNICIPALITY if _missing(v) else str(v).strip() for v in mun]
    if "opted_out" in df.columns:
        df["opted_out"] = [_truthy(v) for v in df["opted_out"]]
    else:
        df["opted_out"] = False
    return df


def order_buildings(table: pd.DataFrame, cfg: PlanConfig, *, where: str = "profile table") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Select and order the buildings of the plan (art. 5.4, 5.5).

    Parameters
    ----------
    table
        Output of :func:`prepare_profiles`.
    cfg
        Plan settings (``additions``, ``add_all_normaal``, ``sort_by``, ``time_unsafe_column``).

    Returns
    -------
    planned, excluded
        ``planned``: buildings in plan order (sorted by municipality, then priority), with
        ``addition`` (bool) and ``priority`` (1-based within the municipality);
        ``excluded``: ``building_id``, ``municipality``, ``profile``, ``reason``.

    Raises
    ------
    ProfileError
        Unknown addition ids, an addition that is not ``normaal``, or a missing sort column.
    """
    df = table.copy()
    ids = set(df["building_id"])
    unknown = [b for b in cfg.additions if str(b) not in ids]
    if unknown:
        raise ProfileError(f"plan additions: building id(s) {', '.join(map(repr, unknown[:5]))} are not in the "
                           f"{where}; check the ids under 'additions'")
    prof = dict(zip(df["building_id"], df["profile"]))
    not_normaal = [b for b in cfg.additions if prof[str(b)] != "normaal"]
    if not_normaal:
        b = str(not_normaal[0])
        raise ProfileError(f"plan additions: building {b!r} has profile {prof[b]!r}, not 'normaal'; only normaal "
                           "buildings are added (art. 5.5), the others are in the plan already. Remove it from "
                           "'additions'")
    if cfg.sort_by not in df.columns:
        raise ProfileError(f"{where}: sort column {cfg.sort_by!r} is missing; use the export of `hra profiles "
                           "export`, add the column, or set sort_by to a column that is there")
    additions = {str(b) for b in cfg.additions}
    is_add = df["profile"].eq("normaal") & (df["building_id"].isin(additions) | cfg.add_all_normaal)
    in_plan = (df["profile"].isin(PLAN_PROFILES) | is_add) & ~df["opted_out"]
    reasons = np.where(df["opted_out"], "opted out (art. 13)",
                       np.where(df["profile"].isna(), "no profile in the register",
                                np.where(df["profile"].eq("normaal"), "normaal, not added (art. 5.5)", "")))
    excluded = pd.DataFrame({"building_id": df["building_id"], "municipality": df["municipality"],
                             "profile": df["profile"], "reason": reasons})[~in_plan.to_numpy()]
    p = df[in_plan.to_numpy()].copy()
    p["addition"] = is_add[in_plan].to_numpy()
    p["_rank"] = p["profile"].map(PROFILE_RANK).astype(int)
    p["_stat"] = pd.to_numeric(p[cfg.sort_by], errors="coerce").fillna(-np.inf)
    if cfg.time_unsafe_column in p.columns:
        p["_tu"] = pd.to_numeric(p[cfg.time_unsafe_column], errors="coerce").fillna(-np.inf)
    else:
        p["_tu"] = 0.0
    p = p.sort_values(["municipality", "_rank", "_stat", "_tu", "building_id"],
                      ascending=[True, False, False, False, True], kind="mergesort")
    p["priority"] = p.groupby("municipality").cumcount() + 1
    p = p.drop(columns=["_rank", "_stat", "_tu"]).reset_index(drop=True)
    return p, excluded.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Scheduling
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanResult:
    """A plan of all municipalities.

    Attributes
    ----------
    schedule
        One row per planned building, by municipality and priority: ``municipality``,
        ``priority``, ``building_id``, ``profile``, ``addition``, the sort columns, one column per
        stage with its year (nullable integer; empty if it does not fit in the horizon) [yr], and
        ``scheduled`` (all stages planned).
    jaarschijven
        Year slices per municipality: ``municipality``, ``year``, ``stage``, ``planned``
        (buildings), ``capacity`` [buildings/yr] and the count per profile.
    feasibility
        Check of all municipalities together against the global capacity (art. 6.3):
        ``year``, ``stage``, ``planned``, ``global_capacity`` (NaN: not given), ``overload``;
        ``None`` if no global capacity is set.
    excluded
        Buildings not in the plan with the reason.
    config
        The settings used.
    provenance
        Package version, git revision, library versions, the plan settings and the SHA-256
        of the profile table (``provenance.json`` beside the tables).
    """

    schedule: pd.DataFrame
    jaarschijven: pd.DataFrame
    feasibility: pd.DataFrame | None
    excluded: pd.DataFrame
    config: PlanConfig
    unscheduled: tuple[str, ...] = field(default=())
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def feasible(self) -> bool:
        """True when no stage-year exceeds the global capacity (or none is set)."""
        return self.feasibility is None or bool((self.feasibility["overload"] <= 0).all())

    def schedule_long(self) -> pd.DataFrame:
        """Year slices per building in long form: ``municipality, building_id, profile, stage, year``."""
        long = self.schedule.melt(id_vars=["municipality", "building_id", "profile"], value_vars=list(STAGES),
                                  var_name="stage", value_name="year")
        long["stage"] = pd.Categorical(long["stage"], categories=STAGES, ordered=True)
        long = long.sort_values(["municipality", "building_id", "stage"]).reset_index(drop=True)
        long["stage"] = long["stage"].astype(str)
        return long


def _schedule_municipality(mun: str, ids: list[str], caps: _Capacities, cfg: PlanConfig) -> dict[str, list[int | None]]:
    """Serial list schedule of one municipality; returns stage -> year per building (in order)."""
    first, last = cfg.start_year, cfg.last_year
    lead = {s: (0 if s == STAGES[0] else getattr(cfg.lead_years, s)) for s in STAGES}
    used = {s: {} for s in STAGES}
    first_open = dict.fromkeys(STAGES, first)  # every year before it is full
    out: dict[str, list[int | None]] = {s: [] for s in STAGES}
    for _ in ids:
        prev: int | None = None
        for k, s in enumerate(STAGES):
            if k > 0 and prev is None:
                out[s].append(None)
                continue
            earliest = first if k == 0 else prev + lead[s]
            y = max(earliest, first_open[s])
            u = used[s]
            while y <= last and u.get(y, 0) >= caps.get(mun, s, y):
                y += 1
            if y > last:
                out[s].append(None)
                prev = None
                continue
            u[y] = u.get(y, 0) + 1
            out[s].append(y)
            prev = y
            fo = first_open[s]
            while fo <= last and u.get(fo, 0) >= caps.get(mun, s, fo):
                fo += 1
            first_open[s] = fo
    return out


def check_feasibility(jaarschijven: pd.DataFrame, cfg: PlanConfig) -> pd.DataFrame | None:
    """Check all municipal plans together against the global capacity (art. 6.3).

    Parameters
    ----------
    jaarschijven
        Year slices with ``year``, ``stage``, ``planned`` (as in :class:`PlanResult`).
    cfg
        Settings with ``capacity_global`` and/or global year-specific capacities.

    Returns
    -------
    pandas.DataFrame or None
        One row per stage and plan year: ``year``, ``stage``, ``planned`` (all municipalities),
        ``global_capacity`` [buildings/yr] (NaN where none is given: unchecked) and ``overload``
        = ``max(0, planned - global_capacity)`` [buildings]. ``None`` if no global capacity is set.
    """
    if not cfg.has_global():
        return None
    caps = _Capacities(cfg)
    years = range(cfg.start_year, cfg.last_year + 1)
    tot = (jaarschijven.groupby(["year", "stage"])["planned"].sum()
           if len(jaarschijven) else pd.Series(dtype=float))
    rows = []
    for y in years:
        for s in STAGES:
            planned = int(tot.get((y, s), 0))
            g = caps.global_(s, y)
            over = 0 if math.isnan(g) else max(0, planned - int(g))
            rows.append({"year": y, "stage": s, "planned": planned, "global_capacity": g, "overload": over})
    return pd.DataFrame(rows, columns=["year", "stage", "planned", "global_capacity", "overload"])


def make_plan(profiles: pd.DataFrame | str | Path, cfg: PlanConfig, *, exposure: pd.DataFrame | None = None,
              where: str = "profile table") -> PlanResult:
    """Make the plans of all municipalities and check them together (art. 5, 6).

    Parameters
    ----------
    profiles
        Profile table (register export, :func:`hra.policy.profiles.assign_profiles` output), a CSV path
        or a register URL (see :func:`read_profiles`).
    cfg
        Plan settings and capacities (:func:`load_plan_config`).
    exposure
        Optional ``building_id, municipality`` table, used when the profiles have no
        municipality column.

    Returns
    -------
    PlanResult

    Raises
    ------
    ProfileError
        Bad inputs (see :func:`prepare_profiles`, :func:`order_buildings`), a municipality with no
        capacity for a stage, or a stage whose capacity is 0 in every plan year while buildings
        need it.
    """
    if not isinstance(profiles, pd.DataFrame):
        where = f"profile table {profiles}"
    table = prepare_profiles(read_profiles(profiles), exposure=exposure, where=where)
    planned, excluded = order_buildings(table, cfg, where=where)
    caps = _Capacities(cfg)
    years = list(range(cfg.start_year, cfg.last_year + 1))
    stage_years: dict[str, list[int | None]] = {s: [] for s in STAGES}
    for mun, grp in planned.groupby("municipality", sort=True):
        for s in STAGES:
            if not caps.defined(mun, s):
                raise ProfileError(f"capacities: no capacity for stage {s!r} in municipality {mun!r}; set it under "
                                   f"[capacity] (all municipalities) or [capacity_municipality.{mun}]")
            if sum(caps.get(mun, s, y) for y in years) == 0:
                raise ProfileError(f"capacities: the capacity for stage {s!r} in municipality {mun!r} is 0 in every "
                                   f"plan year {years[0]}-{years[-1]}, so its {len(grp)} buildings cannot be planned; "
                                   "raise that capacity")
        res = _schedule_municipality(str(mun), grp["building_id"].tolist(), caps, cfg)
        for s in STAGES:
            stage_years[s].extend(res[s])
    sched = planned.copy()
    for s in STAGES:
        sched[s] = pd.array(stage_years[s], dtype="Int64")
    sched["scheduled"] = sched[list(STAGES)].notna().all(axis=1).to_numpy(dtype=bool)
    front = ["municipality", "priority", "building_id", "profile", "addition"]
    sort_cols = [c for c in (cfg.sort_by, cfg.time_unsafe_column) if c in sched.columns]
    sched = sched[front + sort_cols + list(STAGES) + ["scheduled"]]

    jaar = _jaarschijven(sched, caps, cfg)
    feas = check_feasibility(jaar, cfg)
    unscheduled = tuple(sched.loc[~sched["scheduled"], "building_id"])
    return PlanResult(schedule=sched, jaarschijven=jaar, feasibility=feas, excluded=excluded, config=cfg,
                      unscheduled=unscheduled, provenance=_plan_provenance(profiles, table, cfg))


def _plan_provenance(source, table: pd.DataFrame, cfg: PlanConfig) -> dict[str, Any]:
    """What a reviewer needs to follow a plan: code, libraries, settings and the input table's hash."""
    import datetime as _dt
    import hashlib

    from hra.outputs import git_revision, library_versions, package_version

    git = git_revision()
    p: dict[str, Any] = {"package": "groningen-hra", "package_version": package_version(),
                         "git_revision": git["revision"] if git else None,
                         "library_versions": library_versions(),
                         "plan_config": cfg.model_dump(mode="json"),
                         "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    if git:
        p["git_dirty"] = git["dirty"]
    if isinstance(source, (str, Path)) and Path(str(source)).is_file():
        p["profile_table"] = str(Path(source).resolve())
        p["input_sha256"] = {f"profiles:{Path(source).name}": hashlib.sha256(Path(source).read_bytes()).hexdigest()}
    else:
        p["profile_table"] = str(source) if isinstance(source, (str, Path)) else "DataFrame"
        p["input_sha256"] = {"profiles:table (CSV of the prepared table)":
                             hashlib.sha256(table.to_csv(index=False).encode()).hexdigest()}
    return p


def _jaarschijven(sched: pd.DataFrame, caps: _Capacities, cfg: PlanConfig) -> pd.DataFrame:
    cols = ["municipality", "year", "stage", "planned", "capacity", *PROFILE_ORDER]
    if sched.empty:
        return pd.DataFrame(columns=cols)
    long = sched.melt(id_vars=["municipality", "profile"], value_vars=list(STAGES), var_name="stage",
                      value_name="year").dropna(subset=["year"])
    counts = {(m, int(y), st, p): int(n) for (m, y, st, p), n in
              long.groupby(["municipality", "year", "stage", "profile"]).size().items()}
    last_used = int(long["year"].max()) if len(long) else cfg.start_year
    rows = []
    for mun in sorted(sched["municipality"].unique()):
        for y in range(cfg.start_year, last_used + 1):
            for s in STAGES:
                per = {p: counts.get((mun, y, s, p), 0) for p in PROFILE_ORDER}
                rows.append({"municipality": mun, "year": y, "stage": s, "planned": sum(per.values()),
                             "capacity": caps.get(mun, s, y), **per})
    return pd.DataFrame(rows, columns=cols)


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------


def _atomic(path: Path, write: Any) -> Path:
    return atomic_write(path, write, overwrite=True, error=ProfileError)


def write_plan(result: PlanResult, out_dir: str | Path, *, fmt: str = "csv") -> list[Path]:
    """Write the plan tables into a folder, each file atomically.

    Writes ``schedule``, ``schedule_long`` (year slices per building), ``jaarschijven`` (per
    municipality), ``excluded`` and, when checked, ``feasibility``, as ``.csv`` or ``.parquet``,
    and ``provenance.json`` (:attr:`PlanResult.provenance`).

    Parameters
    ----------
    result
        The plan.
    out_dir
        Output folder (created if missing).
    fmt
        ``"csv"`` or ``"parquet"`` (needs pyarrow).

    Raises
    ------
    ProfileError
        Unknown format, or parquet asked for without pyarrow installed.
    """
    fmt = fmt.lower()
    if fmt not in ("csv", "parquet"):
        raise ProfileError(f"plan output format {fmt!r} unknown; use csv or parquet")
    if fmt == "parquet" and importlib.util.find_spec("pyarrow") is None:
        raise ProfileError("plan output format parquet needs the package pyarrow, which is not installed; use "
                           "--format csv, or install pyarrow")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = {"schedule": result.schedule, "schedule_long": result.schedule_long(),
              "jaarschijven": result.jaarschijven, "excluded": result.excluded}
    if result.feasibility is not None:
        tables["feasibility"] = result.feasibility
    written = []
    if result.provenance:
        import json

        prov = json.dumps(result.provenance, indent=2, sort_keys=True, default=str)
        written.append(_atomic(out / "provenance.json", lambda t: Path(t).write_text(prov, encoding="utf-8")))
    for name, df in tables.items():
        path = out / f"{name}.{fmt}"
        if fmt == "csv":
            written.append(_atomic(path, lambda t, df=df: df.to_csv(t, index=False)))
        else:
            written.append(_atomic(path, lambda t, df=df: df.to_parquet(t, index=False, engine="pyarrow")))
    return written


_PROFILE_COLOURS = {"verhoogd": "#c0392b", "langjarig_licht_verhoogd": "#e67e22", "licht_verhoogd": "#f1c40f",
                    "normaal": "#95a5a6"}


def plot_plan(result: PlanResult, path: str | Path) -> Path:
    """PNG chart of the stages per year: buildings planned per profile (all municipalities).

    One panel per stage with stacked bars per profile; the global capacity (art. 6.3) as a step
    line where given, otherwise the sum of the municipal capacities (dashed). Drawn with the
    Agg canvas (no display needed) and written atomically.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cfg = result.config
    j = result.jaarschijven
    last = int(j["year"].max()) if len(j) else cfg.start_year
    years = np.arange(cfg.start_year, last + 1)
    fig = Figure(figsize=(9, 2.0 * len(STAGES) + 0.8), constrained_layout=True)
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(STAGES), 1, sharex=True)
    caps = _Capacities(cfg)
    for ax, s in zip(axes, STAGES):
        js = j[j["stage"] == s].groupby("year")[list(PROFILE_ORDER) + ["capacity"]].sum() if len(j) else None
        bottom = np.zeros(len(years))
        for p in PROFILE_ORDER:
            vals = np.array([0.0 if js is None or y not in js.index else float(js.loc[y, p]) for y in years])
            if vals.any():
                ax.bar(years, vals, bottom=bottom, color=_PROFILE_COLOURS[p], label=p, width=0.8)
            bottom += vals
        edges = np.append(years - 0.5, years[-1] + 0.5)
        gcap = np.array([caps.global_(s, int(y)) for y in years])
        if np.isfinite(gcap).any():
            ax.stairs(gcap, edges, baseline=None, color="black", lw=1.2, label="global capacity (art. 6.3)")
        elif js is not None:
            mcap = np.array([0.0 if y not in js.index else float(js.loc[y, "capacity"]) for y in years])
            ax.stairs(mcap, edges, baseline=None, color="black", lw=1.0, ls="--", label="sum of municipal capacities")
        ax.set_ylabel(f"{s}\n[buildings]")
        ax.grid(axis="y", alpha=0.3)
    axes[-1].set_xlabel("year")
    handles, labels = [], []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    if handles:
        fig.legend(handles, labels, fontsize=8, loc="outside lower center", ncols=3)
    fig.suptitle("Strengthening plan: buildings per stage and year")
    out = Path(path)
    return _atomic(out, lambda t: fig.savefig(t, format="png", dpi=100))
