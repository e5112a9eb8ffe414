"""Risk profiles of buildings (concept Besluit versterking gebouwen Groningen, art. 4).

A risk profile sums up, per building, the Local Personal Risk (LPR) distribution of an annual
risk run (docs/architecture.md §4.1) against the norm of 1e-5 per year (art. 3):

``verhoogd``
    the *verhoogd statistic* (the weighted mean LPR in preset ``besluit-2019``, the P50 in
    ``practice-p50``) exceeds the threshold in the short horizon;
``langjarig_licht_verhoogd``
    the P90 exceeds the threshold over the short horizon **and** over the long horizon;
``licht_verhoogd``
    the P90 exceeds the threshold within the short horizon;
``normaal``
    otherwise.

The profiles are listed from high to low in :data:`PROFILE_ORDER`; a building gets the highest
profile whose criterion it meets.

Horizons
--------
A horizon is a set of years of the risk Dataset. By default the *short horizon* is the first
three years of the Dataset and the *long horizon* the remaining years; both can be set as
inclusive year ranges (:class:`YearRange`). Overlapping horizons, a long horizon that does not
follow the short one, or a horizon without any year of the Dataset are refused with a
:class:`ProfileError`.

"Over a horizon"
----------------
Every criterion carries a ``years`` mode that says what "exceeds in a horizon" means:

* ``"any"`` (default): the statistic exceeds the threshold in **at least one year** of the
  horizon (it is summarised by its maximum over the horizon; the decisive year is the year of
  that maximum);
* ``"all"``: the statistic exceeds the threshold in **every year** of the horizon (summarised by
  its minimum; the decisive year is the year of that minimum, i.e. the year that would have
  failed first).

For ``langjarig_licht_verhoogd`` the condition must hold in the short horizon and in the long
horizon, each in the chosen mode.

Explanation
-----------
:func:`assign_profiles` returns one row per building with the profile, the statistic, year,
value and horizon that decided it, and a readable sentence. For ``normaal`` buildings the
decisive statistic is the ``licht_verhoogd`` statistic in the short horizon (the criterion that
came closest to giving a profile).

This module is pure: it reads no files apart from :func:`open_risk` and :func:`load_rule`, and
writes nothing. The durable register (annual update without downgrade, art. 4.5) is in
:mod:`hra.policy.register`.
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from pathlib import Path
from typing import Literal, Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

import hra.core.fileio as fileio
from hra.core.norm import LPR_NORM_PER_YEAR
from hra.core.validation import format_validation_error

__all__ = [
    "LPR_NORM",
    "PRESETS",
    "PROFILE_ORDER",
    "PROFILE_RANK",
    "Criterion",
    "ProfileError",
    "ProfileRule",
    "YearRange",
    "apply_ratchet",
    "assign_profiles",
    "default_run_id",
    "load_rule",
    "max_profile",
    "open_risk",
    "profile_rank",
    "provenance_hash",
    "resolve_horizons",
    "risk_dataset_from_arrays",
    "validate_risk_dataset",
]

#: The norm for the Local Personal Risk (Besluit art. 3), from :mod:`hra.core.norm`. [yr⁻¹]
LPR_NORM = LPR_NORM_PER_YEAR

#: Profile names from high to low (art. 4). The plan order of art. 5.4 follows this order.
PROFILE_ORDER: tuple[str, ...] = ("verhoogd", "langjarig_licht_verhoogd", "licht_verhoogd", "normaal")

#: Rank of each profile: higher number = higher profile (normaal = 0).
PROFILE_RANK: dict[str, int] = {name: len(PROFILE_ORDER) - 1 - i for i, name in enumerate(PROFILE_ORDER)}


class ProfileError(ValueError):
    """An input to the profile, register, plan or opt-out code is wrong.

    The message names the input (file, register, column, building) and says how to fix it.
    """


# --------------------------------------------------------------------------------------------
# Profile order helpers
# --------------------------------------------------------------------------------------------


def profile_rank(name: str, *, where: str = "profile") -> int:
    """Rank of a profile name (``normaal`` = 0 ... ``verhoogd`` = 3).

    Parameters
    ----------
    name
        One of :data:`PROFILE_ORDER`.
    where
        Description of where the name came from, used in the error message.

    Raises
    ------
    ProfileError
        If ``name`` is not a known profile.
    """
    try:
        return PROFILE_RANK[name]
    except (KeyError, TypeError):
        raise ProfileError(
            f"{where}: unknown risk profile {name!r}; use one of {', '.join(PROFILE_ORDER)}"
        ) from None


def max_profile(*names: str | None) -> str:
    """Highest of the given profiles; ``None`` entries are ignored.

    >>> max_profile("licht_verhoogd", None, "langjarig_licht_verhoogd")
    'langjarig_licht_verhoogd'

    Raises
    ------
    ProfileError
        If no profile is given or a name is unknown.
    """
    given = [n for n in names if n is not None]
    if not given:
        raise ProfileError("max_profile: no profile given")
    return max(given, key=lambda n: profile_rank(n))


def apply_ratchet(
    computed: str, previous_applied: str | None = None, adjustments: Sequence[str] = ()
) -> tuple[str, str]:
    """Applied profile at an annual update: a profile never drops (art. 4.5).

    ``applied = max(computed, previous applied, adjustments)`` in the order of
    :data:`PROFILE_ORDER`; adjustments (art. 4.4, 4.8) act as floors.

    Parameters
    ----------
    computed
        Profile computed from this year's risk run.
    previous_applied
        Applied profile of the building at the previous update, or ``None`` for a new building.
    adjustments
        Profiles set by adjustments of the building (any number).

    Returns
    -------
    applied, reason
        The applied profile and why: ``"computed"`` (the computed profile is the highest),
        ``"ratchet"`` (the previous applied profile is kept, art. 4.5) or ``"adjustment"``.

    >>> apply_ratchet("normaal", "licht_verhoogd")
    ('licht_verhoogd', 'ratchet')
    """
    applied = max_profile(computed, previous_applied, *adjustments)
    if profile_rank(applied) == profile_rank(computed):
        return applied, "computed"
    if previous_applied is not None and profile_rank(applied) == profile_rank(previous_applied):
        return applied, "ratchet"
    return applied, "adjustment"


# --------------------------------------------------------------------------------------------
# Rule configuration (pydantic)
# --------------------------------------------------------------------------------------------


class YearRange(BaseModel):
    """An inclusive range of calendar years ``first..last``.

    A horizon made of a year range holds the years of the risk Dataset inside the range.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    first: int = Field(description="First year of the horizon (inclusive). [yr]")
    last: int = Field(description="Last year of the horizon (inclusive). [yr]")

    @model_validator(mode="after")
    def _ordered(self) -> "YearRange":
        if self.last < self.first:
            raise ValueError(
                f"year range {self.first}-{self.last} is empty: last ({self.last}) is before first "
                f"({self.first}); swap them"
            )
        return self

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"


class Criterion(BaseModel):
    """One profile criterion: a statistic of the LPR distribution against a threshold.

    The criterion is met in a horizon when ``statistic > threshold`` in at least one year
    (``years="any"``) or in every year (``years="all"``) of that horizon.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    statistic: str = Field(
        description='LPR statistic: "mean", "p50", "p90" or any "pNN" in the risk Dataset '
        "(read from the data variable lpr_<statistic>)."
    )
    threshold: float = Field(default=LPR_NORM, gt=0, description="Threshold on the LPR. [yr⁻¹]")
    years: Literal["any", "all"] = Field(
        default="any",
        description='"any": exceeded in at least one year of the horizon; "all": in every year.',
    )

    @field_validator("statistic")
    @classmethod
    def _statistic_name(cls, v: str) -> str:
        v = v.strip().lower()
        if v.startswith("lpr_"):
            v = v[4:]
        if v != "mean" and not (v.startswith("p") and v[1:].isdigit() and len(v) >= 2):
            raise ValueError(f'statistic {v!r} is not "mean" or a quantile "pNN" (e.g. "p90")')
        return v

    @property
    def variable(self) -> str:
        """Name of the data variable in the risk Dataset, e.g. ``lpr_p90``."""
        return f"lpr_{self.statistic}"


class ProfileRule(BaseModel):
    """A rule that assigns risk profiles (art. 4): criteria per profile and the horizons.

    Examples
    --------
    A TOML file read by :func:`load_rule` (all keys optional but ``name``)::

        name = "my-rule"
        short_length = 3
        [verhoogd]
        statistic = "mean"
        threshold = 1e-5
        [licht_verhoogd]
        statistic = "p90"
        [langjarig_licht_verhoogd]
        statistic = "p90"
        years = "all"
        [long]              # optional; default: every year after the short horizon
        first = 2029
        last = 2035
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="custom", description="Name of the rule, stored in the register.")
    verhoogd: Criterion = Field(default_factory=lambda: Criterion(statistic="mean"))
    langjarig_licht_verhoogd: Criterion = Field(default_factory=lambda: Criterion(statistic="p90"))
    licht_verhoogd: Criterion = Field(default_factory=lambda: Criterion(statistic="p90"))
    short: YearRange | None = Field(
        default=None, description="Short horizon; default: the first `short_length` years of the Dataset."
    )
    long: YearRange | None = Field(
        default=None, description="Long horizon; default: every Dataset year after the short horizon."
    )
    short_length: int = Field(
        default=3, ge=1, description="Length of the default short horizon, in Dataset years. [yr]"
    )

    @model_validator(mode="after")
    def _horizons_disjoint(self) -> "ProfileRule":
        if self.short is not None and self.long is not None:
            if self.long.first <= self.short.last and self.short.first <= self.long.last:
                raise ValueError(
                    f"the short horizon {self.short} and the long horizon {self.long} overlap; "
                    "make the long horizon start after the short one ends"
                )
            if self.long.last < self.short.first:
                raise ValueError(
                    f"the long horizon {self.long} lies before the short horizon {self.short}; "
                    "the long horizon must follow the short one"
                )
        return self

    def required_variables(self) -> list[str]:
        """Data variables the rule reads from the risk Dataset."""
        out: list[str] = []
        for c in (self.verhoogd, self.langjarig_licht_verhoogd, self.licht_verhoogd):
            if c.variable not in out:
                out.append(c.variable)
        return out

    def with_horizons(self, short: YearRange | None = None, long: YearRange | None = None) -> "ProfileRule":
        """Copy of the rule with other horizons (validated again).

        Raises
        ------
        ProfileError
            If the horizons overlap or are out of order.
        """
        data = self.model_dump()
        if short is not None:
            data["short"] = short.model_dump()
        if long is not None:
            data["long"] = long.model_dump()
        return _validate_rule(data, where=f"rule {self.name!r}")


#: Preset rules. ``besluit-2019``: verhoogd on the mean, as written in the concept Besluit
#: (2019); ``practice-p50``: verhoogd on the P50 (median), as used in practice by the
#: Nationaal Coördinator Groningen. Both use the P90 for the licht verhoogd profiles.
PRESETS: dict[str, ProfileRule] = {
    "besluit-2019": ProfileRule(
        name="besluit-2019",
        verhoogd=Criterion(statistic="mean"),
        langjarig_licht_verhoogd=Criterion(statistic="p90"),
        licht_verhoogd=Criterion(statistic="p90"),
    ),
    "practice-p50": ProfileRule(
        name="practice-p50",
        verhoogd=Criterion(statistic="p50"),
        langjarig_licht_verhoogd=Criterion(statistic="p90"),
        licht_verhoogd=Criterion(statistic="p90"),
    ),
}


def _format_validation_error(err: ValidationError) -> str:
    return format_validation_error(err, keys_hint="see hra.policy.profiles.ProfileRule for the keys", one_line=True)


def _validate_rule(data: Mapping, *, where: str) -> ProfileRule:
    try:
        return ProfileRule.model_validate(data)
    except ValidationError as err:
        raise ProfileError(f"{where}: invalid profile rule: {_format_validation_error(err)}") from None


def load_rule(spec: str | Path | ProfileRule | Mapping | None = "besluit-2019") -> ProfileRule:
    """Resolve a profile rule from a preset name, a TOML file, a mapping or a rule.

    Parameters
    ----------
    spec
        ``"besluit-2019"``, ``"practice-p50"`` (see :data:`PRESETS`), the path of a TOML file
        with the keys of :class:`ProfileRule`, a mapping of those keys, or a rule (returned
        as is). ``None`` gives ``besluit-2019``.

    Raises
    ------
    ProfileError
        Unknown preset, unreadable file, or invalid keys (the message names file and key).
    """
    if spec is None:
        return PRESETS["besluit-2019"]
    if isinstance(spec, ProfileRule):
        return spec
    if isinstance(spec, Mapping):
        return _validate_rule(spec, where="profile rule mapping")
    text = str(spec)
    if text in PRESETS:
        return PRESETS[text]
    path = Path(text)
    if path.suffix.lower() == ".toml" or path.exists():
        if not path.is_file():
            raise ProfileError(f"profile rule file {path} does not exist; give a preset "
                               f"({', '.join(PRESETS)}) or the path of a TOML rule file")
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
            raise ProfileError(f"profile rule file {path}: cannot read it as TOML: {err}") from None
        data.setdefault("name", path.stem)
        return _validate_rule(data, where=f"profile rule file {path}")
    raise ProfileError(
        f"unknown profile rule {text!r}; use a preset ({', '.join(PRESETS)}) or the path of a TOML rule file"
    )


# --------------------------------------------------------------------------------------------
# Risk Dataset: factory, reading, validation, provenance
# --------------------------------------------------------------------------------------------


def risk_dataset_from_arrays(
    building_id: Sequence[str],
    years: Sequence[int],
    lpr_mean: np.ndarray,
    lpr_p50: np.ndarray,
    lpr_p90: np.ndarray,
    *,
    x_rd: Sequence[float] | None = None,
    y_rd: Sequence[float] | None = None,
    municipality: Sequence[str] | None = None,
    connected_group: Sequence[str | None] | None = None,
    provenance: Mapping | str | None = None,
    extra_quantiles: Mapping[str, np.ndarray] | None = None,
) -> xr.Dataset:
    """Build a small risk Dataset following the output contract (docs/architecture.md §4.1).

    Meant for tests, examples and hand-made inputs.

    Parameters
    ----------
    building_id
        Building identifiers, one per building.
    years
        Calendar years. [yr]
    lpr_mean, lpr_p50, lpr_p90
        LPR statistics, shape ``(n_building, n_year)``. [yr⁻¹]
    x_rd, y_rd
        Coordinates in RD New (EPSG:28992); zeros if not given. [m]
    municipality
        Optional municipality per building (coordinate ``municipality``).
    connected_group
        Optional id of the group of structurally connected buildings (coordinate
        ``connected_group``); ``None``/empty for a free-standing building.
    provenance
        Provenance mapping or JSON string (attr ``provenance``); a minimal one with
        ``config_sha256``, ``package_version`` and ``seed`` is made if not given.
    extra_quantiles
        Further statistics by name, e.g. ``{"p95": array}`` -> variable ``lpr_p95``. [yr⁻¹]

    Returns
    -------
    xarray.Dataset
    """
    bid = np.asarray([str(b) for b in building_id], dtype=object)
    yrs = np.asarray(years, dtype=np.int64)
    n, m = len(bid), len(yrs)
    coords: dict = {
        "building_id": ("building", bid),
        "x_rd": ("building", np.zeros(n) if x_rd is None else np.asarray(x_rd, dtype=float)),
        "y_rd": ("building", np.zeros(n) if y_rd is None else np.asarray(y_rd, dtype=float)),
        "year": ("year", yrs),
    }
    if municipality is not None:
        coords["municipality"] = ("building", np.asarray([str(v) for v in municipality], dtype=object))
    if connected_group is not None:
        coords["connected_group"] = (
            "building",
            np.asarray(["" if v is None else str(v) for v in connected_group], dtype=object),
        )
    data_vars = {}
    stats = {"mean": lpr_mean, "p50": lpr_p50, "p90": lpr_p90, **dict(extra_quantiles or {})}
    for name, arr in stats.items():
        a = np.asarray(arr, dtype=np.float64)
        if a.shape != (n, m):
            raise ProfileError(
                f"risk_dataset_from_arrays: lpr_{name} has shape {a.shape}, expected (n_building, n_year) = ({n}, {m})"
            )
        data_vars[f"lpr_{name}"] = (("building", "year"), a, {"units": "1/yr", "long_name": f"LPR {name}"})
    if provenance is None:
        provenance = {"config_sha256": hashlib.sha256(b"synthetic").hexdigest(), "package_version": "0", "seed": 0}
    prov = provenance if isinstance(provenance, str) else json.dumps(dict(provenance), sort_keys=True)
    return xr.Dataset(data_vars, coords=coords, attrs={"provenance": prov})


def open_risk(path: str | Path) -> xr.Dataset:
    """Open a risk Dataset from a zarr directory or a netCDF file and validate it.

    Parameters
    ----------
    path
        ``*.zarr`` directory (``xarray.open_zarr``) or ``*.nc`` file (``xarray.open_dataset``).

    Raises
    ------
    ProfileError
        If the path does not exist, cannot be read, or does not follow the contract.
    """
    p = Path(path)
    fileio.recover(p.parent)  # an interrupted commit of this output: finish it first
    if not p.exists():
        raise ProfileError(f"risk file {p} does not exist; give the output of `hra run` (a .zarr directory or .nc file)")
    try:
        if p.is_dir() or p.suffix.lower() == ".zarr":
            ds = xr.open_zarr(p)
        else:
            ds = xr.open_dataset(p)
        ds = ds.load()
    except Exception as err:  # noqa: BLE001 - any reader failure becomes one clear message
        raise ProfileError(f"risk file {p}: cannot read it as zarr or netCDF: {err}") from None
    validate_risk_dataset(ds, where=f"risk file {p}")
    return ds


def validate_risk_dataset(ds: xr.Dataset, *, required: Sequence[str] = ("lpr_mean", "lpr_p50", "lpr_p90"),
                          where: str = "risk Dataset") -> None:
    """Check a risk Dataset against the contract of docs/architecture.md §4.1 for what profiles need.

    Checks dims ``building``/``year``, coords ``building_id`` (unique) and ``year`` (unique
    integers), the variables in ``required`` with dims ``(building, year)`` and finite,
    non-negative values.

    Raises
    ------
    ProfileError
        Naming the input (``where``), the variable, and the first offending building and year.
    """
    for dim in ("building", "year"):
        if dim not in ds.dims:
            raise ProfileError(f"{where}: dimension {dim!r} is missing (dims are {list(ds.dims)}); "
                               "give a risk Dataset written by `hra run`")
    if "building_id" not in ds.coords:
        raise ProfileError(f"{where}: coordinate 'building_id' is missing; add it on dimension 'building'")
    if "year" not in ds.coords:
        raise ProfileError(f"{where}: coordinate 'year' is missing; add the calendar years on dimension 'year'")
    ids = _str_values(ds["building_id"].values)
    uniq, counts = np.unique(ids, return_counts=True)
    if np.any(counts > 1):
        dup = uniq[counts > 1][:5]
        raise ProfileError(f"{where}: building_id is not unique: {', '.join(map(str, dup))} occur more than once; "
                           "give each building one row")
    years = np.asarray(ds["year"].values)
    if not np.issubdtype(years.dtype, np.integer):
        if np.issubdtype(years.dtype, np.floating) and np.all(np.isfinite(years)) and np.all(years == np.round(years)):
            pass
        else:
            raise ProfileError(f"{where}: coordinate 'year' must hold integer calendar years, got dtype {years.dtype}")
    if len(np.unique(years)) != len(years):
        raise ProfileError(f"{where}: coordinate 'year' has repeated years {list(years)}; give each year once")
    for var in required:
        if var not in ds.data_vars:
            have = sorted(v for v in ds.data_vars if str(v).startswith("lpr_"))
            raise ProfileError(f"{where}: variable {var!r} needed by the profile rule is missing (found {have}); "
                               "compute that statistic (run.quantiles) or choose a rule that uses the ones present")
        da = ds[var]
        if set(da.dims) != {"building", "year"}:
            raise ProfileError(f"{where}: variable {var!r} has dims {da.dims}, expected ('building', 'year')")
        vals = np.asarray(da.transpose("building", "year").values, dtype=float)
        bad = ~np.isfinite(vals) | (vals < 0)
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise ProfileError(
                f"{where}: variable {var!r} has {int(bad.sum())} missing, infinite or negative values, first at "
                f"building {str(ids[i])!r}, year {int(years[j])} (value {float(vals[i, j])!r}); fix or drop that "
                "building"
            )


def _str_values(values: np.ndarray, *, keep_missing: bool = False) -> np.ndarray:
    """Object array of Python strings from any string-like array.

    Handles numpy ``<U``, object, numpy 2 ``StringDType`` (zarr v3) and bytes (netCDF char).
    With ``keep_missing``, ``None``/NaN stay ``None``.
    """
    out = []
    for v in np.asarray(values).tolist():
        if isinstance(v, bytes):
            v = v.decode("utf-8")
        if keep_missing and (v is None or (isinstance(v, float) and math.isnan(v))):
            out.append(None)
        else:
            out.append(str(v))
    return np.array(out, dtype=object)


def _provenance_string(ds: xr.Dataset, where: str = "risk Dataset") -> str:
    prov = ds.attrs.get("provenance")
    if prov is None or (isinstance(prov, str) and not prov.strip()):
        raise ProfileError(f"{where}: attribute 'provenance' is missing; the register needs it to recognise a run. "
                           "Use a file written by `hra run`, or set ds.attrs['provenance'] to a JSON string")
    if not isinstance(prov, str):
        prov = json.dumps(prov, sort_keys=True, default=str)
    return prov


def provenance_hash(ds: xr.Dataset, *, where: str = "risk Dataset") -> str:
    """SHA-256 (hex) of the Dataset's ``provenance`` attribute string.

    Raises
    ------
    ProfileError
        If the attribute is missing.
    """
    return hashlib.sha256(_provenance_string(ds, where).encode("utf-8")).hexdigest()


def default_run_id(ds: xr.Dataset, *, where: str = "risk Dataset") -> str:
    """Default run id: the first year and the first 8 hex digits of ``config_sha256``.

    For example ``"2025-1a2b3c4d"``.

    Raises
    ------
    ProfileError
        If the provenance is not JSON or has no ``config_sha256`` (then give a run id).
    """
    prov = _provenance_string(ds, where)
    try:
        sha = json.loads(prov)["config_sha256"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ProfileError(f"{where}: attribute 'provenance' is not JSON with a 'config_sha256' key, so no default "
                           "run id can be made; give a run id (--run-id)") from None
    first_year = int(np.min(np.asarray(ds["year"].values)))
    return f"{first_year}-{str(sha)[:8]}"


# --------------------------------------------------------------------------------------------
# Horizons and assignment
# --------------------------------------------------------------------------------------------


def resolve_horizons(years: Sequence[int], rule: ProfileRule, *, where: str = "risk Dataset") -> tuple[np.ndarray, np.ndarray]:
    """Years of the short and the long horizon among the Dataset years.

    Parameters
    ----------
    years
        The years of the risk Dataset. [yr]
    rule
        The profile rule (horizons and ``short_length``).

    Returns
    -------
    short, long
        Sorted arrays of years (each non-empty, disjoint, long after short).

    Raises
    ------
    ProfileError
        If a horizon is empty or the horizons overlap.
    """
    yrs = np.sort(np.asarray(years, dtype=np.int64))
    span = f"{yrs[0]}..{yrs[-1]}" if len(yrs) else "none"
    if rule.short is None:
        short = yrs[: rule.short_length]
        short_desc = f"the first {rule.short_length} Dataset years"
    else:
        short = yrs[(yrs >= rule.short.first) & (yrs <= rule.short.last)]
        short_desc = f"{rule.short}"
    if len(short) == 0:
        raise ProfileError(f"{where}: the short horizon ({short_desc}) holds no year of the Dataset (years {span}); "
                           "set the short horizon to years the Dataset has")
    if rule.long is None:
        long = yrs[yrs > short[-1]]
        long_desc = f"the Dataset years after {short[-1]}"
    else:
        long = yrs[(yrs >= rule.long.first) & (yrs <= rule.long.last)]
        long_desc = f"{rule.long}"
    if len(long) == 0:
        raise ProfileError(
            f"{where}: the long horizon ({long_desc}) holds no year of the Dataset (years {span}), so "
            "langjarig licht verhoogd cannot be decided; compute more years or set the horizons (rule keys "
            "'short'/'long' or 'short_length')"
        )
    common = np.intersect1d(short, long)
    if len(common):
        raise ProfileError(f"{where}: the short horizon ({short_desc}) and the long horizon ({long_desc}) overlap in "
                           f"years {list(map(int, common))}; make the long horizon start after the short one")
    if long[0] < short[-1]:
        raise ProfileError(f"{where}: the long horizon ({long_desc}) starts before the short horizon ({short_desc}) "
                           "ends; the long horizon must follow the short one")
    return short, long


def _summarise(values: np.ndarray, years: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Summary value and decisive year per building over the horizon columns."""
    idx = np.argmax(values, axis=1) if mode == "any" else np.argmin(values, axis=1)
    val = np.take_along_axis(values, idx[:, None], axis=1)[:, 0]
    return val, years[idx]


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def assign_profiles(ds: xr.Dataset, rule: str | Path | ProfileRule | Mapping | None = "besluit-2019", *,
                    where: str = "risk Dataset") -> pd.DataFrame:
    """Assign a risk profile (art. 4) to every building of a risk Dataset.

    Parameters
    ----------
    ds
        Risk Dataset (docs/architecture.md §4.1) with the variables the rule needs.
    rule
        A :class:`ProfileRule`, a preset name or a TOML rule file (see :func:`load_rule`).
    where
        Name of the input for error messages (e.g. the file name).

    Returns
    -------
    pandas.DataFrame
        One row per building, in Dataset order, with columns

        - ``building_id``; ``profile`` (one of :data:`PROFILE_ORDER`);
        - ``decisive_statistic`` (variable name, e.g. ``lpr_mean``), ``decisive_year`` [yr],
          ``decisive_value`` [yr⁻¹], ``decisive_horizon`` (``short``/``long``), ``threshold``
          [yr⁻¹] and ``explanation`` (a sentence);
        - ``<var>_short_max`` and ``<var>_long_max`` for every ``lpr_*`` statistic [yr⁻¹];
        - ``time_unsafe_years``: number of Dataset years in which the ``licht_verhoogd``
          statistic (P90) exceeds its threshold [yr]; used as the time-unsafe criterion of
          the plan order (see :mod:`hra.policy.planning`);
        - ``x_rd``, ``y_rd`` [m] and, when the Dataset has them, ``municipality`` and
          ``connected_group``.

    Raises
    ------
    ProfileError
        If the Dataset breaks the contract or the horizons are empty/overlapping.
    """
    rule = load_rule(rule)
    validate_risk_dataset(ds, required=rule.required_variables(), where=where)
    years_all = np.asarray(ds["year"].values).astype(np.int64)
    short, long = resolve_horizons(years_all, rule, where=where)
    order = np.argsort(years_all, kind="stable")
    years_sorted = years_all[order]
    s_idx = np.searchsorted(years_sorted, short)
    l_idx = np.searchsorted(years_sorted, long)

    ids = _str_values(ds["building_id"].values)
    n = len(ids)

    def arr(var: str) -> np.ndarray:
        return np.asarray(ds[var].transpose("building", "year").values, dtype=np.float64)[:, order]

    out: dict[str, object] = {"building_id": ids}

    v, lv, ll = rule.verhoogd, rule.licht_verhoogd, rule.langjarig_licht_verhoogd
    v_val, v_year = _summarise(arr(v.variable)[:, s_idx], short, v.years)
    l_val, l_year = _summarise(arr(lv.variable)[:, s_idx], short, lv.years)
    lls_val, lls_year = _summarise(arr(ll.variable)[:, s_idx], short, ll.years)
    lll_val, lll_year = _summarise(arr(ll.variable)[:, l_idx], long, ll.years)

    met_v = v_val > v.threshold
    met_ll = (lls_val > ll.threshold) & (lll_val > ll.threshold)
    met_l = l_val > lv.threshold
    profile = np.where(met_v, "verhoogd",
                       np.where(met_ll, "langjarig_licht_verhoogd",
                                np.where(met_l, "licht_verhoogd", "normaal")))

    dec_stat = np.empty(n, dtype=object)
    dec_year = np.zeros(n, dtype=np.int64)
    dec_val = np.zeros(n, dtype=np.float64)
    dec_hor = np.empty(n, dtype=object)
    dec_thr = np.zeros(n, dtype=np.float64)
    expl = np.empty(n, dtype=object)
    s_desc = f"{short[0]}-{short[-1]}"
    l_desc = f"{long[0]}-{long[-1]}"
    word = {"any": "in at least one year of", "all": "in every year of"}
    for i in range(n):
        p = profile[i]
        if p == "verhoogd":
            dec_stat[i], dec_year[i], dec_val[i], dec_hor[i], dec_thr[i] = v.variable, v_year[i], v_val[i], "short", v.threshold
            expl[i] = (f"verhoogd: {v.variable} {_fmt(v_val[i])}/yr in {v_year[i]} > {_fmt(v.threshold)} "
                       f"({word[v.years]} the short horizon {s_desc})")
        elif p == "langjarig_licht_verhoogd":
            dec_stat[i], dec_year[i], dec_val[i], dec_hor[i], dec_thr[i] = ll.variable, lll_year[i], lll_val[i], "long", ll.threshold
            expl[i] = (f"langjarig_licht_verhoogd: {ll.variable} > {_fmt(ll.threshold)} {word[ll.years]} the short "
                       f"horizon {s_desc} ({_fmt(lls_val[i])} in {lls_year[i]}) and the long horizon {l_desc} "
                       f"({_fmt(lll_val[i])} in {lll_year[i]}); {v.variable} {_fmt(v_val[i])} <= {_fmt(v.threshold)}")
        elif p == "licht_verhoogd":
            dec_stat[i], dec_year[i], dec_val[i], dec_hor[i], dec_thr[i] = lv.variable, l_year[i], l_val[i], "short", lv.threshold
            expl[i] = (f"licht_verhoogd: {lv.variable} {_fmt(l_val[i])}/yr in {l_year[i]} > {_fmt(lv.threshold)} "
                       f"({word[lv.years]} the short horizon {s_desc}); not langjarig: {ll.variable} > "
                       f"{_fmt(ll.threshold)} {word[ll.years]} the short horizon ({_fmt(lls_val[i])} in "
                       f"{lls_year[i]}) and the long horizon {l_desc} ({_fmt(lll_val[i])} in {lll_year[i]}) do not "
                       f"both hold; {v.variable} {_fmt(v_val[i])} <= {_fmt(v.threshold)}")
        else:
            dec_stat[i], dec_year[i], dec_val[i], dec_hor[i], dec_thr[i] = lv.variable, l_year[i], l_val[i], "short", lv.threshold
            expl[i] = (f"normaal: {lv.variable} {_fmt(l_val[i])}/yr in {l_year[i]} <= {_fmt(lv.threshold)} "
                       f"({word[lv.years]} the short horizon {s_desc} not exceeded); {v.variable} "
                       f"{_fmt(v_val[i])} <= {_fmt(v.threshold)}")

    out["profile"] = profile.astype(object)
    out["decisive_statistic"] = dec_stat
    out["decisive_year"] = dec_year
    out["decisive_value"] = dec_val
    out["decisive_horizon"] = dec_hor
    out["threshold"] = dec_thr
    out["explanation"] = expl
    stat_vars = [str(k) for k in ds.data_vars if str(k).startswith("lpr_") and set(ds[k].dims) == {"building", "year"}]
    for var in sorted(stat_vars):
        a = arr(var)
        if not np.all(np.isfinite(a)):
            continue  # validate_risk_dataset only checks the variables the rule needs
        out[f"{var}_short_max"] = a[:, s_idx].max(axis=1)
        out[f"{var}_long_max"] = a[:, l_idx].max(axis=1)
    out["time_unsafe_years"] = (arr(lv.variable) > lv.threshold).sum(axis=1).astype(np.int64)
    for c in ("x_rd", "y_rd"):
        if c in ds.coords:
            out[c] = np.asarray(ds[c].values, dtype=float)
    for c in ("municipality", "connected_group"):
        if c in ds.coords:
            vals = _str_values(ds[c].values, keep_missing=True)
            out[c] = np.array([None if (x is None or (isinstance(x, float) and math.isnan(x)) or str(x) == "")
                               else str(x) for x in vals], dtype=object)
    df = pd.DataFrame(out)
    df.attrs["rule"] = rule.name
    df.attrs["short_horizon"] = [int(y) for y in short]
    df.attrs["long_horizon"] = [int(y) for y in long]
    return df
