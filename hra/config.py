"""Run configuration: pydantic models of the TOML schema (design.md §5).

The schema is the documentation: every field carries a description with its unit, unknown keys
are rejected, and :func:`load_config` turns validation errors into messages that name the file,
the key and the fix. Relative paths are resolved against the directory of the config file.

``hra config schema`` prints the JSON schema of :class:`Config`.
"""

from __future__ import annotations

import hashlib
import json
import os
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


class ConfigError(ValueError):
    """A configuration problem; the message names the file, the key and the fix."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WeightedValue(_Section):
    value: float = Field(description="Branch value (unit of the parent key).")
    weight: float = Field(ge=0.0, le=1.0, description="Branch weight [-].")


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
    rates: Path = Field(
        description="CSV/netCDF/zarr rate grid: columns x, y, year, rate [, branch, weight]; "
        "rate = events per year with M >= m_min in the cell [yr^-1]; x, y = cell centre [m, EPSG:28992]."
    )
    cell_size_m: float = Field(1000.0, gt=0, description="Source cell size [m].")
    m_min: float = Field(1.5, description="Minimum magnitude of the rates [magnitude].")
    depth_km: float = Field(3.0, gt=0, description="Hypocentral depth [km].")
    max_distance_km: float = Field(70.0, gt=0, description="Source-site pairs beyond this hypocentral distance are ignored [km].")
    distance_nodes: int = Field(96, ge=8, le=400, description="Number of log-spaced hypocentral-distance nodes.")
    subcell_radius_km: float = Field(
        2.5, ge=0, description="Cells whose centre is within this epicentral distance of a building are split into sub-cells [km]."
    )
    subcell_divisions: int = Field(5, ge=1, le=21, description="Sub-cells per side for nearby cells.")
    magnitude: MagnitudeSection

    @model_validator(mode="after")
    def _mmax_above_mmin(self) -> "SourceSection":
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
    overwrite: bool = Field(False, description="Replace existing outputs.")

    @field_validator("path")
    @classmethod
    def _suffix(cls, v: Path | None) -> Path | None:
        if v is not None and v.suffix not in (".zarr", ".nc"):
            raise ValueError(f"output path {v} must end in .zarr or .nc")
        return v


class ComputeSection(_Section):
    chunk_buildings: int = Field(2000, ge=1, description="Buildings per task.")
    workers: int | None = Field(
        None, ge=1, description="Worker processes of the local dask cluster (default: the number of CPU cores)."
    )
    scheduler: str = Field(
        "auto",
        description='"auto" (a dask LocalCluster of `workers` processes; in-process when workers = 1), '
        '"synchronous", "local", or a dask.distributed scheduler address such as "tcp://host:8786".',
    )

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
    progress: bool | None = Field(None, description="Progress bar (default: when on a terminal).")


class Config(_Section):
    """A complete run configuration (design.md §5)."""

    run: RunSection
    source: SourceSection
    ground_motion: GroundMotionSection
    exposure: ExposureSection
    fragility: FragilitySection
    output: OutputSection = Field(default_factory=OutputSection)
    compute: ComputeSection = Field(default_factory=ComputeSection)
    base_dir: Path = Field(Path("."), description="Directory against which relative paths are resolved.")
    source_file: Path | None = Field(None, description="The TOML file this config was read from, if any.")

    def resolve(self, p: Path | None) -> Path | None:
        if p is None:
            return None
        p = Path(os.path.expanduser(str(p)))
        return p if p.is_absolute() else (self.base_dir / p)

    def sha256(self) -> str:
        """SHA-256 of the canonical JSON of the config (paths as given, base_dir excluded)."""
        d = self.model_dump(mode="json", exclude={"base_dir", "source_file", "compute"})
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()

    def with_updates(self, **sections: dict[str, Any]) -> "Config":
        """A copy with some section keys replaced, validated again (e.g. ``compute={"workers": 2}``)."""
        data = self.model_dump()
        for name, upd in sections.items():
            if isinstance(data.get(name), dict):
                data[name].update(upd)
            else:
                data[name] = upd
        return Config.model_validate(data)


def _fix_hint(err: dict[str, Any]) -> str:
    t = err.get("type", "")
    if t == "extra_forbidden":
        return "remove it or check its spelling (run `hra config schema` for the valid keys)"
    if t == "missing":
        return "add this key"
    if t.startswith("literal_error") or t == "union_tag_invalid":
        return "use one of the allowed values"
    return "correct the value"


def format_validation_error(exc: ValidationError, source: str) -> str:
    lines = [f"invalid configuration in {source}:"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-after", "tagged-union")))
        lines.append(f"  - key [{loc}]: {err['msg']}; fix: {_fix_hint(err)}")
    return "\n".join(lines)


def config_from_dict(data: dict[str, Any], base_dir: Path | str = ".", source: str = "<dict>") -> Config:
    """Validate a config mapping; errors become :class:`ConfigError` naming ``source`` and the keys."""
    data = dict(data)
    data.setdefault("base_dir", str(base_dir))
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, source)) from None


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and validate a TOML run configuration.

    Relative paths inside are taken relative to the file's directory.
    """
    path = Path(path)
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
