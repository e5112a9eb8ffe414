r"""Normbesluit: voldoet / voldoet niet, category of measures, budget bandwidth, term.

The normbesluit of a building follows from its NPR 9998 assessment (basis ``"unity_check"``,
the default) or, where a programme decides on risk, from its LPR (basis ``"lpr_ratio"``):

* deficit measure :math:`x` = the governing unity check (demand / capacity, i.e. the inverse of
  capacity / demand), or :math:`x = \max_y \overline{LPR}_y / 10^{-5}`;
* :math:`x \le 1`: **voldoet** (meets the norm), no measures;
* :math:`x > 1`: **voldoet niet**; the category is the first one in the decision table whose
  upper bound is :math:`\ge x` (bands are inclusive at the top); its budget bandwidth is
  ``budget_eur_per_m2`` times the gross floor area when both are known (a typology's catalogue
  override first), else ``budget_eur`` per building; its term is ``term_years``;
* where the building's typology has a catalogue entry, the **typology approach** applies: the
  catalogue's standard measures for the category are listed.

The decision tables are programme policy, not NPR 9998; the default is ILLUSTRATIVE
(:func:`npr9998.tables.load_decision_tables`). The edition and table versions of all tables
used are recorded in the :class:`Normbesluit`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from npr9998.catalogue import Catalogue, load_catalogue
from npr9998.errors import NPRInputError
from npr9998.tables import DecisionTables, load_decision_tables
from npr9998.verdict import RiskVerdict

__all__ = ["Normbesluit", "normbesluit", "VOLDOET", "VOLDOET_NIET", "RECORD_COLUMNS"]

VOLDOET = "voldoet"
VOLDOET_NIET = "voldoet niet"

#: Columns of the flat results table, in order (the first eight are the contract with the
#: risk-profile code).
RECORD_COLUMNS = (
    "building_id",
    "verdict",
    "unity_check",
    "category",
    "budget_low",
    "budget_high",
    "edition",
    "table_version",
    "provisional",
    "method",
    "governing",
    "demand",
    "capacity",
    "basis",
    "category_label",
    "term_years",
    "typology",
    "typology_approach",
    "standard_measures",
    "budget_basis",
    "lpr_mean_max",
    "lpr_ratio",
    "risk_voldoet",
    "decision_table_version",
    "catalogue_version",
)


@dataclass(frozen=True)
class Normbesluit:
    """The outcome of the assessment of one building.

    Attributes
    ----------
    building_id
        Building identifier.
    verdict
        ``"voldoet"`` or ``"voldoet niet"``.
    basis
        ``"unity_check"`` or ``"lpr_ratio"``: what the verdict and category are based on.
    deficit_measure
        The number compared with 1 and with the bands. [-]
    unity_check
        Governing demand/capacity of the NPR assessment, if one was made. [-]
    capacity_demand_ratio
        1 / unity_check. [-]
    lpr_ratio
        max mean LPR / norm, if a risk verdict was made. [-]
    lpr_mean_max
        max over years of the mean LPR, if a risk verdict was made. [1/yr]
    risk_voldoet
        Whether the risk verdict meets the norm (None without one).
    category, category_label, measures_description
        Category of measures ('' when voldoet).
    budget_low_eur, budget_high_eur
        Budget bandwidth (0 when voldoet). [EUR]
    budget_basis
        How the budget was computed.
    term_years
        Term for the measures (None when voldoet). [yr]
    typology, typology_approach, standard_measures
        Catalogue typology, whether the typology approach applies, its standard measures.
    method, governing, demand, capacity
        Assessment method and governing check (units as in the check).
    edition, table_version, provisional
        NPR 9998 tables used.
    decision_table_version, decision_illustrative, catalogue_version, catalogue_illustrative
        The decision tables and catalogue used.
    """

    building_id: str
    verdict: str
    basis: str
    deficit_measure: float
    unity_check: float | None
    capacity_demand_ratio: float | None
    lpr_ratio: float | None
    lpr_mean_max: float | None
    risk_voldoet: bool | None
    category: str
    category_label: str
    measures_description: str
    budget_low_eur: float
    budget_high_eur: float
    budget_basis: str
    term_years: float | None
    typology: str
    typology_approach: bool
    standard_measures: tuple[str, ...]
    method: str
    governing: str
    demand: float | None
    capacity: float | None
    edition: str
    table_version: str
    provisional: bool
    decision_table_version: str
    decision_illustrative: bool
    catalogue_version: str
    catalogue_illustrative: bool

    @property
    def voldoet(self) -> bool:
        """True when the verdict is voldoet."""
        return self.verdict == VOLDOET

    def to_dict(self) -> dict:
        """Plain dict (JSON-ready)."""
        d = asdict(self)
        d["standard_measures"] = list(self.standard_measures)
        return d

    def to_record(self) -> dict[str, Any]:
        """Flat row with :data:`RECORD_COLUMNS` (``budget_low``/``budget_high`` in EUR)."""
        return {
            "building_id": self.building_id,
            "verdict": self.verdict,
            "unity_check": self.unity_check,
            "category": self.category,
            "budget_low": self.budget_low_eur,
            "budget_high": self.budget_high_eur,
            "edition": self.edition,
            "table_version": self.table_version,
            "provisional": self.provisional,
            "method": self.method,
            "governing": self.governing,
            "demand": self.demand,
            "capacity": self.capacity,
            "basis": self.basis,
            "category_label": self.category_label,
            "term_years": self.term_years,
            "typology": self.typology,
            "typology_approach": self.typology_approach,
            "standard_measures": "; ".join(self.standard_measures),
            "budget_basis": self.budget_basis,
            "lpr_mean_max": self.lpr_mean_max,
            "lpr_ratio": self.lpr_ratio,
            "risk_voldoet": self.risk_voldoet,
            "decision_table_version": self.decision_table_version,
            "catalogue_version": self.catalogue_version,
        }


def normbesluit(
    result=None,
    *,
    risk: RiskVerdict | None = None,
    building_id: str = "",
    basis: str | None = None,
    typology: str | None = None,
    floor_area_m2: float | None = None,
    decision_tables: DecisionTables | None = None,
    catalogue: Catalogue | None = None,
    edition: str | None = None,
    table_version: str | None = None,
    provisional: bool | None = None,
) -> Normbesluit:
    """Turn an assessment result (and optionally a risk verdict) into a :class:`Normbesluit`.

    Parameters
    ----------
    result
        An assessment result of :mod:`npr9998.methods` (N2, CSM, lateral force); its
        ``unity_check``, ``governing``, ``edition``, ``table_version`` and ``provisional``
        are used. Required for basis ``"unity_check"``.
    risk
        A :class:`npr9998.assess.RiskVerdict`; required for basis ``"lpr_ratio"``.
    building_id
        Identifier recorded in the result.
    basis
        ``"unity_check"`` or ``"lpr_ratio"``; default the decision table's ``basis``.
    typology
        Catalogue typology key (typology approach and budget overrides), if any.
    floor_area_m2
        Gross floor area for budgets per m². [m²]
    decision_tables, catalogue
        Defaults: the package's ILLUSTRATIVE files.
    edition, table_version, provisional
        NPR table provenance when no ``result`` is given.

    Returns
    -------
    Normbesluit
    """
    dt = load_decision_tables() if decision_tables is None else decision_tables
    cat = load_catalogue() if catalogue is None else catalogue
    basis = basis or dt.basis
    uc = None if result is None else float(result.unity_check)
    lpr_ratio = None
    lpr_max = None
    risk_ok = None
    if risk is not None:
        lpr_max = float(risk.lpr_mean_max)
        lpr_ratio = lpr_max / dt.norm_lpr_per_yr
        risk_ok = bool(risk.voldoet)
    if basis == "unity_check":
        if uc is None:
            raise NPRInputError("basis 'unity_check' needs an assessment result.", column="basis", fix="pass result=..., or use basis='lpr_ratio' with a risk verdict.")
        measure = uc
    elif basis == "lpr_ratio":
        if lpr_ratio is None:
            raise NPRInputError("basis 'lpr_ratio' needs a risk verdict.", column="basis", fix="pass risk=risk_verdict(...) (CLI: --hra-config), or use basis='unity_check'.")
        measure = lpr_ratio
    else:
        raise NPRInputError(f"unknown decision basis {basis!r}.", column="basis", fix="use 'unity_check' or 'lpr_ratio'.")
    if floor_area_m2 is not None and not (math.isfinite(floor_area_m2) and floor_area_m2 > 0):
        raise NPRInputError(f"floor area {floor_area_m2!r} must be > 0 m2.", column="floor_area_m2", fix="give the gross floor area in m2, or leave it out.")
    cat_entry = cat.get(typology)
    cat_key = ""
    if cat_entry is not None:
        cat_key = next(k for k, v in cat.typologies.items() if v is cat_entry)
    category = dt.category_for(measure, basis)
    if category is None:
        verdict, code, label, desc = VOLDOET, "", "", ""
        low = high = 0.0
        budget_basis = "n/a (voldoet)"
        term = None
        approach = False
        measures: tuple[str, ...] = ()
    else:
        verdict, code, label, desc = VOLDOET_NIET, category.code, category.label, category.description
        rate = None
        if cat_entry is not None and code in cat_entry.budget_eur_per_m2:
            rate, src = cat_entry.budget_eur_per_m2[code], f"catalogue {cat_key}"
        elif category.budget_eur_per_m2 is not None:
            rate, src = category.budget_eur_per_m2, "decision table"
        if rate is not None and floor_area_m2 is not None:
            low, high = rate[0] * floor_area_m2, rate[1] * floor_area_m2
            budget_basis = f"{rate[0]:g}-{rate[1]:g} EUR/m2 ({src}) x {floor_area_m2:g} m2"
        else:
            low, high = category.budget_eur
            budget_basis = "per building (decision table; floor area unknown)" if rate is not None else "per building (decision table)"
        term = category.term_years
        approach = cat_entry is not None
        measures = tuple(cat_entry.measures.get(code, ())) if cat_entry is not None else ()
    return Normbesluit(
        building_id=str(building_id),
        verdict=verdict,
        basis=basis,
        deficit_measure=float(measure),
        unity_check=uc,
        capacity_demand_ratio=None if uc is None else (math.inf if uc == 0 else 1.0 / uc),
        lpr_ratio=lpr_ratio,
        lpr_mean_max=lpr_max,
        risk_voldoet=risk_ok,
        category=code,
        category_label=label,
        measures_description=desc,
        budget_low_eur=float(low),
        budget_high_eur=float(high),
        budget_basis=budget_basis,
        term_years=term,
        typology=cat_key or (typology or ""),
        typology_approach=approach,
        standard_measures=measures,
        method="" if result is None else str(result.method),
        governing="" if result is None else result.governing,
        demand=None if result is None else float(result.demand),
        capacity=None if result is None else float(result.capacity),
        edition=(result.edition if result is not None else (edition or "")),
        table_version=(result.table_version if result is not None else (table_version or "")),
        provisional=bool(result.provisional if result is not None else bool(provisional)),
        decision_table_version=dt.table_version,
        decision_illustrative=dt.illustrative,
        catalogue_version=cat.catalogue_version,
        catalogue_illustrative=cat.illustrative,
    )
