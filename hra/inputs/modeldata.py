"""The public Groningen model tables: where they live, what they must contain, how to get them.

The GMM and FCM coefficient tables of the public Groningen chain (TNO's machine-readable
transcriptions of GMM V6/V7, Bommer et al. 2019/2021, and FCM V6/V7, Crowley & Pinho 2019/2020,
plus TNO's FCM-TNO2020 conversion table) are licensed EUPL-1.2 by TNO. They are **never** copied
into this repository: they are read at run time from a *model directory* laid out as the
upstream ``convert/res`` folder::

    <model_dir>/V6/gmpe_medians_NS_B_20190314_v6.csv
    <model_dir>/V7/gmpe_medians_NS_B_20211010_v7.csv
    <model_dir>/TNO2020/conversie_v3.yaml
    ...

What this module provides:

* :func:`resolve_model_dir` finds the directory (explicit argument, else ``$HRA_MODEL_DIR``);
* :data:`MODEL_FILES` is the registry of expected files per model version with their SHA-256
  (hashes are not the data; they pin the upstream commit
  :data:`UPSTREAM_COMMIT`), :func:`check_model_dir` reports missing files and hash mismatches;
* :func:`read_table` reads one CSV (UTF-8 BOM and CR-only line endings tolerated) and checks its
  columns; the ``load_*`` functions check periods and zones and fail with file, row and column;
* :func:`fetch_models` downloads the files with pooch from the public GitHub repository at the
  pinned commit (never used by the tests);
* :func:`model_dir_or_skip` is the pytest helper of the model-table tests.

Only table handling lives here. The equations are in :mod:`hra.gmm.groningen_v7`,
:mod:`hra.gmm.groningen_v6` and :mod:`fragility.groningen`.
"""

from __future__ import annotations

import csv
import functools
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from hra.core.fileio import sha256_file

#: Environment variable naming the model directory (the upstream ``convert/res`` folder).
ENV_MODEL_DIR = "HRA_MODEL_DIR"

#: Public upstream repository and the commit whose files the registry pins.
UPSTREAM_REPO = "TNO/SHRA-Groningen-hazard-risk-models"
UPSTREAM_COMMIT = "dafa1a6fdb9189161da898bdec6a29bbe9a62db2"
UPSTREAM_RAW_BASE = f"https://raw.githubusercontent.com/{UPSTREAM_REPO}/{UPSTREAM_COMMIT}/"
#: Folder of the model tables inside the upstream repository.
UPSTREAM_MODEL_FOLDER = "convert/res/"

#: Model versions known to the registry.
VERSIONS = ("V6", "V7", "TNO2020")

#: Registry: version -> role -> (path relative to the model dir, SHA-256 of the upstream file).
#: Roles are the names the loaders use; the paths are the upstream file names.
MODEL_FILES: dict[str, dict[str, tuple[str, str]]] = {
    "V7": {
        "gmm_median": (
            "V7/gmpe_medians_NS_B_20211010_v7.csv",
            "b9d0a7bbf19146f2499f78d60aaeec0f826e9984e3c3d69e63993c77ed6764d5",
        ),
        "gmm_sigma": (
            "V7/gmpe_sigmas_NS_B_20211010_v7.csv",
            "39738896d82c10ad4d4cefbbbaad0c4655194c0fe59945cd4411e9901c7bfa6f",
        ),
        "gmm_af": (
            "V7/gmpeSurfaceAmplificationModel_20211010_v7.csv",
            "cdd238aff046ceed5bf59f1d7ada837b736a509dd2421ec42fe927b0e54d373e",
        ),
        "gmm_p2p": (
            "V7/gmpe_period2period_correlations_20211010_v7.csv",
            "3195df7ab5af7a4d15f2c719f2308d5b709f567b866719cda84b524f742163f1",
        ),
        "fragility_Lower": (
            "V7/Fragility_v7_LowerBranch_20200127.csv",
            "c927a8abfa0c66ff8300a84b7fbca879086379dabeb1752ad8f9d81d2d240526",
        ),
        "fragility_Middle": (
            "V7/Fragility_v7_MiddleBranch_20200127.csv",
            "0633f70b897cdd00d64258f0bbf8002acc3f2ef22620e9265b1fcefc2a07d280",
        ),
        "fragility_Upper": (
            "V7/Fragility_v7_UpperBranch_20200127.csv",
            "84927f053a3bc07a2c7b434034b8c10cfbdc27f055e26cc6b23974a9ca2521ce",
        ),
        "fatality_Lower": (
            "V7/Fatality_v7_LowerBranch_20200127.csv",
            "883be164b11902bacce11f421008d499eb5727072e7cdbb1789a9256430f96ec",
        ),
        "fatality_Middle": (
            "V7/Fatality_v7_MiddleBranch_20200127.csv",
            "9477143f58e74b6fb66e852c27394f851fc48bfe844c35c0173b0bc5d3c9449f",
        ),
        "fatality_Upper": (
            "V7/Fatality_v7_UpperBranch_20200127.csv",
            "fe6b522272ae1415b459115129acb91cf6910a5916c1b36a485aae0d80055f54",
        ),
    },
    "V6": {
        "gmm_median": (
            "V6/gmpe_medians_NS_B_20190314_v6.csv",
            "7e52972468a85f01a7e07e11802d110adb4a386fa0953e0b613176ec26e5fb4a",
        ),
        "gmm_sigma": (
            "V6/gmpe_sigmas_NS_B_20190325_v6.csv",
            "7d3f4e25d89f2926e3233d9853f99e2bdc9e60abd99e8b2f31a09d3b3ad793c8",
        ),
        "gmm_af": (
            "V6/gmpeSurfaceAmplificationModel_20190326_v6.csv",
            "cc2736ab580563cc827e32240ee159e42e21eacb965b3074da716402de3bc758",
        ),
        "gmm_p2p": (
            "V6/gmpe_period2period_correlations_20190325_v6.csv",
            "81986f34bcdf0d95c92177038bfa98f3aec25e388618613ac92ec02d57302e62",
        ),
        "fragility_Lower": (
            "V6/Fragility_v6_LowerBranch_20190215.csv",
            "11ba7b063546ee95e722b60926fc42fd09497588b2de8eb5d7dbd4450e2b7990",
        ),
        "fragility_Middle": (
            "V6/Fragility_v6_MiddleBranch_20190215.csv",
            "a2064630048a1972fb99b77f340d3803f3e7b20bbe0590cf38760cda58bf2fc8",
        ),
        "fragility_Upper": (
            "V6/Fragility_v6_UpperBranch_20190215.csv",
            "c6134220847dc5036a55394213613e26d58746872cece59c90bfb9e01a0e4ab5",
        ),
        "fatality_Lower": (
            "V6/Fatality_v6_LowerBranch_20190215.csv",
            "0f361cbbf5dc42420986df046531054b9c59a5f78b9f054ddc1df1d10ae4cbf6",
        ),
        "fatality_Middle": (
            "V6/Fatality_v6_MiddleBranch_20190215.csv",
            "e44b80ac0f08b12ac834941e06f7e27ab73c37ec80673c14236ef90d8f81ae85",
        ),
        "fatality_Upper": (
            "V6/Fatality_v6_UpperBranch_20190215.csv",
            "deb030f20f9f8b7e01d5b7bf97e319dcfb1818e437aab8b8b80f83e403dc478b",
        ),
    },
    "TNO2020": {
        "conversion": (
            "TNO2020/conversie_v3.yaml",
            "7f055e5c011e9ca4d9cbf5cb6fcb762f06bd678f8c2f403506dc8d6b53ba2ebf",
        ),
    },
}

#: FCM-TNO2020 is assembled from the V6 and V7 FCM tables: checking it checks those too.
MODEL_REQUIRES: dict[str, tuple[str, ...]] = {"TNO2020": ("V6", "V7")}

#: The zonation (ESRI shapefile in a zip, RD New): upstream ``tests/res/Geological_zones_V6.zip``.
ZONATION_FILE = "Geological_zones_V6.zip"
ZONATION_SHA256 = "bd9d9ea7e61bb729c78b12f2d264001802526904aaf8c39369efd8f74ad6b91b"
ZONATION_UPSTREAM_PATH = "tests/res/Geological_zones_V6.zip"

#: Spectral periods of GMM-V7 (and the AvgSa periods of FCM V6/V7), s.
V7_PERIODS = (0.01, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.85, 1.0)
#: Periods of GMM-V6 (PGV coded as -0.01 in median/sigma tables, as -10 in the AF table), s.
V6_PERIODS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2, 0.25, 0.3, 0.4, 0.5,
              0.6, 0.7, 0.85, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0)
V6_PGV_CODE_MEDIAN = -0.01
V6_PGV_CODE_AF = -10.0
#: Number of site-response zones with coefficients (ID_V6 less the two lakes).
N_ZONES = 160
#: ID_V6 zones that are lakes and have no coefficients.
LAKE_ZONES = (2813, 3411)

#: Logic-tree level labels of the GMM tables.
MEDIAN_LEVELS = ("Lower", "CentralLower", "CentralUpper", "Upper")
TAU_LEVELS_V7 = ("Lower", "Central", "Upper")
PHI_SS_LEVELS = ("Lower", "Upper")
FCM_BRANCHES = ("Lower", "Middle", "Upper")


class ModelDataError(ValueError):
    """A model table is missing, altered, or does not have the expected content."""


# ---------------------------------------------------------------------------------------------
# Locating and checking the directory
# ---------------------------------------------------------------------------------------------


def resolve_model_dir(model_dir: str | os.PathLike | None = None) -> Path:
    """The model directory: ``model_dir`` if given, else ``$HRA_MODEL_DIR``.

    Raises
    ------
    ModelDataError
        Neither is set, or the path is not a directory; the message says how to fix it.
    """
    source = "argument model_dir"
    if model_dir is None:
        env = os.environ.get(ENV_MODEL_DIR, "").strip()
        if not env:
            raise ModelDataError(
                f"no model directory given and ${ENV_MODEL_DIR} is not set. Fix: pass model_dir=... or "
                f"export {ENV_MODEL_DIR}=/path/to/convert/res (the folder holding V6/, V7/, TNO2020/); "
                "`hra models fetch DEST` downloads it (then export HRA_MODEL_DIR=DEST)."
            )
        model_dir, source = env, f"${ENV_MODEL_DIR}"
    path = Path(model_dir).expanduser()
    if not path.is_dir():
        raise ModelDataError(
            f"model directory {str(path)!r} (from {source}) does not exist or is not a directory. "
            "Fix: point it at the upstream convert/res folder (holding V6/, V7/, TNO2020/)."
        )
    return path


def _expand_versions(versions: Iterable[str]) -> list[str]:
    out: list[str] = []
    for v in versions:
        if v not in MODEL_FILES:
            raise ModelDataError(f"unknown model version {v!r}; known versions: {list(MODEL_FILES)}")
        for dep in MODEL_REQUIRES.get(v, ()) + (v,):
            if dep not in out:
                out.append(dep)
    return out


def expected_files(versions: Iterable[str] = VERSIONS) -> dict[str, str]:
    """Relative path -> SHA-256 of every file the given versions need (dependencies included)."""
    out: dict[str, str] = {}
    for v in _expand_versions(versions):
        for rel, sha in MODEL_FILES[v].values():
            out[rel] = sha
    return out


@functools.lru_cache(maxsize=256)
def _cached_sha(path: str, mtime_ns: int, size: int) -> str:
    return sha256_file(path)


def _file_sha(path: Path) -> str:
    st = path.stat()
    return _cached_sha(str(path.resolve()), st.st_mtime_ns, st.st_size)


def check_model_dir(
    model_dir: str | os.PathLike | None = None,
    versions: Iterable[str] = VERSIONS,
    strict: bool = True,
) -> list[str]:
    """Check that the model directory holds the registry's files, unaltered.

    Parameters
    ----------
    model_dir
        The directory (default: ``$HRA_MODEL_DIR``).
    versions
        Model versions to check (``"V6"``, ``"V7"``, ``"TNO2020"``); ``TNO2020`` implies V6 and V7.
    strict
        Raise :class:`ModelDataError` listing every problem (default); else return them.

    Returns
    -------
    list of str
        One line per problem (empty when all is well): missing files and hash mismatches, each
        naming the file, the expected and the found SHA-256, and the fix.
    """
    path = resolve_model_dir(model_dir)
    problems: list[str] = []
    for rel, sha in expected_files(versions).items():
        f = path / rel
        if not f.is_file():
            problems.append(
                f"missing file {str(f)!r} (expected SHA-256 {sha}). Fix: copy it from {UPSTREAM_REPO} "
                f"@ {UPSTREAM_COMMIT[:7]} ({UPSTREAM_MODEL_FOLDER}{rel}) or run `hra models fetch DEST`."
            )
            continue
        found = _file_sha(f)
        if found != sha:
            problems.append(
                f"file {str(f)!r} has SHA-256 {found}, expected {sha} (upstream {UPSTREAM_REPO} @ "
                f"{UPSTREAM_COMMIT[:7]}). Fix: restore the upstream file (`hra models fetch DEST` re-downloads the tables), "
                "or set [ground_motion] verify = false (Python: verify=False) if the change is deliberate."
            )
    if problems and strict:
        raise ModelDataError("model directory check failed:\n  " + "\n  ".join(problems))
    return problems


def verify_file(model_dir: Path, rel: str, sha: str) -> Path:
    """Path of one registry file, after checking that it exists and its hash matches."""
    problems = []
    f = model_dir / rel
    if not f.is_file():
        problems.append(
            f"missing file {str(f)!r} (expected SHA-256 {sha}). Fix: copy it from {UPSTREAM_REPO} @ "
            f"{UPSTREAM_COMMIT[:7]} ({UPSTREAM_MODEL_FOLDER}{rel}) or run `hra models fetch DEST`."
        )
    else:
        found = _file_sha(f)
        if found != sha:
            problems.append(
                f"file {str(f)!r} has SHA-256 {found}, expected {sha}. Fix: restore the upstream file "
                "(`hra models fetch DEST` re-downloads the tables), or set [ground_motion] verify = false "
                "(Python: verify=False) if the change is deliberate."
            )
    if problems:
        raise ModelDataError(problems[0])
    return f


def model_file(model_dir: str | os.PathLike | None, version: str, role: str, verify: bool = True) -> Path:
    """Path of the registry file ``role`` of ``version`` in the model dir (hash-checked by default)."""
    path = resolve_model_dir(model_dir)
    try:
        rel, sha = MODEL_FILES[version][role]
    except KeyError:
        raise ModelDataError(f"no file {role!r} registered for model version {version!r}") from None
    if verify:
        return verify_file(path, rel, sha)
    f = path / rel
    if not f.is_file():
        raise ModelDataError(
            f"missing file {str(f)!r}. Fix: copy it from {UPSTREAM_REPO} @ {UPSTREAM_COMMIT[:7]} "
            f"({UPSTREAM_MODEL_FOLDER}{rel}) or run `hra models fetch DEST`."
        )
    return f


def zonation_file(model_dir: str | os.PathLike | None = None, verify: bool = True) -> Path:
    """Path of ``Geological_zones_V6.zip``.

    Looked up, in order, as ``<model_dir>/Geological_zones_V6.zip`` (where :func:`fetch_models`
    puts it) and in the upstream layout ``<model_dir>/../../tests/res/Geological_zones_V6.zip``.
    """
    path = resolve_model_dir(model_dir)
    candidates = [path / ZONATION_FILE, path.parent.parent / "tests" / "res" / ZONATION_FILE]
    for c in candidates:
        if c.is_file():
            if verify:
                found = _file_sha(c)
                if found != ZONATION_SHA256:
                    raise ModelDataError(
                        f"zonation file {str(c)!r} has SHA-256 {found}, expected {ZONATION_SHA256}. "
                        "Fix: restore the upstream file (`hra models fetch DEST`), or set [ground_motion] verify = false "
                        "(Python: verify=False) if the change is deliberate."
                    )
            return c
    raise ModelDataError(
        f"zonation file {ZONATION_FILE} not found (looked in {[str(c) for c in candidates]}). Fix: run "
        f"`hra models fetch DEST` or copy {ZONATION_UPSTREAM_PATH} of {UPSTREAM_REPO} there."
    )


def model_dir_or_skip() -> Path:
    """For tests: the model directory from ``$HRA_MODEL_DIR``, or ``pytest.skip`` with the reason."""
    import pytest

    env = os.environ.get(ENV_MODEL_DIR, "").strip()
    if not env:
        pytest.skip(f"{ENV_MODEL_DIR} not set / directory absent: set {ENV_MODEL_DIR} to the upstream convert/res folder")
    if not Path(env).is_dir():
        pytest.skip(f"{ENV_MODEL_DIR} not set / directory absent: {env!r} is not a directory")
    return Path(env)


def fetch_models(
    dest: str | os.PathLike,
    versions: Iterable[str] = VERSIONS,
    include_zonation: bool = True,
    progressbar: bool = False,
) -> Path:
    """Download the model tables with pooch from the public repository at the pinned commit.

    Files go to ``dest`` in the ``convert/res`` layout (``dest/V7/...``); the zonation zip goes to
    ``dest/Geological_zones_V6.zip``. Every file is checked against the registry's SHA-256.
    Needs internet; never called by the tests. Returns ``dest`` (use it as ``HRA_MODEL_DIR``).
    """
    import pooch

    dest = Path(dest).expanduser()
    registry = {rel: f"sha256:{sha}" for rel, sha in expected_files(versions).items()}
    urls = {rel: UPSTREAM_RAW_BASE + UPSTREAM_MODEL_FOLDER + rel for rel in registry}
    if include_zonation:
        registry[ZONATION_FILE] = f"sha256:{ZONATION_SHA256}"
        urls[ZONATION_FILE] = UPSTREAM_RAW_BASE + ZONATION_UPSTREAM_PATH
    fetcher = pooch.create(path=dest, base_url=UPSTREAM_RAW_BASE, registry=registry, urls=urls)
    for rel in registry:
        fetcher.fetch(rel, progressbar=progressbar)
    return dest


# ---------------------------------------------------------------------------------------------
# Reading CSV tables with checks
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """A CSV table as columns of strings, with the file line number of every data row."""

    path: Path
    columns: tuple[str, ...]
    data: dict[str, list[str]]
    lines: list[int] = field(default_factory=list)

    @property
    def n_rows(self) -> int:
        return len(self.lines)

    def strings(self, column: str) -> list[str]:
        if column not in self.data:
            raise ModelDataError(f"{self.path}: no column {column!r}; columns are {list(self.columns)}")
        return self.data[column]

    def floats(self, column: str, na_ok: bool = False, na_value: float = np.nan) -> np.ndarray:
        """Column as floats; errors name file, line and column."""
        out = np.empty(self.n_rows)
        for i, s in enumerate(self.strings(column)):
            t = s.strip()
            if t in ("", "NA", "NaN", "nan", "NAN"):
                if na_ok:
                    out[i] = na_value
                    continue
                raise ModelDataError(
                    f"{self.path}, row {self.lines[i]} (file line), column {column!r}: empty/NA value. "
                    "Fix: restore the upstream file."
                )
            try:
                out[i] = float(t)
            except ValueError:
                raise ModelDataError(
                    f"{self.path}, row {self.lines[i]} (file line), column {column!r}: {t!r} is not a number. "
                    "Fix: restore the upstream file."
                ) from None
            if not math.isfinite(out[i]):
                raise ModelDataError(f"{self.path}, row {self.lines[i]}, column {column!r}: non-finite value {t!r}")
        return out

    def error(self, row: int, column: str, what: str) -> ModelDataError:
        return ModelDataError(f"{self.path}, row {self.lines[row]} (file line), column {column!r}: {what}")


def read_table(path: str | os.PathLike, required: Sequence[str] = ()) -> Table:
    """Read a CSV file into a :class:`Table`.

    Tolerates a UTF-8 byte-order mark and CR-only (classic Mac), LF or CRLF line endings; strips
    whitespace around header names. Raises :class:`ModelDataError` naming the file and the missing
    columns when ``required`` columns are absent, and the line of any row of the wrong length.
    """
    path = Path(path)
    with open(path, encoding="utf-8-sig", newline="") as f:
        text = f.read()
    lines = text.splitlines()
    rows = []
    for lineno, line in enumerate(lines, start=1):
        if line.strip() == "":
            continue
        rows.append((lineno, next(csv.reader([line]))))
    if not rows:
        raise ModelDataError(f"{path}: file is empty")
    header = tuple(h.strip() for h in rows[0][1])
    missing = [c for c in required if c not in header]
    if missing:
        raise ModelDataError(
            f"{path}, row 1 (header): missing column(s) {missing}; found {list(header)}. "
            "Fix: restore the upstream file (the loader expects the upstream layout)."
        )
    data: dict[str, list[str]] = {h: [] for h in header}
    line_numbers = []
    for lineno, r in rows[1:]:
        if len(r) != len(header):
            raise ModelDataError(
                f"{path}, row {lineno} (file line): {len(r)} fields, header has {len(header)}. "
                "Fix: restore the upstream file."
            )
        for h, v in zip(header, r):
            data[h].append(v)
        line_numbers.append(lineno)
    return Table(path, header, data, line_numbers)


def _check_periods(table: Table, column: str, values: np.ndarray, expected: Sequence[float]) -> None:
    exp = np.asarray(expected, dtype=float)
    if len(values) != len(exp):
        raise ModelDataError(
            f"{table.path}: column {column!r} has {len(values)} rows, expected {len(exp)} periods {list(exp)}. "
            "Fix: restore the upstream file."
        )
    for i, (v, e) in enumerate(zip(values, exp)):
        if not np.isclose(v, e, rtol=0, atol=1e-9):
            raise table.error(i, column, f"period {v} where {e} is expected (expected order {list(exp)})")


# ---------------------------------------------------------------------------------------------
# GMM-V7 tables
# ---------------------------------------------------------------------------------------------

V7_MEDIAN_COEFS = ("m0", "m1", "m2", "m3", "m4") + tuple(
    f"r{k}{x}" for k in range(4) for x in "abcd"
)
V7_AF_COLUMNS = ("Zone", "T", "a0", "a1", "b0", "b1", "a2", "b2", "a3", "Ma", "Mb", "Mref2", "Rref",
                 "f2", "f3", "s1", "s2", "xl", "xh", "AFmin", "AFmax")
#: Where NA is allowed in the V7 median table: the tanh coefficients of segment 1 (T >= 0.3 s)
#: and segment 2 (T >= 0.6 s), which the model does not use there (docs/model-chain.md §3.1).
V7_NA_ALLOWED = {"r1c": 0.3, "r1d": 0.3, "r2c": 0.6, "r2d": 0.6}


@dataclass(frozen=True)
class GMMV7Tables:
    """GMM-V7 coefficients as arrays.

    Attributes
    ----------
    periods
        The 10 spectral periods. [s]
    median
        ``coef -> array (4 median levels, 10 periods)``; NA (unused) tanh coefficients are 0.
    tau
        Between-event sd per tau level, shape (3, 10). [ln units]
    phi_ss
        Single-station within-event sd per level, shape (2, 10). [ln units]
    p2p
        Period-to-period correlation matrix, (10, 10).
    zones
        Zone ids (ID_V6), sorted, shape (160,).
    af
        ``coef -> array (n_zones, 10 periods)`` of the site-amplification model.
    sha256
        Relative file path -> SHA-256 of each file read.
    """

    periods: np.ndarray
    median: dict[str, np.ndarray]
    tau: np.ndarray
    phi_ss: np.ndarray
    p2p: np.ndarray
    zones: np.ndarray
    af: dict[str, np.ndarray]
    sha256: dict[str, str]


def _read_median_levels(table: Table, coefs: Sequence[str], n_levels: int, periods: np.ndarray,
                        na_allowed: Mapping[str, float] | None = None) -> dict[str, np.ndarray]:
    out = {}
    for c in coefs:
        arr = np.empty((n_levels, len(periods)))
        for k in range(n_levels):
            col = f"{c}_level{k + 1}"
            na_from = (na_allowed or {}).get(c)
            vals = table.floats(col, na_ok=na_from is not None)
            if na_from is not None:
                bad = np.isnan(vals) & (periods < na_from - 1e-12)
                if bad.any():
                    i = int(np.flatnonzero(bad)[0])
                    raise table.error(i, col, f"NA at T = {periods[i]} s, where the coefficient is used (T < {na_from} s)")
                vals = np.where(np.isnan(vals), 0.0, vals)
            arr[k] = vals
        out[c] = arr
    return out


def _read_af(table: Table, columns: Sequence[str], period_col: str, periods: Sequence[float],
             exclude_periods: Sequence[float] = ()) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """AF table -> (zones, coef -> (n_zones, n_periods)); checks every zone has every period once."""
    zone = table.floats("Zone")
    T = table.floats(period_col)
    if np.any(zone != np.round(zone)):
        i = int(np.flatnonzero(zone != np.round(zone))[0])
        raise table.error(i, "Zone", f"zone id {zone[i]} is not an integer")
    keep = ~np.isin(np.round(T, 9), np.round(np.asarray(exclude_periods, float), 9))
    per = np.asarray(periods, dtype=float)
    ip = np.full(len(T), -1)
    for j, p in enumerate(per):
        ip[np.isclose(T, p, rtol=0, atol=1e-9)] = j
    bad = keep & (ip < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise table.error(i, period_col, f"unexpected period {T[i]} s (expected {list(per)})")
    zones = np.unique(zone[keep]).astype(np.int64)
    iz = np.searchsorted(zones, zone.astype(np.int64))
    seen = np.zeros((len(zones), len(per)), dtype=np.int64)
    np.add.at(seen, (iz[keep], ip[keep]), 1)
    if np.any(seen > 1):
        z, p = np.argwhere(seen > 1)[0]
        rows = np.flatnonzero(keep & (iz == z) & (ip == p))
        raise table.error(int(rows[1]), "T", f"zone {zones[z]} period {per[p]} s appears more than once")
    if np.any(seen == 0):
        z, p = np.argwhere(seen == 0)[0]
        raise ModelDataError(
            f"{table.path}: zone {zones[z]} has no row for period {per[p]} s (column {period_col!r}). "
            "Fix: restore the upstream file."
        )
    if len(zones) != N_ZONES:
        raise ModelDataError(f"{table.path}: {len(zones)} zones, expected {N_ZONES} (column 'Zone')")
    lakes = [z for z in LAKE_ZONES if z in zones]
    if lakes:
        raise ModelDataError(f"{table.path}: lake zones {lakes} have coefficients; the upstream table has none")
    out = {}
    for c in columns:
        if c in ("Zone", period_col):
            continue
        v = table.floats(c)
        a = np.empty((len(zones), len(per)))
        a[iz[keep], ip[keep]] = v[keep]
        out[c] = a
    return zones, out


def _read_p2p(table: Table, periods: Sequence[float]) -> np.ndarray:
    cols = table.columns[1:]
    rows_T = table.floats(table.columns[0])
    _check_periods(table, table.columns[0], rows_T, periods)
    try:
        col_T = np.array([float(c) for c in cols])
    except ValueError:
        raise ModelDataError(f"{table.path}, row 1 (header): period column names {list(cols)} are not numbers") from None
    if len(col_T) != len(periods) or not np.allclose(col_T, periods, rtol=0, atol=1e-9):
        raise ModelDataError(f"{table.path}, row 1 (header): period columns {list(col_T)}, expected {list(periods)}")
    C = np.column_stack([table.floats(c) for c in cols])
    if not np.allclose(C, C.T, atol=1e-8) or not np.allclose(np.diag(C), 1.0):
        raise ModelDataError(f"{table.path}: correlation matrix is not symmetric with unit diagonal")
    if np.linalg.eigvalsh(C).min() <= 0:
        raise ModelDataError(f"{table.path}: correlation matrix is not positive definite")
    return C


def _rel_sha(model_dir: Path, version: str, roles: Iterable[str]) -> dict[str, str]:
    out = {}
    for r in roles:
        rel, _ = MODEL_FILES[version][r]
        out[rel] = _file_sha(model_dir / rel)
    return out


@functools.lru_cache(maxsize=8)
def _load_gmm_v7_cached(path: str, verify: bool) -> GMMV7Tables:
    d = Path(path)
    f_med = model_file(d, "V7", "gmm_median", verify)
    f_sig = model_file(d, "V7", "gmm_sigma", verify)
    f_af = model_file(d, "V7", "gmm_af", verify)
    f_p2p = model_file(d, "V7", "gmm_p2p", verify)

    t = read_table(f_med, ["periods"] + [f"{c}_level{k}" for c in V7_MEDIAN_COEFS for k in range(1, 5)])
    periods = t.floats("periods")
    _check_periods(t, "periods", periods, V7_PERIODS)
    median = _read_median_levels(t, V7_MEDIAN_COEFS, 4, periods, V7_NA_ALLOWED)

    t = read_table(f_sig, ["periods", "tau_level1", "tau_level2", "tau_level3", "phi_ss_level1", "phi_ss_level2"])
    _check_periods(t, "periods", t.floats("periods"), V7_PERIODS)
    tau = np.stack([t.floats(f"tau_level{k}") for k in (1, 2, 3)])
    phi_ss = np.stack([t.floats(f"phi_ss_level{k}") for k in (1, 2)])
    if np.any(tau <= 0) or np.any(phi_ss <= 0):
        raise ModelDataError(f"{f_sig}: non-positive standard deviation")

    t = read_table(f_af, V7_AF_COLUMNS)
    zones, af = _read_af(t, V7_AF_COLUMNS, "T", V7_PERIODS)
    if np.any(af["f3"] <= 0) or np.any(af["xl"] <= 0) or np.any(af["xh"] <= af["xl"]):
        raise ModelDataError(f"{f_af}: f3, xl must be > 0 and xh > xl (columns 'f3', 'xl', 'xh')")
    if np.any(af["AFmin"] <= 0) or np.any(af["AFmax"] < af["AFmin"]):
        raise ModelDataError(f"{f_af}: need 0 < AFmin <= AFmax (columns 'AFmin', 'AFmax')")

    p2p = _read_p2p(read_table(f_p2p), V7_PERIODS)
    sha = _rel_sha(d, "V7", ("gmm_median", "gmm_sigma", "gmm_af", "gmm_p2p"))
    return GMMV7Tables(np.asarray(V7_PERIODS), median, tau, phi_ss, p2p, zones, af, sha)


def load_gmm_v7_tables(model_dir: str | os.PathLike | None = None, verify: bool = True) -> GMMV7Tables:
    """Read and check the four GMM-V7 tables (medians, sigmas, site amplification, p2p correlation).

    Checks: SHA-256 (unless ``verify=False``), columns, the 10 periods in order, NA only where the
    model does not use the coefficient, 160 zones each with the 10 periods, positive sigmas, a
    positive-definite correlation matrix. Errors name file, row and column. Cached per directory.
    """
    return _load_gmm_v7_cached(str(resolve_model_dir(model_dir).resolve()), bool(verify))


# ---------------------------------------------------------------------------------------------
# GMM-V6 tables
# ---------------------------------------------------------------------------------------------

V6_MEDIAN_COEFS = ("m0", "m1", "m2", "m3", "m4", "m5", "r0", "r1", "r2", "r3", "r4", "r5")
V6_AF_COLUMNS = ("Zone", "T", "a0", "a1", "b0", "b1", "M1", "M2", "d", "f2", "f3", "phiS2S_1",
                 "phi_S2S_2", "Sa_low", "Sa_high", "Afmin", "Afmax")


@dataclass(frozen=True)
class GMMV6Tables:
    """GMM-V6 coefficients (spectral periods only; the PGV rows are read and dropped).

    ``median``: coef -> (4 levels, 23 periods); ``tau``: (4, 23) tied to the median levels;
    ``phi_ss``: (2, 23); ``p2p``: (23, 23); ``af``: coef -> (160 zones, 23 periods).
    """

    periods: np.ndarray
    median: dict[str, np.ndarray]
    tau: np.ndarray
    phi_ss: np.ndarray
    p2p: np.ndarray
    zones: np.ndarray
    af: dict[str, np.ndarray]
    sha256: dict[str, str]


@functools.lru_cache(maxsize=8)
def _load_gmm_v6_cached(path: str, verify: bool) -> GMMV6Tables:
    d = Path(path)
    f_med = model_file(d, "V6", "gmm_median", verify)
    f_sig = model_file(d, "V6", "gmm_sigma", verify)
    f_af = model_file(d, "V6", "gmm_af", verify)
    f_p2p = model_file(d, "V6", "gmm_p2p", verify)
    all_periods = (V6_PGV_CODE_MEDIAN,) + V6_PERIODS

    t = read_table(f_med, ["periods"] + [f"{c}_level{k}" for c in V6_MEDIAN_COEFS for k in range(1, 5)])
    T = t.floats("periods")
    _check_periods(t, "periods", T, all_periods)
    full = _read_median_levels(t, V6_MEDIAN_COEFS, 4, T)
    median = {c: v[:, 1:] for c, v in full.items()}

    t = read_table(f_sig, ["periods"] + [f"tau_level{k}" for k in (1, 2, 3, 4)] + ["phi_ss_level1", "phi_ss_level2"])
    T = t.floats("periods")
    _check_periods(t, "periods", T, all_periods)
    tau = np.stack([t.floats(f"tau_level{k}") for k in (1, 2, 3, 4)])[:, 1:]
    phi_ss = np.stack([t.floats(f"phi_ss_level{k}") for k in (1, 2)])[:, 1:]

    t = read_table(f_af, V6_AF_COLUMNS)
    zones, af = _read_af(t, V6_AF_COLUMNS, "T", V6_PERIODS, exclude_periods=(V6_PGV_CODE_AF,))
    if np.any(af["f3"] <= 0) or np.any(af["Sa_low"] <= 0) or np.any(af["Sa_high"] <= af["Sa_low"]):
        raise ModelDataError(f"{f_af}: f3, Sa_low must be > 0 and Sa_high > Sa_low")

    p2p = _read_p2p(read_table(f_p2p), V6_PERIODS)
    sha = _rel_sha(d, "V6", ("gmm_median", "gmm_sigma", "gmm_af", "gmm_p2p"))
    return GMMV6Tables(np.asarray(V6_PERIODS), median, tau, phi_ss, p2p, zones, af, sha)


def load_gmm_v6_tables(model_dir: str | os.PathLike | None = None, verify: bool = True) -> GMMV6Tables:
    """Read and check the four GMM-V6 tables (see :func:`load_gmm_v7_tables`)."""
    return _load_gmm_v6_cached(str(resolve_model_dir(model_dir).resolve()), bool(verify))


# ---------------------------------------------------------------------------------------------
# FCM tables (raw; the model is assembled in fragility.groningen)
# ---------------------------------------------------------------------------------------------

FRAGILITY_COLUMNS = ("structural_system", "T1", "T2", "b0", "b1", "b2", "b3", "sigma", "DL_DS2", "DL_DS3",
                     "DL_DS4", "DL_CS1", "DL_CS2", "DL_CS3", "Median_PGA_chf", "beta_chf")
FATALITY_COLUMNS = ("structural_system", "Pd_inside|CS1", "Pd_inside|CS2", "Pd_inside|CS3", "Pd_outside|CS1",
                    "Pd_outside|CS2", "Pd_outside|CS3", "Median_PGA_chd", "beta_chd")


@dataclass(frozen=True)
class FCMTables:
    """Raw FCM tables of one version: per branch (Lower/Middle/Upper) column arrays by class."""

    version: str
    classes: tuple[str, ...]
    fragility: dict[str, dict[str, np.ndarray]]
    fatality: dict[str, dict[str, np.ndarray]]
    sha256: dict[str, str]


def _read_fcm_table(path: Path, columns: Sequence[str], classes: tuple[str, ...] | None) -> tuple[tuple[str, ...], dict[str, np.ndarray]]:
    t = read_table(path, columns)
    names = tuple(s.strip() for s in t.strings("structural_system"))
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ModelDataError(f"{path}: duplicate structural_system {dup} (column 'structural_system')")
    if classes is not None and names != classes:
        raise ModelDataError(
            f"{path}: structural_system column lists {len(names)} classes that differ from the Middle branch "
            f"file's ({len(classes)}); first difference: "
            f"{next(((a, b) for a, b in zip(names, classes) if a != b), (len(names), len(classes)))}"
        )
    out = {c: t.floats(c) for c in columns if c != "structural_system"}
    return names, out


@functools.lru_cache(maxsize=8)
def _load_fcm_cached(path: str, version: str, verify: bool) -> FCMTables:
    d = Path(path)
    frag: dict[str, dict[str, np.ndarray]] = {}
    fat: dict[str, dict[str, np.ndarray]] = {}
    classes = None
    for br in ("Middle", "Lower", "Upper"):
        f = model_file(d, version, f"fragility_{br}", verify)
        classes, frag[br] = _read_fcm_table(f, FRAGILITY_COLUMNS, classes)
        f = model_file(d, version, f"fatality_{br}", verify)
        _, fat[br] = _read_fcm_table(f, FATALITY_COLUMNS, classes)
    for br in FCM_BRANCHES:
        fr = frag[br]
        f = model_file(d, version, f"fragility_{br}", False)
        if np.any(fr["b1"] <= 0) or np.any(fr["sigma"] <= 0):
            raise ModelDataError(f"{f}: b1 and sigma must be > 0 (columns 'b1', 'sigma')")
        for c in ("DL_DS2", "DL_DS3", "DL_DS4", "DL_CS1", "DL_CS2", "DL_CS3"):
            if np.any(fr[c] <= 0):
                i = int(np.flatnonzero(fr[c] <= 0)[0])
                raise ModelDataError(f"{f}, class {classes[i]}, column {c!r}: displacement limit must be > 0")
        for c in FATALITY_COLUMNS[1:7]:
            v = fat[br][c]
            if np.any((v < 0) | (v > 1)):
                i = int(np.flatnonzero((v < 0) | (v > 1))[0])
                ff = model_file(d, version, f"fatality_{br}", False)
                raise ModelDataError(f"{ff}, class {classes[i]}, column {c!r}: probability {v[i]} outside [0, 1]")
    roles = [f"{k}_{b}" for k in ("fragility", "fatality") for b in FCM_BRANCHES]
    return FCMTables(version, classes, frag, fat, _rel_sha(d, version, roles))


def load_fcm_tables(version: str, model_dir: str | os.PathLike | None = None, verify: bool = True) -> FCMTables:
    """Read and check the six FCM CSVs (3 fragility + 3 fatality branches) of ``"V6"`` or ``"V7"``."""
    if version not in ("V6", "V7"):
        raise ModelDataError(f"FCM tables exist for V6 and V7, not {version!r}")
    return _load_fcm_cached(str(resolve_model_dir(model_dir).resolve()), version, bool(verify))


def load_tno2020_conversion(model_dir: str | os.PathLike | None = None, verify: bool = True) -> tuple[dict[str, dict], dict[str, str]]:
    """Read ``TNO2020/conversie_v3.yaml``: class -> rules, and its SHA-256.

    Each entry must have ``namklasse``, ``modelonzekerheid`` (> 0), ``base`` in {v6, v7} and the
    yes/no switches ``frag_up2mid``, ``frag_med_shift``, ``conseq_up2mid``.
    """
    import yaml

    f = model_file(model_dir, "TNO2020", "conversion", verify)
    with open(f, encoding="utf-8-sig") as fh:
        raw = yaml.safe_load(fh)
    if not isinstance(raw, dict):
        raise ModelDataError(f"{f}: expected a mapping of class -> rules")
    out = {}
    for key, rule in raw.items():
        if not isinstance(rule, dict):
            raise ModelDataError(f"{f}, entry {key!r}: expected a mapping")
        for k in ("namklasse", "modelonzekerheid", "base", "frag_up2mid", "frag_med_shift", "conseq_up2mid"):
            if k not in rule:
                raise ModelDataError(f"{f}, entry {key!r}: missing key {k!r}")
        if str(rule["base"]).lower() not in ("v6", "v7"):
            raise ModelDataError(f"{f}, entry {key!r}, key 'base': {rule['base']!r} is not v6 or v7")
        for k in ("frag_up2mid", "frag_med_shift", "conseq_up2mid"):
            v = rule[k]
            if isinstance(v, bool):
                v = "yes" if v else "no"
            if str(v).lower() not in ("yes", "no"):
                raise ModelDataError(f"{f}, entry {key!r}, key {k!r}: {v!r} is not yes/no")
            rule[k] = str(v).lower()
        if not float(rule["modelonzekerheid"]) > 0:
            raise ModelDataError(f"{f}, entry {key!r}, key 'modelonzekerheid': must be > 0")
        out[str(rule["namklasse"])] = dict(rule, base=str(rule["base"]).lower(),
                                            modelonzekerheid=float(rule["modelonzekerheid"]))
    rel, _ = MODEL_FILES["TNO2020"]["conversion"]
    return out, {rel: _file_sha(Path(f))}
