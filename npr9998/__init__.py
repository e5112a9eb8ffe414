"""NPR 9998 assessment of individual buildings (Groningen induced seismicity).

The HRA orders the work; whether a building is safe is decided per building by an engineering
assessment under NPR 9998. This package provides the pieces of that assessment:

* spectra in the NPR form (:func:`elastic_spectrum`, :func:`design_spectrum`, displacement
  spectrum, ADRS) from a webtool hazard record (:func:`load_hazard_record`);
* normative tables as versioned, user-supplied files (:func:`load_tables`; a PROVISIONAL
  stand-in set is shipped);
* assessment methods: lateral force (:func:`lateral_force_method`), N2 (:func:`n2_method`,
  EN 1998-1 Annex B), capacity spectrum (:func:`capacity_spectrum_method`);
* the building-specific lognormal fragility for the HRA engine
  (:func:`derive_building_fragility`, :class:`BuildingFragility`) and the risk verdict
  (:func:`risk_verdict`);
* the normbesluit (:func:`normbesluit`) with categories, budgets, terms and the typology
  approach (:func:`load_catalogue`);
* drivers (:func:`assess_building`, :func:`read_batch`) and the ``npr9998`` command line.

See ``docs/npr9998.md``.
"""

from npr9998.errors import NPRInputError, ProvisionalTableWarning
from npr9998.spectrum import (
    G,
    HazardRecord,
    SpectrumParameters,
    adrs,
    damping_correction,
    design_spectrum,
    elastic_displacement_spectrum,
    elastic_spectrum,
    load_hazard_record,
)
from npr9998.tables import DecisionTables, NormTables, load_decision_tables, load_tables
from npr9998.capacity import BilinearCurve, PushoverCurve, StructureModel, bilinear_idealisation, load_pushover_csv, sdof_transformation
from npr9998.methods import (
    Check,
    CSMResult,
    LateralForceResult,
    N2Result,
    atc40_effective_damping,
    capacity_spectrum_method,
    fema440_effective_parameters,
    fundamental_period_estimate,
    lateral_force_method,
    n2_method,
    n2_target_displacement,
)
from npr9998.catalogue import Catalogue, Typology, load_catalogue
from npr9998.fragility_link import BuildingFragility, FragilityDerivation, derive_building_fragility, intensity_measure
from npr9998.decision import Normbesluit, normbesluit
from npr9998.assess import BuildingAssessment, BuildingSpec, RiskVerdict, assess_building, load_building, read_batch, risk_verdict
from npr9998 import assess  # noqa: F401  (npr9998.assess.risk_verdict as named in issue #4)

__all__ = [
    "NPRInputError",
    "ProvisionalTableWarning",
    "G",
    "HazardRecord",
    "SpectrumParameters",
    "adrs",
    "damping_correction",
    "design_spectrum",
    "elastic_displacement_spectrum",
    "elastic_spectrum",
    "load_hazard_record",
    "DecisionTables",
    "NormTables",
    "load_decision_tables",
    "load_tables",
    "BilinearCurve",
    "PushoverCurve",
    "StructureModel",
    "bilinear_idealisation",
    "load_pushover_csv",
    "sdof_transformation",
    "Check",
    "CSMResult",
    "LateralForceResult",
    "N2Result",
    "atc40_effective_damping",
    "capacity_spectrum_method",
    "fema440_effective_parameters",
    "fundamental_period_estimate",
    "lateral_force_method",
    "n2_method",
    "n2_target_displacement",
    "Catalogue",
    "Typology",
    "load_catalogue",
    "BuildingFragility",
    "FragilityDerivation",
    "derive_building_fragility",
    "intensity_measure",
    "Normbesluit",
    "normbesluit",
    "BuildingAssessment",
    "BuildingSpec",
    "RiskVerdict",
    "assess_building",
    "load_building",
    "read_batch",
    "risk_verdict",
]
