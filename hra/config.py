"""Run configuration: pydantic models of the TOML schema (docs/architecture.md §3).

The schema is the documentation: every field carries a description with its unit, unknown keys
are rejected, and :func:`load_config` turns validation errors into messages that name the file,
the key and the fix. Relative paths are resolved against the directory of the config file.

``hra config schema`` prints the JSON schema of :class:`Config`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from hra.core.validation import format_validation_error as _format_validation_error


class ConfigError(ValueError):
    """A configuration problem; the message names the file, the key and the fix.

    Raised by :func:`load_config` (and by :func:`config_from_dict`) for a missing or unreadable
    file, invalid TOML, an unknown key, a value out of range or a missing section. It is a
    ``ValueError``; the ``hra`` command prints its message and exits with code 2.

    Examples
    --------
    >>> import hra
    >>> try:
    ...     hra.load_config("no-such-run.toml")
    ... except hra.ConfigError as exc:
    ...     print(str(exc).split(";")[0])
    configuration file no-such-run.toml does not exist
    """


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class WeightedValue(_Section):
    value: float = Field(description="Branch value (unit of the parent key).")
    weight: float = Field(ge=0.0, le=1.0, description="Branch weight [-].")


def _check_weight_table(table: dict[str, float], key: str) -> None:
    """A {branch label: weight} table: at least one branch, weights in [0, 1] summing to 1."""
    if not table:
        raise ValueError(f"{key}: give at least one branch = weight")
    bad = {k: w for k, w in table.items() if not 0.0 <= w <= 1.0}
    if bad:
        raise ValueError(f"{key}: weights must lie in [0, 1], got {bad}")
    total = sum(table.values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"{key}: branch weights sum to {total:.6g}, they must sum to 1")


def _check_weights(items: list[WeightedValue], key: str) -> list[WeightedValue]:
    if not items:
        raise ValueError(f"{key}: give at least one branch")
    total = sum(i.weight for i in items)
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"{key}: branch weights sum to {total:.6g}, they must sum to 1")
    return items


class RunSection(_Section):
    years: list[int] = Field(min_length=1, description="Years to compute (each needs rates in the source file).")
    seed: int = Field(42, ge=0, description="Seed of every random stream (logic-tree draws, typology draws).")
    realisations: Union[Literal["all"], Annotated[int, Field(ge=1)]] = Field(
        "all",
        description='"all" enumerates the logic tree; an integer draws that many Monte-Carlo realisations.',
    )
    quantiles: list[float] = Field([0.5, 0.9], description="Quantile probabilities reported per building and year.")
    keep_realisations: bool = Field(False, description="Also store LPR per realisation (building x year x realisation).")
    typology_uncertainty: Literal["epistemic", "mixture"] = Field(
        "epistemic",
        description="epistemic: each realisation picks one typology per building; mixture: LPR = sum_t p_t LPR_t.",
    )
    table_precision: Literal["float64", "float32"] = Field(
        "float64",
        description="Precision of the per-combination tables the building pass reads (expected death probability "
        "per event and distance node of each selected model combination, integrated over magnitude): float32 halves "
        "their memory (the warm field benchmark's peak 4.6 -> 3.6 GB, its CPU within 1 %); the realisations' "
        "values (P50/P90) move by ~1e-7 relative (far below the stored tables' 16-bit rounding, 1.5e-5) and the mean LPR not at all (it "
        'uses the float64 tree-mean tables). Default float64; float32 under model = "psdra-2024" with a forecast.',
    )

    @field_validator("quantiles")
    @classmethod
    def _q(cls, v: list[float]) -> list[float]:
        for q in v:
            if not 0.0 < q < 1.0:
                raise ValueError(f"quantile {q} must lie strictly between 0 and 1")
        return sorted(set(v))

    @field_validator("years")
    @classmethod
    def _years(cls, v: list[int]) -> list[int]:
        if len(set(v)) != len(v):
            raise ValueError("years must not repeat")
        return sorted(v)


class MagnitudeSection(_Section):
    b_value: Union[float, list[WeightedValue]] = Field(
        1.0, description="Gutenberg-Richter b-value, or a list of {value, weight} branches [-]."
    )
    m_max: list[WeightedValue] = Field(
        description="Maximum-magnitude branches {value, weight}; the GR law is truncated there [magnitude]."
    )
    bin_width: float = Field(0.1, gt=0.0, le=0.5, description="Magnitude bin width of the integration [magnitude].")

    @field_validator("m_max")
    @classmethod
    def _mmax(cls, v: list[WeightedValue]) -> list[WeightedValue]:
        return _check_weights(v, "m_max")

    @field_validator("b_value")
    @classmethod
    def _b(cls, v: Any) -> Any:
        if isinstance(v, list):
            _check_weights(v, "b_value")
            vals = [i.value for i in v]
        else:
            vals = [v]
        if any(b <= 0 for b in vals):
            raise ValueError("b-value must be > 0")
        return v


class SourceSection(_Section):
    rates: Path | None = Field(
        None,
        description="CSV/netCDF/zarr rate grid: columns x, y, year, rate [, branch, weight]; "
        "rate = events per year with M >= m_min in the cell [yr^-1]; x, y = cell centre [m, EPSG:28992]. "
        "Needs [source.magnitude]; excludes forecast.",
    )
    forecast: Path | None = Field(
        None,
        description="Seismic-source-model forecast (HDF5/netCDF, variable 'forecast' of group 'forecast'): "
        "expected number of events with M >= magnitude per cell and time step, dims (branch_rate, branch_mm, "
        "branch_mmax, magnitude, time, x, y), branch dims optional; each cell's own magnitude distribution is "
        "used (no [source.magnitude]; m_min and cell_size_m come from the file). Excludes rates.",
    )
    forecast_weights: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="Weights of the forecast's branch labels per branch dimension, e.g. branch_mm = "
        "{ linear_stress = 0.3, split_thickness = 0.7 }; numeric labels are matched by value; each dimension's "
        "weights sum to 1; a dimension with a single label needs none.",
    )
    cell_size_m: float = Field(1000.0, gt=0, description="Source cell size of a rate grid [m] (a forecast's is its x/y spacing).")
    m_min: float = Field(1.5, description="Minimum magnitude of a rate grid's rates [magnitude] (a forecast's is its lowest magnitude).")
    depth_km: float = Field(3.0, gt=0, description="Hypocentral depth [km].")
    max_distance_km: float = Field(70.0, gt=0, description="Source-site pairs beyond this hypocentral distance are ignored [km].")
    distance_nodes: int = Field(48, ge=8, le=400, description="Number of log-spaced hypocentral-distance nodes.")
    distance_interpolation: Literal["linear", "cubic"] = Field(
        "cubic",
        description="How a source cell's rate is shared over the distance nodes around its hypocentral distance "
        "(the tables interpolated in ln R): 'cubic' (4-point Lagrange; error ~h^4: +0.005 % on the mean LPR of the "
        "field benchmark with 48 nodes) or 'linear' (two nodes; error ~h^2: +0.1 % with 96 nodes, +0.5 % with 48).",
    )
    magnitude_table_stride: Literal[1, 2] = Field(
        1,
        description="1: the death tables computed at every magnitude node; 2: at every other node (and at the "
        "model's kinks in M), the others interpolated in ln P: a third less CPU in the table stage of the field "
        "benchmark, whose mean LPR moves by ~3e-5 and P50/P90 by ~5e-4 at most (hra.integration.magnitudes). "
        'Default 1; 2 under model = "psdra-2024" with a forecast (the annual run).',
    )
    magnitude_subdivisions: Literal[1, 2] = Field(
        1,
        description="Forecast only: 2 splits each bin of the file's magnitude grid at its midpoint by the bin's "
        "in-bin exponential law (a truncated law's top bin by the law below it) and integrates on that grid: a "
        "PSDRA-2024 forecast (0.1 grid, whose LPR is ~2.5 % high on its own grid) then gives the LPR of the same law "
        "written at 0.05; with magnitude_table_stride = 2 the tables are computed at the file's nodes (and the "
        "model's kinks) and interpolated to the midpoints (hra.inputs.forecast.subdivide_bins).",
    )
    magnitude_basis_rtol: float = Field(
        1e-7,
        ge=1e-14,
        le=1e-4,
        description="Forecast only: the per-branch magnitude basis keeps the singular vectors of the cells' scaled "
        "node masses above this fraction of the largest (hra.inputs.forecast.magnitude_basis). 1e-7 stays above a "
        "float32 file's rounding (at 1e-10 such a file needs a basis of ~100 per branch instead of ~7) and moves the "
        "field benchmark's LPR by <= 2e-8 (mean) and 5e-7 (P50/P90) relative against 1e-10, with K = 7 instead of 9 "
        "(the tables and the building pass scale with K).",
    )
    subcell_radius_km: float = Field(
        2.5, ge=0, description="Cells whose centre is within this epicentral distance of a building are split into sub-cells [km]."
    )
    subcell_divisions: int = Field(5, ge=1, le=21, description="Sub-cells per side for nearby cells.")
    magnitude: MagnitudeSection | None = Field(
        None, description="Gutenberg-Richter magnitude model of a rate grid (required with rates, not allowed with forecast)."
    )

    @field_validator("forecast_weights")
    @classmethod
    def _fw(cls, v: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for dim, labels in v.items():
            _check_weight_table(labels, f"forecast_weights.{dim}")
        return v

    @model_validator(mode="after")
    def _mmax_above_mmin(self) -> "SourceSection":
        if (self.rates is None) == (self.forecast is None):
            raise ValueError("[source] rates and [source] forecast exclude each other and one of them is required; "
                             "fix: give either rates (a rate grid with [source.magnitude]) or forecast (an SSM forecast file)")
        if self.forecast is not None:
            if self.magnitude is not None:
                raise ValueError("[source.magnitude] is not used with [source] forecast (the forecast gives each "
                                 "cell's magnitude distribution); fix: remove [source.magnitude]")
            return self
        if self.forecast_weights:
            raise ValueError("[source.forecast_weights] only applies to [source] forecast; fix: remove it")
        if self.magnitude_subdivisions != 1:
            raise ValueError("[source] magnitude_subdivisions only applies to [source] forecast; fix: remove it "
                             "(a rate grid's magnitude step is [source.magnitude] bin_width)")
        if self.magnitude_basis_rtol != SourceSection.model_fields["magnitude_basis_rtol"].default:
            raise ValueError("[source] magnitude_basis_rtol only applies to [source] forecast (a rate grid's magnitude "
                             "law is exact: no basis); fix: remove it")
        if self.magnitude is None:
            raise ValueError("[source] rates needs [source.magnitude] (b_value, m_max); fix: add that section")
        for b in self.magnitude.m_max:
            if b.value <= self.m_min:
                raise ValueError(f"m_max branch {b.value} must exceed m_min = {self.m_min}")
        return self


class GroundMotionParametric(_Section):
    model: Literal["parametric"]
    imt: str = Field("PGA", description="Name of the intensity measure the fragility curves use.")
    c0: float = Field(description="ln IM[g] = c0 + c1 M + c2 ln R + c3 R: constant.")
    c1: float = Field(description="Magnitude slope [1/magnitude].")
    c2: float = Field(description="Coefficient of ln R_hyp [-].")
    c3: float = Field(0.0, description="Anelastic coefficient [1/km].")
    tau: float = Field(ge=0, description="Between-event standard deviation [ln units].")
    phi: float = Field(ge=0, description="Within-event standard deviation [ln units].")
    truncation_sigma: float = Field(0.0, ge=0, description="Truncate residuals at this many sigma (0 = no truncation).")
    quadrature_points: int = Field(24, ge=2, le=400, description="Gauss-Legendre points when truncated.")


class GroundMotionDemo(_Section):
    model: Literal["demo"]
    quadrature_points: int = Field(20, ge=2, le=200, description="Gauss-Hermite points over the reference residual.")
    zones: Path | None = Field(None, description="Zone polygons (GeoJSON/GPKG); default: the embedded demo zones.")
    zone_field: str = Field("zone", description="Integer zone-id field of the polygons.")


class RuptureStrike(_Section):
    """A field-wide rupture strike with a Gaussian uncertainty (azimuths clockwise from north)."""

    mean_deg: float = Field(-30.0, ge=-180.0, le=180.0,
                            description="Mean strike [degree clockwise from north]; the chain's N30W is -30.")
    sd_deg: float = Field(30.0, ge=0.0, description="Standard deviation of the strike [degree]; 0 = a fixed strike.")


class GroundMotionGroningen(_Section):
    model: Literal["groningen-v7", "groningen-v6"]
    model_dir: Path | None = Field(
        None, description="Folder holding V6/, V7/, TNO2020/ of the public model tables (default: $HRA_MODEL_DIR)."
    )
    zones: Path | None = Field(
        None, description="Zonation (Geological_zones_V6.zip); default: found next to the model tables."
    )
    zone_field: str = Field("ID_V6", description="Zone-id field of the zonation.")
    s2s_mode: Literal["epistemic", "aleatory"] | None = Field(
        None, description="Site-to-site term: 3-point epistemic branch (V7 default) or aleatory (V6 default)."
    )
    rupture: Literal["finite", "point"] = Field("finite", description="R_rup from R_hyp by the finite line rupture, or a point source.")
    rupture_strike: Union[RuptureStrike, Literal["uniform"]] = Field(
        default_factory=RuptureStrike,
        description="Strike of the finite rupture: { mean_deg = -30, sd_deg = 30 } (the default, also of the "
        "Groningen presets and of a hand-written groningen-v7/v6 section: the chain's field-wide N30W strike "
        "with a Gaussian sd of 30 degrees; the tables then depend on the azimuth between source cell and "
        "building), or \"uniform\" (R_rup averaged uniformly over the azimuth, an unknown strike). "
        "Irrelevant with rupture = \"point\".",
    )
    median_weights: Literal["realisation", "mixture"] = Field(
        "realisation",
        description="Magnitude-dependent median weights: one uniform draw per realisation through the "
        "cumulative w(M) (self-consistent realisations), or a mixture per event.",
    )
    quadrature: Literal["standard", "fast"] = Field(
        "standard", description="standard: the quadrature verified to 1 % against Monte Carlo; fast: coarser, for tests and previews."
    )
    verify: bool = Field(True, description="Check the SHA-256 of the model tables against the registry.")


class GroundMotionDost2004(_Section):
    model: Literal["dost2004-bommer2013"]
    imt: Literal["PGA", "PGV"] = Field("PGA", description="PGA (g) or PGV (cm/s).")
    truncation_sigma: float = Field(0.0, ge=0, description="Truncate residuals at this many sigma (0 = no truncation).")
    quadrature_points: int = Field(24, ge=2, le=400, description="Gauss-Legendre points when truncated.")


GroundMotionSection = Annotated[
    Union[GroundMotionParametric, GroundMotionDemo, GroundMotionGroningen, GroundMotionDost2004], Field(discriminator="model")
]


class ExposureSection(_Section):
    buildings: Path = Field(description="CSV/Parquet of buildings (id, x, y, typology or system_i/s_probability_i, ...).")


class ConsequenceBranch(_Section):
    factor: float = Field(gt=0, description="Multiplier on the death probabilities [-].")
    weight: float = Field(ge=0, le=1, description="Branch weight [-].")


class FragilitySection(_Section):
    curves: Path | None = Field(
        None, description="CSV: typology, state (CS1..CS3), median_g, beta, p_death [, p_death_outside, branch, weight]."
    )
    model: Literal["fcm-v7", "fcm-v6", "fcm-tno2020"] | None = Field(
        None, description="A public Groningen FCM instead of curves (tables from [ground_motion] model_dir / $HRA_MODEL_DIR)."
    )
    model_dir: Path | None = Field(None, description="Model-table folder for the FCM (default: as the GMM, or $HRA_MODEL_DIR).")
    presence_inside: float | None = Field(
        None, ge=0, le=1,
        description="Fraction of time the person is inside (the rest: outside, next to the building) [-]; "
        "default 1 for curves without outside death probabilities, 0.99 for the Groningen FCMs (the chain's definition).",
    )
    consequence: list[ConsequenceBranch] = Field(
        default_factory=lambda: [ConsequenceBranch(factor=1.0, weight=1.0)],
        description="Consequence-model branches: factors on the death probabilities, with weights.",
    )

    @field_validator("consequence")
    @classmethod
    def _cons(cls, v: list[ConsequenceBranch]) -> list[ConsequenceBranch]:
        total = sum(c.weight for c in v)
        if not v or abs(total - 1) > 1e-6:
            raise ValueError(f"consequence branch weights sum to {total:.6g}, they must sum to 1")
        return v

    @model_validator(mode="after")
    def _one_source(self) -> "FragilitySection":
        if (self.curves is None) == (self.model is None):
            raise ValueError("give exactly one of curves (a CSV file) or model (fcm-v7, fcm-v6, fcm-tno2020)")
        return self


class OutputSection(_Section):
    path: Path | None = Field(None, description="Output store, .zarr or .nc (none: only returned).")
    csv: Path | None = Field(None, description="Per-building CSV summary (none: not written).")
    gpkg: Path | None = Field(
        None, description="GeoPackage of the result (none: not written): one point per building in EPSG:28992 with "
        "id, lpr_mean/P50/P90 per year (wide columns lpr_mean_2025, ...), risk category, profile and municipality.")
    overwrite: bool = Field(False, description="Replace existing outputs.")

    @field_validator("path")
    @classmethod
    def _suffix(cls, v: Path | None) -> Path | None:
        if v is not None and v.suffix not in (".zarr", ".nc"):
            raise ValueError(f"output path {v} must end in .zarr or .nc")
        return v

    @field_validator("gpkg")
    @classmethod
    def _gpkg_suffix(cls, v: Path | None) -> Path | None:
        if v is not None and v.suffix.lower() != ".gpkg":
            raise ValueError(f"gpkg {v} must end in .gpkg")
        return v


class ComputeSection(_Section):
    chunk_buildings: int = Field(2000, ge=1, description="Buildings per task.")
    executor: Literal["threads", "processes", "synchronous"] = Field(
        "threads",
        description='Where local tasks run: "threads" (in this process; the numba kernels release the GIL, so '
        'scripts without a __main__ guard, stdin, python -c and notebooks work), "processes" (a dask LocalCluster '
        'of `workers` worker processes) or "synchronous" (serially in this process).',
    )
    workers: int | None = Field(
        None, ge=1, description="Threads or worker processes of the local executor (default: the number of CPU cores).",
    )
    scheduler: str | None = Field(
        None,
        description='Address of a running dask.distributed scheduler, e.g. "tcp://host:8786": tasks run on its '
        "cluster and `executor` is not used (default: none, the local executor).",
    )
    progress: bool | None = Field(None, description="Progress bar (default: when on a terminal).")
    resume: bool = Field(
        True,
        description="Save each finished chunk of buildings beside the first output (.<name>.partial/) so that a "
        "killed run restarted with the same config, inputs and code resumes from them; removed after the outputs "
        "are written. false: always compute every chunk.",
    )
    table_memory_gb: float = Field(
        2.0, gt=0,
        description="Largest size of the tables of the selected model combinations held at once: a run whose "
        "tables need more (many zones with a large tree, e.g. the whole field) computes the zones in groups that "
        "fit (at least one zone per worker), each group's buildings right after its tables, then frees them; on "
        "threads the next group's tables are computed beside a group's buildings, so two groups of half the size "
        "are held at once (the results do not depend on it). [GB]",
    )
    no_workers_timeout_s: float = Field(
        60.0, gt=0,
        description="With a scheduler: fail with a clear message when it has had no workers for this long while "
        "tasks are pending. [s]",
    )
    table_store: Union[Literal[False], Path, None] = Field(
        None,
        description="Persistent store of the conditional death tables (a folder, reused and filled by every run; "
        "relative to the config file), false: no store. Default: $HRA_TABLE_STORE, else the user cache "
        "directory (platformdirs user_cache_dir('groningen-hra')/tables).",
    )
    table_store_kinds: list[Literal["physical", "forecast"]] = Field(
        ["physical", "forecast"],
        description='What the table store holds for this run (read where present, written where missing): '
        '"physical": the death tables per site, typology and GMM branch before the magnitude integration, which '
        'every source model and forecast reuses; "forecast": with [source] forecast, the tables of the '
        'selected model combinations integrated against the forecast\'s magnitude basis, which a rerun with the '
        'same basis, models and realisations reads instead of computing its table stage (~0.3x the physical '
        'tables\' size for the field). [] stores nothing, like table_store = false.',
    )

    @model_validator(mode="before")
    @classmethod
    def _former_scheduler_words(cls, data: Any) -> Any:
        """Read the former ``scheduler`` words: "auto" (the default executor), "synchronous" and
        "local" (now ``executor = "synchronous"`` / ``"processes"``)."""
        if isinstance(data, dict) and data.get("scheduler") in ("auto", "synchronous", "local"):
            data = dict(data)
            word = data.pop("scheduler")
            if word != "auto":
                data["executor"] = "synchronous" if word == "synchronous" else "processes"
        return data

    @field_validator("scheduler")
    @classmethod
    def _address(cls, v: str | None) -> str | None:
        if v is None:
            return v
        v = v.strip()
        if not re.fullmatch(r"[a-z][a-z0-9+.-]*://\S+|[^\s:/]+:\d+", v):
            raise ValueError(
                f"scheduler {v!r} is not a dask.distributed scheduler address; give one such as "
                '"tcp://host:8786" (or "host:8786"), or leave it out and choose executor = "threads" | '
                '"processes" | "synchronous"'
            )
        return v

    @property
    def n_workers(self) -> int:
        """Workers to use: ``workers`` or the number of CPU cores available to this process."""
        import os

        if self.workers is not None:
            return self.workers
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - not on Linux
            return max(1, os.cpu_count() or 1)


#: Upper bounds that keep an event-based run within memory and time on any machine.
MAX_YEARS_SIMULATED = 10_000_000
MAX_EVENT_REALISATIONS = 100_000


class EventBasedSection(_Section):
    """Options of the event-based Monte-Carlo risk (`hra events`; docs/event-based.md)."""

    years_simulated: int = Field(10_000, ge=1, le=MAX_YEARS_SIMULATED, description="Simulated (replica) years per calendar year, over all realisations [yr].")
    realisations: Union[Literal["all"], Annotated[int, Field(ge=1, le=MAX_EVENT_REALISATIONS)]] = Field(
        1, description='Logic-tree realisations: an integer draws that many (the integration engine\'s draws), "all" '
        "enumerates the tree; years_simulated is split evenly over them (it must be a multiple of their number).",
    )
    seed: int | None = Field(None, ge=0, description="Seed of the event, ground-motion and damage streams (default: [run] seed).")
    years: list[int] | None = Field(None, min_length=1, description="Calendar years to simulate (default: all of [run] years).")
    location: Literal["uniform", "centre"] = Field(
        "uniform", description="Epicentres uniform in the source cell, or at its centre (point sources)."
    )
    correlation_range_km: float = Field(
        8.5, ge=0, description="Range of the within-event spatial correlation exp(-3 d / range); 0 = independent "
        "(default: Jayaram & Baker 2009 for PGA) [km].",
    )
    grid_spacing_m: float | None = Field(None, ge=50.0, description="Node spacing of the correlated field (default: range / 17) [m].")
    site_term: Literal["zone", "building"] = Field(
        "zone", description="Aleatory site term shared by the buildings of a zone in an event, or drawn per building."
    )
    cutoff_sigma: float = Field(
        4.0, gt=0, description="Skip building-event pairs that even this many sigma cannot bring to any fragility "
        "threshold (inf: no cut-off) [-].",
    )
    rates: Literal["expectation", "sampling"] = Field(
        "expectation", description="Per-building rates from the conditional expectation given the ground motion, or from sampled damage."
    )
    fn_from: Literal["expectation", "sampling"] = Field(
        "sampling", description="Deaths per event of the F-N curve: sampled (integer) or expected."
    )
    fn_thresholds: list[float] | None = Field(None, min_length=1, description="N values of the F-N curve (default: 1 ... 1000).")
    bootstrap: int = Field(500, ge=0, description="Bootstrap replicas of the F-N band (0: none).")
    confidence: float = Field(0.95, gt=0, lt=1, description="Width of the bootstrap band of the F-N curve [-].")
    top_events: int = Field(20, ge=0, description="Largest events reported per year.")
    event_chunk: int = Field(2000, ge=1, description="Events per task.")
    keep_event_table: bool = Field(True, description="Store the per-event table (dim event) in the output.")
    output: Path | None = Field(None, description="Event-based output store, .nc or .zarr (none: only printed/returned).")

    @field_validator("fn_thresholds")
    @classmethod
    def _fn(cls, v: list[float] | None) -> list[float] | None:
        if v is not None:
            if any(n < 1 for n in v):
                raise ValueError(f"fn_thresholds {v}: every N must be at least 1 (a number of fatalities)")
            if any(b <= a for a, b in zip(v, v[1:])):
                raise ValueError(f"fn_thresholds {v}: give increasing values")
        return v

    @field_validator("output")
    @classmethod
    def _out_suffix(cls, v: Path | None) -> Path | None:
        if v is not None and v.suffix not in (".zarr", ".nc"):
            raise ValueError(f"event-based output {v} must end in .zarr or .nc")
        return v

    @model_validator(mode="after")
    def _split(self) -> "EventBasedSection":
        if isinstance(self.realisations, int) and self.years_simulated % self.realisations:
            raise ValueError(f"years_simulated = {self.years_simulated} must be a multiple of realisations = {self.realisations}")
        return self


class LogicTreeSection(_Section):
    """Weights and fixed branches of any logic-tree node (source, b_value, m_max, the GMM and FCM nodes).

    Node and branch names are those of the run's logic tree (a run's provenance key `logic_tree`
    lists them); they are checked when the models are assembled, before any computation.
    """

    weights: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        description="New branch weights per node, e.g. { gmm_median = { Lower = 0.1, CentralLower = 0.3, "
        "CentralUpper = 0.3, Upper = 0.3 } }; branches left out get weight 0; the weights of a node must sum "
        "to 1 [-]. For the magnitude-dependent GMM V7 median weights w(M), the given weights apply at every "
        "magnitude.",
    )
    fix: dict[str, str] = Field(
        default_factory=dict,
        description='Fix a node to one branch (weight 1, the others 0), e.g. { gmm_median = "CentralUpper", '
        'm_max = "Mmax=4.5" }; a fixed GMM median branch is used at every magnitude.',
    )

    @field_validator("weights")
    @classmethod
    def _weights(cls, v: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for node, table in v.items():
            _check_weight_table(table, f"weights.{node}")
        return v

    @model_validator(mode="after")
    def _not_both(self) -> "LogicTreeSection":
        both = sorted(set(self.weights) & set(self.fix))
        if both:
            raise ValueError(f"node(s) {', '.join(both)} are given in both weights and fix; keep one of the two")
        return self


#: Top-level ``model = "..."`` presets: the ``[ground_motion]`` and ``[fragility]`` sections they
#: fill in (the full public Groningen logic tree, every other key at its default).
MODEL_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "groningen-v7": {"ground_motion": {"model": "groningen-v7"}, "fragility": {"model": "fcm-v7"}},
    "groningen-v6": {"ground_motion": {"model": "groningen-v6"}, "fragility": {"model": "fcm-v6"}},
    "psdra-2024": {"ground_motion": {"model": "groningen-v7"}, "fragility": {"model": "fcm-tno2020"}},
}

#: ``[source] magnitude_table_stride`` under ``model = "psdra-2024"`` with a forecast, unless the config
#: gives it: the death tables at every other magnitude node of the forecast's grid (and at GMM V7's kinks),
#: the others interpolated in ln P (:mod:`hra.integration.magnitudes`). On the field benchmark this moves
#: the mean LPR by ~3e-5 relative (the order of the 48-node distance grid's own +5e-5 and of the tables'
#: 16-bit rounding) and P50/P90 by far less than the spread of their 1,000-realisation estimates between
#: two seeds (docs/forecast.md, "The preset's magnitude stride"), for about two thirds of the table stage.
PSDRA_2024_MAGNITUDE_TABLE_STRIDE = 2

#: ``[run] table_precision`` under ``model = "psdra-2024"`` with a forecast: the per-combination tables of the
#: building pass in float32 (half their memory: the warm field run's peak 4.6 -> 3.6 GB; P50/P90 within ~1e-7
#: relative of float64, the mean identical: docs/forecast.md, "The tables in float32").
PSDRA_2024_TABLE_PRECISION = "float32"

#: Branch weights of the PSDRA-2024 seismicity forecast (2 rate models x 2 magnitude models x
#: 6 Mmax): the defaults of ``[source.forecast_weights]`` under ``model = "psdra-2024"``.
PSDRA_2024_FORECAST_WEIGHTS: dict[str, dict[str, float]] = {
    "branch_rate": {"elastic": 0.5, "elastic_plastic": 0.5},
    "branch_mm": {"linear_stress": 0.3, "split_thickness": 0.7},
    "branch_mmax": {"4.0": 0.27, "4.5": 0.405, "5.0": 0.1875, "5.5": 0.1075, "6.0": 0.025, "6.5": 0.005},
}


def _section_get(section: Any, key: str) -> Any:
    return section.get(key) if isinstance(section, dict) else getattr(section, key, None)


def expand_model_preset(data: Any) -> Any:
    """Fill in ``[ground_motion]`` and ``[fragility]`` from a top-level ``model`` preset.

    A section that is absent is taken from :data:`MODEL_PRESETS`; a section given without a
    ``model`` key (e.g. only ``quadrature = "fast"``) gets the preset's model; a section that
    names another model (or ``[fragility] curves``) conflicts with the preset and raises
    ``ValueError`` naming the key and the fix. Unknown preset names are left to the schema.
    """
    if not isinstance(data, dict) or data.get("model") not in MODEL_PRESETS:
        return data
    name = data["model"]
    out = dict(data)
    for section, preset in MODEL_PRESETS[name].items():
        given = out.get(section)
        want = preset["model"]
        if given is None:
            out[section] = dict(preset)
            continue
        have = _section_get(given, "model")
        curves = _section_get(given, "curves") if section == "fragility" else None
        if curves is not None:
            raise ValueError(
                f'key [{section}.curves]: the top-level model = "{name}" uses the fragility model {want!r}, '
                f"but [{section}] curves = {str(curves)!r} is given; fix: remove [{section}] curves, or remove "
                f"the top-level model key and give [ground_motion] and [fragility] in full")
        if have is None:
            if isinstance(given, dict):
                out[section] = {**given, "model": want}
            continue
        if have != want:
            raise ValueError(
                f'key [{section}.model]: the top-level model = "{name}" sets [{section}] model = "{want}", '
                f'but the configuration gives [{section}] model = "{have}"; fix: remove [{section}] model '
                f"(or the whole section), or remove the top-level model key")
    if name == "psdra-2024" and isinstance(out.get("source"), dict):
        src = dict(out["source"])
        given = src.get("forecast_weights") or {}
        if src.get("forecast") is not None:  # preset weights per dimension, the config's replace them
            src["forecast_weights"] = {**PSDRA_2024_FORECAST_WEIGHTS, **given}
            src.setdefault("magnitude_table_stride", PSDRA_2024_MAGNITUDE_TABLE_STRIDE)
            if isinstance(out.get("run"), dict):
                out["run"] = {"table_precision": PSDRA_2024_TABLE_PRECISION, **out["run"]}
        out["source"] = src
    return out


def _preset_schema(schema: dict[str, Any]) -> None:
    """JSON schema of :class:`Config`: the sections a ``model`` preset fills in are not required;
    the description is the docstring's summary line (not its examples)."""
    schema["required"] = [k for k in schema.get("required", []) if k not in ("ground_motion", "fragility")]
    if "description" in schema:
        schema["description"] = schema["description"].split("\n\n")[0]


class Config(_Section):
    """A complete, validated run configuration (docs/architecture.md §3).

    One pydantic model per TOML section: ``run`` (years, seed, realisations, quantiles),
    ``source`` (rate grid [yr^-1], cell size [m], m_min [ML], hypocentre depth [km], magnitude
    law), ``ground_motion``, ``exposure``, ``fragility``, ``output``, ``compute`` and
    ``event_based``; the top-level ``model`` preset (``"groningen-v7"`` or ``"groningen-v6"``)
    fills in the public Groningen GMM and FCM. Unknown keys are refused (``extra="forbid"``) and
    the object is frozen: :meth:`with_updates` returns a changed, re-validated copy. The keys,
    their units and defaults are listed by ``hra config schema --format markdown`` (the
    README's configuration reference).

    Get one with :func:`load_config` (from a TOML file) or :func:`hra.demo_config`.

    Examples
    --------
    >>> import hra, tempfile
    >>> cfg = hra.demo_config(n_buildings=100, realisations=10, years=(2025,), directory=tempfile.mkdtemp())
    >>> cfg.run.years, cfg.run.quantiles, cfg.ground_motion.model
    ([2025], [0.5, 0.9], 'demo')
    >>> cfg.with_updates(run={"seed": 7}).run.seed
    7
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, json_schema_extra=_preset_schema)

    model: Literal["groningen-v7", "groningen-v6", "psdra-2024"] | None = Field(
        None,
        description='Model preset: "groningen-v7" fills in [ground_motion] model = "groningen-v7" and [fragility] '
        'model = "fcm-v7" (GMM V7 x FCM V7, 72 x 9 branches; "groningen-v6": V6 and FCM V6) where those sections '
        'are absent or give no model; a section that names another model is an error. "psdra-2024" (the '
        "configuration of the public PSDRA-2024 assessment): GMM V7 x FCM TNO-2020, with the PSDRA-2024 forecast "
        "branch weights as defaults of [source.forecast_weights] (per dimension; the config's replace them; a "
        "forecast without one of the dimensions drops its defaults) "
        "and, with a [source] forecast, magnitude_table_stride = 2 and [run] table_precision = \"float32\" unless "
        "the config gives them. "
        "Needs the model tables ($HRA_MODEL_DIR or [ground_motion] model_dir).",
    )
    run: RunSection
    source: SourceSection
    ground_motion: GroundMotionSection
    exposure: ExposureSection
    fragility: FragilitySection
    output: OutputSection = Field(default_factory=OutputSection)
    compute: ComputeSection = Field(default_factory=ComputeSection)
    logic_tree: LogicTreeSection = Field(
        default_factory=LogicTreeSection,
        description="Weights and fixed branches of any logic-tree node, the GMM and FCM nodes included (README: "
        "Varying the logic tree).",
    )
    event_based: EventBasedSection = Field(
        default_factory=EventBasedSection,
        description="Event-based Monte-Carlo options of `hra events` (the command line overrides them).",
    )
    base_dir: Path = Field(Path("."), description="Directory against which relative paths are resolved.")
    source_file: Path | None = Field(None, description="The TOML file this config was read from, if any.")

    @model_validator(mode="before")
    @classmethod
    def _preset(cls, data: Any) -> Any:
        return expand_model_preset(data)

    def resolve(self, p: Path | None) -> Path | None:
        if p is None:
            return None
        p = Path(os.path.expanduser(str(p)))
        return p if p.is_absolute() else (self.base_dir / p)

    def sha256(self) -> str:
        """SHA-256 of the canonical JSON of what decides the numbers.

        Paths as given; ``base_dir``, ``source_file``, ``[output]`` (where the result goes) and
        ``[compute]`` (how it is computed: workers, chunks, scheduler) are left out, so the same
        run written elsewhere or with other workers has the same hash.
        """
        d = self.model_dump(mode="json", exclude={"base_dir", "source_file", "compute", "output"})
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()

    def resolved_record(self) -> dict[str, Any]:
        """The config as resolved (JSON types, every path made absolute against ``base_dir``):
        ``Config.model_validate(record)`` rebuilds it without the original file (run provenance)."""
        d = self.model_dump(mode="json")

        def walk(model: BaseModel, data: dict[str, Any]) -> None:
            for name, value in model:
                if isinstance(value, Path) and name not in ("base_dir", "source_file"):
                    data[name] = str(self.resolve(value).resolve())
                elif isinstance(value, BaseModel):
                    walk(value, data[name])
                elif isinstance(value, list):
                    for v, dv in zip(value, data[name]):
                        if isinstance(v, BaseModel):
                            walk(v, dv)

        walk(self, d)
        d["base_dir"] = str(Path(self.base_dir).resolve())
        return d

    def resolved_dict(self) -> dict[str, Any]:
        """The config as a plain mapping: presets expanded, every path absolute, unset keys left out.

        :func:`config_from_dict` of it gives back an equivalent config from any directory.
        """

        def conv(v: Any) -> Any:
            if isinstance(v, Path):
                return str(self.resolve(v))
            if isinstance(v, dict):
                return {k: conv(x) for k, x in v.items() if x is not None}
            if isinstance(v, (list, tuple)):
                return [conv(x) for x in v if x is not None]
            return v

        return conv(self.model_dump(exclude={"base_dir", "source_file"}))

    def resolved_toml(self) -> str:
        """TOML text of :meth:`resolved_dict` (what the provenance records as ``config_toml``)."""
        import tomli_w

        return tomli_w.dumps(self.resolved_dict())

    def with_updates(self, **sections: dict[str, Any]) -> "Config":
        """A copy with some section keys replaced, validated again (e.g. ``compute={"workers": 2}``)."""
        data = self.model_dump()
        for name, upd in sections.items():
            if isinstance(data.get(name), dict):
                data[name].update(upd)
            else:
                data[name] = upd
        return Config.model_validate(data)


def _fix_hint(err: dict[str, Any]) -> str | None:
    if err.get("type") == "missing" and tuple(err.get("loc", ())) in (("ground_motion",), ("fragility",)):
        return 'add this section, or a top-level model = "groningen-v7" that fills it in'
    return None


def format_validation_error(exc: ValidationError, source: str) -> str:
    """The configuration's validation errors, one ``key [a.b]: message; fix: ...`` line each."""
    return _format_validation_error(exc, f"invalid configuration in {source}:", fix_hint=_fix_hint,
                                    keys_hint="run `hra config schema` for the valid keys")


#: The input paths of a config: (section, key, what it must be, what it holds). ``"file"`` may also be a
#: ``.zarr`` folder where the reader accepts one.
INPUT_PATHS: tuple[tuple[str, str, str, str], ...] = (
    ("source", "rates", "file", "the rate grid (CSV, netCDF or a .zarr folder)"),
    ("source", "forecast", "file", "the seismicity forecast (HDF5/netCDF)"),
    ("exposure", "buildings", "file", "the exposure (CSV or Parquet, plain or EDB layout)"),
    ("fragility", "curves", "file", "the fragility curves (CSV)"),
    ("ground_motion", "zones", "file", "the site-response zone polygons"),
    ("ground_motion", "model_dir", "dir", "the folder of the Groningen model tables"),
    ("fragility", "model_dir", "dir", "the folder of the Groningen model tables"),
)


def check_input_paths(cfg: Config, source: str = "<dict>") -> None:
    """Check once, at load, that every input path of ``cfg`` exists and is a file or a folder as needed.

    Relative paths are taken from the config file's folder (``cfg.base_dir``). Raises
    :class:`ConfigError` naming the config, the key, the resolved path and the fix.
    """
    problems = []
    for section, key, kind, what in INPUT_PATHS:
        value = getattr(getattr(cfg, section, None), key, None)
        if value is None:
            continue
        p = cfg.resolve(value)
        where = f"key [{section}.{key}] = {str(value)!r}"
        rel = "" if Path(value).is_absolute() else f" (relative paths are taken from the folder of the config, {cfg.base_dir})"
        if not p.exists():
            problems.append(f"{where}: {p} does not exist{rel}; fix: give the path of {what}")
        elif kind == "file" and p.is_dir() and p.suffix != ".zarr":
            problems.append(f"{where}: {p} is a folder; fix: give the path of {what}, a file")
        elif kind == "dir" and not p.is_dir():
            problems.append(f"{where}: {p} is not a folder; fix: give {what}")
    if problems:
        raise ConfigError(f"invalid configuration in {source}:\n" + "\n".join(f"  - {m}" for m in problems))


def config_from_dict(data: dict[str, Any], base_dir: Path | str = ".", source: str = "<dict>",
                     check_paths: bool = True) -> Config:
    """Validate a config mapping; errors become :class:`ConfigError` naming ``source`` and the keys.

    With ``check_paths`` (default) every input path must exist (:func:`check_input_paths`)."""
    data = dict(data)
    data.setdefault("base_dir", str(base_dir))
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None
    if check_paths:
        check_input_paths(cfg, source)
    return cfg


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a TOML run configuration.

    Parameters
    ----------
    path
        The TOML file (``run.toml``). Relative paths inside it (rate grid, buildings, fragility
        curves, outputs) are taken relative to the file's folder. [file path]

    Returns
    -------
    Config
        The validated configuration; ``cfg.source_file`` is the file read and ``cfg.base_dir``
        its folder.

    Raises
    ------
    ConfigError
        The file is missing or not valid TOML, or a key is unknown, missing or out of range;
        the message names the file, the key and the fix.

    Examples
    --------
    >>> import hra, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = hra.demo_config(n_buildings=100, realisations=10, years=(2025,), directory=d)
    >>> cfg = hra.load_config(d / "run.toml")            # the file demo_config wrote
    >>> cfg.run.realisations, cfg.source.depth_km
    (10, 3.0)
    >>> _ = (d / "bad.toml").write_text("colour = 1\\n" + (d / "run.toml").read_text())
    >>> try:
    ...     hra.load_config(d / "bad.toml")
    ... except hra.ConfigError as exc:
    ...     print(str(exc).splitlines()[1].strip())
    - key [colour]: Extra inputs are not permitted; fix: remove it or check its spelling (run `hra config schema` for the valid keys)
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"configuration file {path} is a folder; give the path of a TOML file (e.g. {path / 'run.toml'})")
    if not path.is_file():
        raise ConfigError(f"configuration file {path} does not exist; give the path of a TOML file")
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}; fix the syntax at that line") from None
    if "base_dir" in data or "source_file" in data:
        raise ConfigError(f"{path}: keys base_dir/source_file are set by hra, remove them from the file")
    data["base_dir"] = str(path.resolve().parent)
    data["source_file"] = str(path.resolve())
    return config_from_dict(data, source=str(path))


def config_json_schema() -> dict[str, Any]:
    return Config.model_json_schema()
