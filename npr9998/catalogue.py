r"""Typology catalogue: reference capacity curves, fatality defaults and standard measures.

A catalogue entry describes a building typology by a **normalised** capacity curve, base-shear
coefficient :math:`V/(M g)` [-] against roof drift :math:`d/H` [-], together with default
geometry (storeys, storey height), seismic mass per m² of gross floor area, the probability of
death per collapse state (inside / outside) and the standard measures per category of measures
("typologie-aanpak"). A building of the typology without its own pushover analysis gets the
curve scaled to its own mass :math:`M` and height :math:`H`:

.. math:: V = c\,M\,g, \qquad d = \delta\,H

with equal storey masses :math:`M/n` and a linear first-mode shape :math:`\Phi_i = z_i/H`.
Note that for such a curve the N2 target displacement does not depend on :math:`M` (T* and the
yield acceleration are mass-independent), so an assumed floor area changes budgets only.

The catalogue shipped in ``npr9998/data/catalogue.toml`` is ILLUSTRATIVE: the curves are
plausible shapes written by this project for Groningen-like typologies, not results of
analyses, and must not be used for a real normbesluit. Schema ``npr9998-catalogue/1`` is
documented in ``docs/npr9998.md``.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from npr9998._io import load_validated
from npr9998.capacity import PushoverCurve, StructureModel
from npr9998.errors import NPRInputError
from npr9998.spectrum import G

__all__ = ["Typology", "Catalogue", "load_catalogue"]

DEFAULT_CATALOGUE = "catalogue.toml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _p3(v):
    if len(v) != 3 or any(not (0.0 <= x <= 1.0) for x in v):
        raise ValueError("give three probabilities in [0, 1] (CS1, CS2, CS3)")
    return tuple(float(x) for x in v)


class NormalisedCurve(_Strict):
    """Capacity curve as base-shear coefficient V/(M g) [-] against roof drift d/H [-]."""

    roof_drift: tuple[float, ...] = Field(min_length=2)
    base_shear_coefficient: tuple[float, ...] = Field(min_length=2)

    @model_validator(mode="after")
    def _check(self):
        d, c = np.asarray(self.roof_drift), np.asarray(self.base_shear_coefficient)
        if d.size != c.size:
            raise ValueError("roof_drift and base_shear_coefficient need the same length")
        if d[0] != 0 or c[0] != 0 or np.any(np.diff(d) <= 0) or np.any(c < 0):
            raise ValueError("curve must start at (0, 0), have increasing drift and coefficients >= 0")
        return self


class Typology(_Strict):
    """One catalogue typology (see the module docstring)."""

    label: str = Field(min_length=1)
    description: str = ""
    structural_system: str = Field(min_length=1, description="Key in the NPR 9998 tables' structural_systems.")
    n_storeys: int = Field(ge=1)
    storey_height_m: float = Field(gt=0, allow_inf_nan=False, description="[m]")
    mass_t_per_m2: float = Field(gt=0, allow_inf_nan=False, description="Seismic mass per m2 gross floor area. [t/m2]")
    default_floor_area_m2: float = Field(gt=0, allow_inf_nan=False, description="Gross floor area assumed when a building gives none. [m2]")
    capacity_curve: NormalisedCurve
    p_death_inside: tuple[float, float, float]
    p_death_outside: tuple[float, float, float]
    measures: dict[str, tuple[str, ...]] = Field(default_factory=dict, description="Standard measures per category code.")
    budget_eur_per_m2: dict[str, tuple[float, float]] = Field(default_factory=dict, description="Optional budget override per category code. [EUR/m2]")

    @field_validator("p_death_inside", "p_death_outside")
    @classmethod
    def _p_death(cls, v):
        return _p3(v)

    def structure(self, *, n_storeys: int | None = None, floor_area_m2: float | None = None, storey_height_m: float | None = None, source: str = "") -> StructureModel:
        """Regular structure for a building of this typology (equal storeys, linear mode)."""
        n = self.n_storeys if n_storeys is None else int(n_storeys)
        area = self.default_floor_area_m2 if floor_area_m2 is None else float(floor_area_m2)
        h = self.storey_height_m if storey_height_m is None else float(storey_height_m)
        if not (area > 0 and math.isfinite(area)):
            raise NPRInputError(f"floor area {area!r} must be > 0 m2.", file=source or None, column="floor_area_m2", fix="give the gross floor area in m2.")
        return StructureModel.regular(n, area * self.mass_t_per_m2 / n, h, source=source)

    def pushover(self, structure: StructureModel, *, source: str = "") -> PushoverCurve:
        """Capacity curve scaled to ``structure``: V = c M g [kN], d = drift H [m]."""
        h = structure.roof_height_m
        if h is None:
            raise NPRInputError("the structure has no level heights.", fix="build it with Typology.structure().")
        d = np.asarray(self.capacity_curve.roof_drift) * h
        v = np.asarray(self.capacity_curve.base_shear_coefficient) * structure.total_mass_t * G
        return PushoverCurve.from_points(d, v, source=source or f"catalogue typology ({self.label})")


class Catalogue(_Strict):
    """A typology catalogue (schema ``npr9998-catalogue/1``)."""

    schema_id: str = Field("npr9998-catalogue/1", alias="schema")
    catalogue_version: str = Field(min_length=1)
    illustrative: bool
    note: str = ""
    default_p_death_inside: tuple[float, float, float]
    default_p_death_outside: tuple[float, float, float]
    typologies: dict[str, Typology] = Field(min_length=1)
    source: str = ""
    sha256: str = ""

    @field_validator("default_p_death_inside", "default_p_death_outside")
    @classmethod
    def _p_death(cls, v):
        return _p3(v)

    def get(self, name: str | None) -> Typology | None:
        """The typology called ``name`` (case-insensitive), or ``None``."""
        if not name:
            return None
        for k, v in self.typologies.items():
            if k.lower() == str(name).strip().lower():
                return v
        return None

    def typology(self, name: str) -> Typology:
        """The typology called ``name``; an :class:`NPRInputError` naming the choices if unknown."""
        t = self.get(name)
        if t is None:
            raise NPRInputError(
                f"typology {name!r} is not in the catalogue ({self.catalogue_version}); it has {sorted(self.typologies)}.",
                file=self.source or None,
                column="typology",
                fix="use a catalogue typology, or give a pushover curve with masses and mode shape for this building.",
            )
        return t


@lru_cache(maxsize=8)
def _load(path_str: str | None) -> Catalogue:
    return load_validated(path_str, Catalogue, default=DEFAULT_CATALOGUE, what="typology catalogue",
                          schema_hint="'npr9998-catalogue/1'")


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """Load a typology catalogue (TOML, schema ``npr9998-catalogue/1``) or the ILLUSTRATIVE default.

    Parameters
    ----------
    path
        Catalogue file, or ``None`` for ``npr9998/data/catalogue.toml``.

    Returns
    -------
    Catalogue
    """
    return _load(None if path is None else str(Path(path).resolve()))
