"""Compare two runs building by building, and attribute changes of risk category to their inputs.

:func:`compare` joins two risk Datasets on ``building_id`` and reports, per building:

* ``status``: ``added`` (only in NEW), ``removed`` (only in OLD) or ``both``; ``moved`` (x/y
  differ by more than ``move_tolerance_m``, with ``moved_m`` [m]), ``retyped`` (typology
  candidates or their probabilities differ), ``zone_changed``;
* per common year Y: ``lpr_mean_old_Y``, ``lpr_mean_new_Y``, ``d_lpr_mean_Y`` and the same for
  ``lpr_p90`` [yr^-1], ``category_old_Y``, ``category_new_Y``;
* ``category_old``, ``category_new`` over all common years (highest mean and P90) and
  ``category_change`` (``"neither -> mean"``; when the category over all years stays but that
  of some year changes, the first such year: ``"neither -> p90_only in 2027"``; empty when
  unchanged); ``profile_old``,
  ``profile_new`` and ``profile_change`` (art. 4 risk profiles);
* for the buildings whose category changed in some year, an attribution: the NEW config is run
  again for just those buildings with one input of OLD swapped in at a time (``source``: the
  ``[source]`` section, rate file included; ``models``: the model preset, ``[ground_motion]``,
  ``[fragility]`` and logic-tree settings; ``exposure``: the building's record in OLD's exposure
  file). ``attr_<input>`` is the change of the deciding statistic that the input brings,
  ``NEW - NEW(with OLD's input)`` [yr^-1], at ``attr_year`` (the first year whose category
  changed; the statistic is ``attr_statistic``: the mean when the norm crossing is by the
  mean, else the P90); ``attr_residual`` is what the one-at-a-time effects leave of the total
  change (interactions); ``attr_main`` names the input with the largest effect and
  ``attr_reverts`` the inputs whose swap alone gives back OLD's category.

The configs of both runs come from their provenance (``config_toml``: the config as resolved,
absolute paths), so the input files of both runs must still exist; an attribution that cannot be
recomputed says why in ``attr_note``.
"""

from __future__ import annotations

import logging
import tempfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

import hra.core.fileio as fileio
from hra.review.tables import ReviewError, norm_of, open_run, profiles, provenance_of, risk_category

log = logging.getLogger("hra")

#: The inputs an attribution swaps, one at a time, and the config keys each stands for.
INPUTS: dict[str, tuple[str, ...]] = {
    "source": ("source",),
    "models": ("model", "ground_motion", "fragility", "logic_tree"),
    "exposure": ("exposure",),
}


@dataclass
class Comparison:
    """Result of :func:`compare`.

    Attributes
    ----------
    buildings
        One row per building of either run (see the module docstring for the columns).
    summary
        Counts: ``old``, ``new``, ``added``, ``removed``, ``moved``, ``retyped``,
        ``category_changed``, ``profile_changed``, ``transitions`` (``"old -> new"`` -> count),
        ``profile_transitions``, ``years`` (the common years) and ``attributed``.
    old_name, new_name
        Where the runs came from.
    """

    buildings: pd.DataFrame
    summary: dict[str, Any]
    old_name: str = "OLD"
    new_name: str = "NEW"
    notes: list[str] = field(default_factory=list)

    @property
    def changed(self) -> pd.DataFrame:
        """Rows of the buildings whose risk category or profile changed."""
        b = self.buildings
        return b[(b["category_change"] != "") | (b["profile_change"] != "")]

    def to_csv(self, path: str | Path, overwrite: bool = False) -> Path:
        """Write :attr:`buildings` to a CSV atomically."""
        from hra.outputs import check_output as _check_target

        path = Path(path)
        _check_target(path, overwrite)
        fileio.atomic_write(path, lambda tmp: self.buildings.to_csv(tmp, index=False, float_format="%.6e"), overwrite=True)
        return path


def _as_run(x: xr.Dataset | str | Path) -> tuple[xr.Dataset, str]:
    if isinstance(x, xr.Dataset):
        if "building" not in x.indexes:
            x = x.assign_coords(building=("building", np.asarray(x["building_id"].values, dtype=str)))
        return x, str(x.encoding.get("source", "Dataset"))
    return open_run(x), str(x)


def _typology_key(ds: xr.Dataset) -> pd.Series | None:
    if "typology_candidate" not in ds.coords:
        return None
    cand, prob = ds["typology_candidate"].values, ds["typology_probability"].values
    keys = [";".join(f"{c}:{p:.6g}" for c, p in sorted(zip(cr, pr)) if c) for cr, pr in zip(cand, prob)]
    return pd.Series(keys, index=np.asarray(ds["building_id"].values, dtype=str))


def compare(old: xr.Dataset | str | Path, new: xr.Dataset | str | Path, *, attribute: bool = True,
            move_tolerance_m: float = 1.0, rule: Any = "besluit-2019", max_attributed: int = 500) -> Comparison:
    """Compare two runs building by building (see the module docstring).

    Parameters
    ----------
    old, new
        Risk Datasets or paths of the outputs of ``hra run`` (``.zarr``/``.nc``).
    attribute
        Recompute the buildings whose category changed with one input of OLD swapped in at a time.
    move_tolerance_m
        A building counts as moved when its location differs by more than this. [m]
    rule
        Profile rule (:func:`hra.policy.profiles.load_rule`).
    max_attributed
        At most this many buildings are recomputed (the largest changes of the deciding statistic
        first). [-]

    Returns
    -------
    Comparison
        ``.buildings`` (one row per building: added/removed/moved/retyped, mean and P90 of both
        runs per year [yr^-1] and their change, categories, profiles, attribution columns),
        ``.summary``, ``.changed`` and ``.to_csv(path)``.

    Examples
    --------
    >>> import hra
    >>> cmp = hra.compare("old/risk.zarr", "new/risk.zarr")  # doctest: +SKIP
    >>> cmp.changed[["building", "category_old", "category_new", "attr_main"]]  # doctest: +SKIP
    """
    ds_o, name_o = _as_run(old)
    ds_n, name_n = _as_run(new)
    ids_o = np.asarray(ds_o["building_id"].values, dtype=str)
    ids_n = np.asarray(ds_n["building_id"].values, dtype=str)
    for ids, name in ((ids_o, name_o), (ids_n, name_n)):
        if len(set(ids)) != ids.size:
            raise ReviewError(f"{name}: building ids are not unique; compare needs one row per building")
    years = sorted(set(int(y) for y in ds_o["year"].values) & set(int(y) for y in ds_n["year"].values))
    notes: list[str] = []
    if not years:
        raise ReviewError(f"{name_o} and {name_n} have no year in common; compare runs of overlapping years")
    norm = norm_of(ds_n)
    all_ids = list(ids_n) + [i for i in ids_o if i not in set(ids_n)]
    in_o, in_n = set(ids_o), set(ids_n)
    df = pd.DataFrame({"building_id": all_ids})
    df["status"] = ["both" if (i in in_o and i in in_n) else ("added" if i in in_n else "removed") for i in all_ids]

    def per(ds: xr.Dataset, col: str, fill: Any) -> np.ndarray:
        s = pd.Series(ds[col].values, index=np.asarray(ds["building_id"].values, dtype=str)) if col in ds.coords else None
        return np.asarray([fill if s is None or i not in s.index else s[i] for i in all_ids], dtype=object)

    xo, yo = per(ds_o, "x_rd", np.nan).astype(float), per(ds_o, "y_rd", np.nan).astype(float)
    xn, yn = per(ds_n, "x_rd", np.nan).astype(float), per(ds_n, "y_rd", np.nan).astype(float)
    df["x_rd"] = np.where(np.isnan(xn), xo, xn)
    df["y_rd"] = np.where(np.isnan(yn), yo, yn)
    dist = np.hypot(xn - xo, yn - yo)
    df["moved_m"] = dist
    df["moved"] = np.nan_to_num(dist, nan=0.0) > move_tolerance_m
    for c in ("municipality", "zone"):
        df[f"{c}_old"] = per(ds_o, c, None)
        df[f"{c}_new"] = per(ds_n, c, None)
    both = (df["status"] == "both").to_numpy()
    df["zone_changed"] = both & np.asarray([a != b for a, b in zip(df["zone_old"], df["zone_new"])])
    to, tn = _typology_key(ds_o), _typology_key(ds_n)
    if to is not None and tn is not None:
        df["typologies_old"] = [to.get(i, "") for i in all_ids]
        df["typologies_new"] = [tn.get(i, "") for i in all_ids]
        df["retyped"] = both & (df["typologies_old"] != df["typologies_new"]).to_numpy()
    else:
        df["retyped"] = False
        notes.append("typology candidates are not recorded in both runs: retyped buildings are not detected")

    def stat(ds: xr.Dataset, var: str) -> np.ndarray:
        out = np.full((len(all_ids), len(years)), np.nan)
        if var not in ds:
            return out
        v = ds[var].transpose("building", "year").sel(year=years).values
        pos = {b: k for k, b in enumerate(np.asarray(ds["building_id"].values, dtype=str))}
        for r, i in enumerate(all_ids):
            if i in pos:
                out[r] = v[pos[i]]
        return out

    m_o, m_n = stat(ds_o, "lpr_mean"), stat(ds_n, "lpr_mean")
    p_o, p_n = stat(ds_o, "lpr_p90"), stat(ds_n, "lpr_p90")
    has_p90 = "lpr_p90" in ds_o and "lpr_p90" in ds_n
    c_o = risk_category(m_o, p_o if has_p90 else None, norm)
    c_n = risk_category(m_n, p_n if has_p90 else None, norm)
    c_o[~np.isfinite(m_o)] = ""
    c_n[~np.isfinite(m_n)] = ""
    for k, y in enumerate(years):
        df[f"lpr_mean_old_{y}"] = m_o[:, k]
        df[f"lpr_mean_new_{y}"] = m_n[:, k]
        df[f"d_lpr_mean_{y}"] = m_n[:, k] - m_o[:, k]
        df[f"lpr_p90_old_{y}"] = p_o[:, k]
        df[f"lpr_p90_new_{y}"] = p_n[:, k]
        df[f"d_lpr_p90_{y}"] = p_n[:, k] - p_o[:, k]
        df[f"category_old_{y}"] = c_o[:, k]
        df[f"category_new_{y}"] = c_n[:, k]
    import warnings

    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        cat_o = risk_category(np.nanmax(m_o, axis=1), np.nanmax(p_o, axis=1) if has_p90 else None, norm)
        cat_n = risk_category(np.nanmax(m_n, axis=1), np.nanmax(p_n, axis=1) if has_p90 else None, norm)
    cat_o[df["status"] == "added"] = ""
    cat_n[df["status"] == "removed"] = ""
    df["category_old"], df["category_new"] = cat_o, cat_n
    year_changed = both[:, None] & (c_o != c_n)
    first = year_changed.argmax(axis=1)
    df["category_change"] = [
        "" if not (both[r] and year_changed[r].any()) else
        (f"{cat_o[r]} -> {cat_n[r]}" if cat_o[r] != cat_n[r] else
         f"{c_o[r, first[r]]} -> {c_n[r, first[r]]} in {years[first[r]]}")
        for r in range(len(all_ids))]
    pr_o, pr_n = profiles(ds_o, rule), profiles(ds_n, rule)
    prof_o = dict(zip(pr_o["building_id"], pr_o["profile"])) if pr_o is not None else {}
    prof_n = dict(zip(pr_n["building_id"], pr_n["profile"])) if pr_n is not None else {}
    df["profile_old"] = [prof_o.get(i, "") for i in all_ids]
    df["profile_new"] = [prof_n.get(i, "") for i in all_ids]
    df["profile_change"] = np.where(both & (df["profile_old"] != df["profile_new"]).to_numpy()
                                    & (df["profile_old"] != "").to_numpy() & (df["profile_new"] != "").to_numpy(),
                                    [f"{a} -> {b}" for a, b in zip(df["profile_old"], df["profile_new"])], "")
    for c in ("attr_year", "attr_statistic", "attr_main", "attr_reverts", "attr_note"):
        df[c] = ""
    for name in INPUTS:
        df[f"attr_{name}"] = np.nan
    df["attr_residual"] = np.nan
    attributed = 0
    if attribute and year_changed.any():
        attributed = _attribute(df, ds_o, ds_n, years, year_changed, norm, max_attributed, notes)
    summary = _summary(df, len(ids_o), len(ids_n), years, attributed)
    return Comparison(df, summary, name_o, name_n, notes)


def _summary(df: pd.DataFrame, n_old: int, n_new: int, years: list[int], attributed: int) -> dict[str, Any]:
    both = df["status"] == "both"
    tr = df.loc[df["category_change"] != "", "category_change"].value_counts()
    ptr = df.loc[df["profile_change"] != "", "profile_change"].value_counts()
    per_year = {}
    for y in years:
        ch = both & (df[f"category_old_{y}"] != df[f"category_new_{y}"])
        per_year[y] = {f"{a} -> {b}": int(n) for (a, b), n in
                       df[ch].groupby([f"category_old_{y}", f"category_new_{y}"]).size().items()}
    return {
        "old": n_old, "new": n_new, "added": int((df["status"] == "added").sum()),
        "removed": int((df["status"] == "removed").sum()), "moved": int((both & df["moved"]).sum()),
        "retyped": int((both & df["retyped"]).sum()), "zone_changed": int(df["zone_changed"].sum()),
        "category_changed": int((df["category_change"] != "").sum()),
        "profile_changed": int((df["profile_change"] != "").sum()),
        "transitions": {str(k): int(v) for k, v in tr.items()},
        "profile_transitions": {str(k): int(v) for k, v in ptr.items()},
        "transitions_per_year": per_year, "years": years, "attributed": attributed,
    }


# ------------------------------------------------------------------------------------------
# attribution by recomputation
# ------------------------------------------------------------------------------------------


def run_config(ds: xr.Dataset, where: str) -> dict[str, Any]:
    """The resolved config of a run (from ``provenance.config_toml``) as a mapping."""
    prov = provenance_of(ds)
    text = prov.get("config_toml")
    if not text:
        raise ReviewError(f"{where}: its provenance has no config_toml (written by an older hra); rerun it to compare "
                          "with attribution, or pass attribute=False (--no-attribution)")
    return tomllib.loads(text)


def _exposure_rows(path: Path, ids: list[str]) -> pd.DataFrame:
    """The rows of ``ids`` of an exposure CSV (plain layout or EDB), as text, sorted by id."""
    raw = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    col = "id" if "id" in raw.columns else ("bag_building_id" if "bag_building_id" in raw.columns else None)
    if col is None:
        raise ReviewError(f"{path}: no id or bag_building_id column; cannot select buildings for the attribution")
    sub = raw[raw[col].str.strip().isin(set(ids))]
    return sub.assign(_key=sub[col].str.strip()).sort_values("_key").drop(columns="_key").reset_index(drop=True)


def _subset_exposure(path: Path, ids: list[str], dest: Path) -> Path:
    """The rows of ``ids`` of an exposure CSV, written to ``dest``."""
    _exposure_rows(path, ids).to_csv(dest, index=False)
    return dest


def _same_exposure(cfg_o: dict[str, Any], cfg_n: dict[str, Any], ids: list[str]) -> bool:
    """OLD and NEW give these buildings the same exposure records and options."""
    eo, en = dict(cfg_o.get("exposure", {})), dict(cfg_n.get("exposure", {}))
    po, pn = Path(eo.pop("buildings", "")), Path(en.pop("buildings", ""))
    if eo != en or not po.is_file() or not pn.is_file():
        return False
    try:
        return _exposure_rows(po, ids).equals(_exposure_rows(pn, ids))
    except Exception:  # noqa: BLE001 - unreadable: recompute instead
        return False


def _recompute(data: dict[str, Any], ids: list[str], exposure_from: dict[str, Any], tmp: Path, tag: str,
               years: list[int]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Mean and P90 per year (common ``years``) of ``ids`` under config ``data`` with the exposure of ``exposure_from``."""
    from hra.config import config_from_dict
    from hra.integration.engine import compute

    d = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    src = Path(exposure_from["exposure"]["buildings"])
    if src.suffix.lower() not in (".csv", ".txt"):
        raise ReviewError(f"exposure {src} is not a CSV; the attribution recomputes only from CSV exposures")
    d["exposure"] = dict(exposure_from["exposure"], buildings=str(_subset_exposure(src, ids, tmp / f"buildings-{tag}.csv")))
    d["output"] = {"overwrite": False}
    d["compute"] = dict(d.get("compute", {}), workers=1, scheduler="synchronous", progress=False)
    run = dict(d["run"])
    q = list(run.get("quantiles", [0.5, 0.9]))
    if 0.9 not in q:
        q.append(0.9)
    run.update(quantiles=q, keep_realisations=False)
    d["run"] = run
    cfg = config_from_dict(d, base_dir=tmp, source=f"attribution config ({tag})")
    res = compute(cfg, progress=False)
    b_ids = [str(i) for i in res.prep.buildings.ids]
    yrs = [int(y) for y in res.prep.years]
    cols = [yrs.index(y) for y in years if y in yrs]
    iq = list(cfg.run.quantiles).index(0.9)
    return {i: (res.mean[k, cols], res.quantiles[k, cols, iq]) for k, i in enumerate(b_ids)}


def _attribute(df: pd.DataFrame, ds_o: xr.Dataset, ds_n: xr.Dataset, years: list[int], year_changed: np.ndarray,
               norm: float, max_attributed: int, notes: list[str]) -> int:
    rows = np.flatnonzero(year_changed.any(axis=1))
    first = year_changed[rows].argmax(axis=1)
    stat_of = []
    for r, k in zip(rows, first):
        y = years[k]
        a, b = df.at[r, f"category_old_{y}"], df.at[r, f"category_new_{y}"]
        stat_of.append("lpr_mean" if "mean" in (a, b) else "lpr_p90")
    size = np.asarray([abs(df.at[r, f"d_{s}_{years[k]}"]) for r, k, s in zip(rows, first, stat_of)])
    order = np.argsort(-size, kind="stable")[:max_attributed]
    if rows.size > max_attributed:
        notes.append(f"attribution limited to the {max_attributed} largest of {rows.size} category changes")
    rows, first, stat_of = rows[order], first[order], [stat_of[i] for i in order]
    ids = [str(df.at[r, "building_id"]) for r in rows]
    try:
        cfg_o = run_config(ds_o, "OLD run")
        cfg_n = run_config(ds_n, "NEW run")
    except ReviewError as exc:
        notes.append(str(exc))
        for r in rows:
            df.at[r, "attr_note"] = "no config in the provenance"
        return 0
    # NEW itself: its Dataset (results do not depend on which buildings are run together)
    base = {str(df.at[r, "building_id"]): (np.array([df.at[r, f"lpr_mean_new_{y}"] for y in years], dtype=float),
                                           np.array([df.at[r, f"lpr_p90_new_{y}"] for y in years], dtype=float))
            for r in rows}
    with tempfile.TemporaryDirectory(prefix="hra-compare-") as t:
        tmp = Path(t)
        swapped: dict[str, dict | str] = {}
        for name, keys in INPUTS.items():
            same = (_same_exposure(cfg_o, cfg_n, ids) if name == "exposure"
                    else all(cfg_o.get(k) == cfg_n.get(k) for k in keys))
            if same:
                swapped[name] = "same"
                continue
            d = dict(cfg_n)
            for k in keys:
                if k in cfg_o:
                    d[k] = cfg_o[k]
                else:
                    d.pop(k, None)
            try:
                swapped[name] = _recompute(d, ids, cfg_o if name == "exposure" else cfg_n, tmp, name, years)
            except Exception as exc:  # noqa: BLE001
                swapped[name] = f"not recomputable: {exc}"
                notes.append(f"attribution of {name}: NEW with OLD's {name} cannot be recomputed ({exc})")
        for r, k, s, i in zip(rows, first, stat_of, ids):
            y = years[k]
            df.at[r, "attr_year"] = str(y)
            df.at[r, "attr_statistic"] = s
            si = 0 if s == "lpr_mean" else 1
            v_new = float(base[i][si][k])
            total = v_new - float(df.at[r, f"{s}_old_{y}"])
            effects, reverts, note = {}, [], []
            for name in INPUTS:
                sw = swapped[name]
                if sw == "same":
                    effects[name] = 0.0
                    continue
                if isinstance(sw, str):
                    note.append(f"{name}: {sw}")
                    continue
                if i not in sw:  # the building is absent from OLD's exposure
                    note.append(f"{name}: building absent")
                    continue
                m_sw, p_sw = sw[i][0][k], sw[i][1][k]
                effects[name] = v_new - float(sw[i][si][k])
                cat_sw = risk_category(np.array([m_sw]), np.array([p_sw]), norm)[0]
                if cat_sw == df.at[r, f"category_old_{y}"]:
                    reverts.append(name)
            for name, e in effects.items():
                df.at[r, f"attr_{name}"] = e
            df.at[r, "attr_residual"] = total - sum(effects.values())
            if effects:
                df.at[r, "attr_main"] = max(effects, key=lambda n: abs(effects[n]))
            df.at[r, "attr_reverts"] = " ".join(reverts)
            df.at[r, "attr_note"] = "; ".join(note)
    return len(rows)
