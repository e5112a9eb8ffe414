"""Normative tables (NPR 9998) and decision tables, read from versioned, user-supplied files.

The NPR 9998 tables (consequence class -> return period and factor, behaviour factor q and
near-collapse drift limit per structural system, the design-spectrum lower bound) are part of a
paid standard. They are therefore **not** shipped: the user supplies them as a TOML or CSV file
in the schema below. The package carries a PROVISIONAL stand-in set,
``npr9998/data/provisional_tables.toml`` (``provisional = true``), so that the software runs;
every result records ``edition``, ``table_version``, ``provisional`` and the SHA-256 of the file
used, and a :class:`~npr9998.errors.ProvisionalTableWarning` is raised whenever the stand-ins
are loaded.

TOML schema (``npr9998-tables/1``)::

    schema = "npr9998-tables/1"
    edition = "NPR 9998:2020"          # free text, recorded in every result
    table_version = "my-office-2024-03" # free text, recorded in every result
    provisional = false
    note = "..."                        # optional

    [design_spectrum]
    beta = 0.2                          # lower bound S_d >= beta * a_g;S

    [consequence_classes.CC2]           # one table per class
    return_period_yr = 2475             # the hazard-record spectrum to use [yr]
    importance_factor = 1.0             # multiplies a_g;S [-]
    description = "..."

    [structural_systems.urm]            # one table per structural system
    q = 1.5                             # behaviour factor (lateral force method) [-]
    drift_limit_nc = 0.006              # near-collapse roof drift limit (roof displacement / height) [-]
    c_t = 0.05                          # EN 1998-1 eq. 4.6 coefficient for T1 = C_t H^(3/4)
    behaviour_type = "C"                # ATC-40 structural behaviour type (capacity spectrum method)
    description = "..."

CSV form (long format, one value per row): columns ``table, key, field, value`` with ``table``
one of ``meta`` (key empty; fields ``schema, edition, table_version, provisional, note``),
``design_spectrum`` (key empty; field ``beta``), ``consequence_class`` and
``structural_system`` (key = class or system name, field as in TOML).

Decision tables (``npr9998-decision/1``, :func:`load_decision_tables`) hold the bands that map a
deficit onto a category of measures, the budget bandwidth and the term per category; they are
programme policy, not NPR 9998 content, and the package's default is ILLUSTRATIVE.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hra.core.norm import LPR_NORM_PER_YEAR

from npr9998._io import load_validated, pydantic_to_input_error, read_csv_table, read_toml
from npr9998.errors import NPRInputError, ProvisionalTableWarning

__all__ = [
    "ConsequenceClass",
    "StructuralSystem",
    "NormTables",
    "load_tables",
    "DecisionCategory",
    "DecisionTables",
    "load_decision_tables",
    "pydantic_to_input_error",
]

PROVISIONAL_TABLES = "provisional_tables.toml"
DEFAULT_DECISION_TABLES = "decision_tables.toml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class ConsequenceClass(_Strict):
    """Row of the consequence-class table."""

    return_period_yr: float = Field(gt=0, allow_inf_nan=False, description="Return period of the hazard-record spectrum to use. [yr]")
    importance_factor: float = Field(1.0, gt=0, allow_inf_nan=False, description="Factor on a_g;S. [-]")
    description: str = ""


class StructuralSystem(_Strict):
    """Row of the structural-system table."""

    q: float = Field(ge=1.0, allow_inf_nan=False, description="Behaviour factor for the lateral force method. [-]")
    drift_limit_nc: float = Field(gt=0, lt=0.2, description="Near-collapse roof drift limit, roof displacement / roof height. [-]")
    c_t: float = Field(0.05, gt=0, allow_inf_nan=False, description="EN 1998-1 eq. 4.6 coefficient C_t for T1 = C_t H^(3/4) (H in m). [-]")
    behaviour_type: Literal["A", "B", "C"] = Field("B", description="ATC-40 structural behaviour type (Table 8-4).")
    description: str = ""


class DesignSpectrumSettings(_Strict):
    """Design-spectrum settings."""

    beta: float = Field(0.2, ge=0, le=1, description="Lower-bound factor: S_d >= beta * a_g;S. [-]")




class NormTables(_Strict):
    """The normative tables of one NPR 9998 edition (or the provisional stand-ins).

    Use :func:`load_tables` to read them; look rows up with :meth:`consequence_class` and
    :meth:`structural_system`, which raise clear errors for unknown names.
    """

    schema_id: str = Field("npr9998-tables/1", alias="schema")
    edition: str = Field(min_length=1)
    table_version: str = Field(min_length=1)
    provisional: bool
    note: str = ""
    design_spectrum: DesignSpectrumSettings = DesignSpectrumSettings()
    consequence_classes: dict[str, ConsequenceClass] = Field(min_length=1)
    structural_systems: dict[str, StructuralSystem] = Field(min_length=1)
    source: str = Field("", description="File the tables were read from (set by the loader).")
    sha256: str = Field("", description="SHA-256 of that file (set by the loader).")

    @field_validator("schema_id")
    @classmethod
    def _schema(cls, v: str) -> str:
        if v != "npr9998-tables/1":
            raise ValueError("this version of npr9998 reads schema 'npr9998-tables/1'")
        return v

    def consequence_class(self, name: str) -> ConsequenceClass:
        """Row for consequence class ``name`` (e.g. ``"CC2"``); case-insensitive."""
        for k, v in self.consequence_classes.items():
            if k.upper() == str(name).strip().upper():
                return v
        raise NPRInputError(
            f"unknown consequence class {name!r}; the tables ({self.edition}, version {self.table_version}) know {sorted(self.consequence_classes)}.",
            file=self.source or None,
            column="consequence_class",
            fix=f"use one of {sorted(self.consequence_classes)}, or add the class to the table file.",
        )

    def structural_system(self, name: str) -> StructuralSystem:
        """Row for structural system ``name`` (e.g. ``"urm"``); case-insensitive."""
        for k, v in self.structural_systems.items():
            if k.lower() == str(name).strip().lower():
                return v
        raise NPRInputError(
            f"unknown structural system {name!r}; the tables ({self.edition}, version {self.table_version}) know {sorted(self.structural_systems)}.",
            file=self.source or None,
            column="structural_system",
            fix=f"use one of {sorted(self.structural_systems)}, or add the system to the table file.",
        )

    def provenance(self) -> dict:
        """``edition``, ``table_version``, ``provisional``, ``tables_source``, ``tables_sha256``."""
        return {
            "edition": self.edition,
            "table_version": self.table_version,
            "provisional": self.provisional,
            "tables_source": self.source,
            "tables_sha256": self.sha256,
        }


def _csv_tables_to_dict(path: Path) -> dict:
    table = read_csv_table(path, required=("table", "key", "field", "value"), what="table file", allow_extra=False)
    out: dict = {"design_spectrum": {}, "consequence_classes": {}, "structural_systems": {}}
    section = {"consequence_class": "consequence_classes", "structural_system": "structural_systems"}
    for line, r in table.rows:
        kind, key, fld, value = (table.text(r, c) for c in ("table", "key", "field", "value"))
        if table.decimal_comma and value.replace(",", "", 1).replace("-", "", 1).isdigit():
            value = value.replace(",", ".")
        if kind == "meta":
            target = out
        elif kind == "design_spectrum":
            target = out["design_spectrum"]
        elif kind in section:
            if not key:
                raise NPRInputError(f"'{kind}' rows need a key (the class or system name).", file=path, row=line, column="key", fix="fill in e.g. CC2 or urm.")
            target = out[section[kind]].setdefault(key, {})
        else:
            raise NPRInputError(f"unknown table {kind!r}.", file=path, row=line, column="table", fix="use meta, design_spectrum, consequence_class or structural_system.")
        if not fld:
            raise NPRInputError("field is empty.", file=path, row=line, column="field", fix="name the field, e.g. q or return_period_yr.")
        if fld in target:
            raise NPRInputError(f"field {fld!r} given twice for {kind} {key!r}.", file=path, row=line, column="field", fix="keep one row per field.")
        target[fld] = value
    return out


@lru_cache(maxsize=8)
def _load_tables_cached(path_str: str | None) -> NormTables:
    def read(path: Path) -> dict:
        return _csv_tables_to_dict(path) if path.suffix.lower() == ".csv" else read_toml(path)

    return load_validated(path_str, NormTables, default=PROVISIONAL_TABLES, what="NPR 9998 table file",
                          schema_hint="'npr9998-tables/1'", read=read,
                          not_found_fix="check the path to the NPR 9998 table file (TOML or CSV).")


def load_tables(path: str | Path | None = None) -> NormTables:
    """Load NPR 9998 normative tables from ``path`` (TOML or CSV), or the provisional stand-ins.

    Parameters
    ----------
    path
        Table file in the ``npr9998-tables/1`` schema (see the module docstring), or ``None``
        for the package's PROVISIONAL set.

    Returns
    -------
    NormTables
        Validated tables, with ``source`` and ``sha256`` of the file.

    Warns
    -----
    ProvisionalTableWarning
        When the tables loaded say ``provisional = true``.
    """
    tables = _load_tables_cached(None if path is None else str(Path(path).resolve()))
    if tables.provisional:
        warnings.warn(
            f"NPR 9998 tables {tables.source!r} are PROVISIONAL stand-ins (edition {tables.edition!r}, version {tables.table_version!r}): "
            "results are not a normbesluit. Pass the tables of your NPR 9998 edition (--tables FILE).",
            ProvisionalTableWarning,
            stacklevel=2,
        )
    return tables


# --------------------------------------------------------------------------------------------
# decision tables


class DecisionCategory(_Strict):
    """One category of measures, with its deficit band, budget bandwidth and term."""

    code: str = Field(min_length=1, description="Short code, e.g. 'A'.")
    label: str = Field(min_length=1)
    description: str = ""
    max_unity_check: float = Field(gt=1.0, description="Upper bound (inclusive) of demand/capacity for this category; inf for the last. [-]")
    max_lpr_ratio: float = Field(gt=1.0, description="Upper bound (inclusive) of LPR/1e-5 for this category; inf for the last. [-]")
    budget_eur_per_m2: tuple[float, float] | None = Field(None, description="Budget bandwidth per m2 gross floor area (low, high). [EUR/m2]")
    budget_eur: tuple[float, float] = Field(description="Budget bandwidth per building when the floor area is unknown (low, high). [EUR]")
    term_years: float = Field(gt=0, allow_inf_nan=False, description="Term within which the measures are to be taken. [yr]")

    @field_validator("budget_eur_per_m2", "budget_eur")
    @classmethod
    def _budget(cls, v):
        if v is not None and not (0 <= v[0] <= v[1] and math.isfinite(v[1])):
            raise ValueError("budget bandwidth must be (low, high) with 0 <= low <= high")
        return v


class DecisionTables(_Strict):
    """Bands and budgets that turn an assessment outcome into a normbesluit (see decision.py)."""

    schema_id: str = Field("npr9998-decision/1", alias="schema")
    table_version: str = Field(min_length=1)
    illustrative: bool
    basis: Literal["unity_check", "lpr_ratio"] = "unity_check"
    norm_lpr_per_yr: float = Field(LPR_NORM_PER_YEAR, gt=0, description="LPR norm. [1/yr]")
    note: str = ""
    categories: tuple[DecisionCategory, ...] = Field(min_length=1)
    source: str = ""
    sha256: str = ""

    @model_validator(mode="after")
    def _ordered(self):
        for name in ("max_unity_check", "max_lpr_ratio"):
            bounds = [getattr(c, name) for c in self.categories]
            if any(b2 <= b1 for b1, b2 in zip(bounds, bounds[1:])):
                raise ValueError(f"categories must be listed with increasing {name}; got {bounds}")
            if not math.isinf(bounds[-1]):
                raise ValueError(f"the last category must have {name} = inf so that every deficit has a category; got {bounds[-1]}")
        codes = [c.code for c in self.categories]
        if len(set(codes)) != len(codes):
            raise ValueError(f"category codes must be unique; got {codes}")
        return self

    def category_for(self, measure: float, basis: str | None = None) -> DecisionCategory | None:
        """Category for a deficit ``measure`` (> 1), or ``None`` when ``measure <= 1`` (voldoet)."""
        basis = basis or self.basis
        key = {"unity_check": "max_unity_check", "lpr_ratio": "max_lpr_ratio"}.get(basis)
        if key is None:
            raise NPRInputError(f"unknown decision basis {basis!r}.", column="basis", fix="use 'unity_check' or 'lpr_ratio'.")
        if not math.isfinite(measure):
            raise NPRInputError(f"deficit measure {measure!r} is not finite.", fix="check the assessment inputs.")
        if measure <= 1.0:
            return None
        for c in self.categories:
            if measure <= getattr(c, key):
                return c
        return self.categories[-1]  # unreachable: last bound is inf


@lru_cache(maxsize=8)
def _load_decision_cached(path_str: str | None) -> DecisionTables:
    return load_validated(path_str, DecisionTables, default=DEFAULT_DECISION_TABLES, what="decision table file",
                          schema_hint="'npr9998-decision/1'")


def load_decision_tables(path: str | Path | None = None) -> DecisionTables:
    """Load decision tables (bands, budgets, terms) from a TOML file or the ILLUSTRATIVE default.

    Parameters
    ----------
    path
        TOML file in the ``npr9998-decision/1`` schema (docs/npr9998.md), or ``None``.

    Returns
    -------
    DecisionTables
    """
    return _load_decision_cached(None if path is None else str(Path(path).resolve()))
