"""`hra report`: one self-contained HTML file of a run (jinja2 template, matplotlib figures as base64 PNG).

Sections: provenance (package, git, config hash, model tables and their hashes, config, seed,
realisations, timings), buildings per risk category and year, risk profiles by deciding year,
maps of the mean and P90 LPR (RD New axes, log colour scale, the norm marked on the colour bar
and buildings above it ringed), the LPR distribution, the top buildings (with an explanation
line from :func:`hra.explain` where that is available) and, with ``compare_with``, the
comparison with an earlier run (:func:`hra.review.compare.compare`). Nothing is loaded from the
network: the styles are inline and the images are ``data:`` URIs.
"""

from __future__ import annotations

import base64
import datetime as _dt
import io
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

import hra.core.fileio as fileio
from hra.review.info import provenance_rows
from hra.review.tables import CATEGORIES, norm_of, open_run, profiles, provenance_of, risk_category, statistics

log = logging.getLogger("hra")

TEMPLATE_DIR = Path(__file__).parent / "templates"
CATEGORY_LABELS = {"mean": "mean > norm", "p90_only": "P90 > norm only", "neither": "neither"}


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), constrained_layout=True)
    FigureCanvasAgg(fig)
    return fig


def lpr_maps(ds: xr.Dataset, year: int) -> str:
    """Maps of mean and P90 LPR in ``year``: RD New axes [m], log colour scale, norm on the colour bar."""
    from matplotlib.colors import LogNorm

    norm = norm_of(ds)
    stats = [s for s in ("lpr_mean", "lpr_p90") if s in ds]
    fig = _figure(5.2 * len(stats), 5.0)
    axes = fig.subplots(1, len(stats), squeeze=False)[0]
    x, y = ds["x_rd"].values, ds["y_rd"].values
    vals = {s: ds[s].sel(year=year).values for s in stats}
    pos = np.concatenate([v[v > 0] for v in vals.values()]) if vals else np.array([])
    lo = max(float(pos.min()) if pos.size else norm * 1e-4, norm * 1e-4)
    hi = max(float(pos.max()) if pos.size else norm * 10, norm * 10)
    cn = LogNorm(vmin=lo, vmax=hi)
    for ax, s in zip(axes, stats):
        v = np.clip(vals[s], lo, None)
        order = np.argsort(v)
        sc = ax.scatter(x[order], y[order], c=v[order], norm=cn, cmap="viridis", s=12, linewidths=0)
        above = vals[s] > norm
        if above.any():
            ax.scatter(x[above], y[above], facecolors="none", edgecolors="red", s=40, linewidths=1.0,
                       label=f"above the norm ({int(above.sum())})")
            ax.legend(loc="lower left", fontsize=8)
        ax.set_title(f"{'mean' if s == 'lpr_mean' else 'P90'} LPR {year}")
        ax.set_xlabel("x RD New (EPSG:28992) [m]")
        ax.set_ylabel("y RD New [m]")
        ax.set_aspect("equal", adjustable="datalim")
        ax.ticklabel_format(style="plain", useOffset=False)
        ax.tick_params(axis="x", labelrotation=30)
        cb = fig.colorbar(sc, ax=ax, shrink=0.8)
        cb.set_label(f"LPR [per year]; red line: norm {norm:g}")
        cb.ax.axhline(norm, color="red", lw=2.5)
    return _png(fig)


def lpr_distribution(ds: xr.Dataset, year: int) -> str:
    """Histogram of log10 LPR (mean, P50, P90) in ``year`` with the norm marked."""
    norm = norm_of(ds)
    fig = _figure(8, 3.6)
    ax = fig.subplots()
    vals = {s: ds[s].sel(year=year).values for s in statistics(ds) if s in ("lpr_mean", "lpr_p50", "lpr_p90")}
    pos = np.concatenate([v[v > 0] for v in vals.values()])
    if pos.size:
        lo, hi = np.floor(np.log10(pos.min())), np.ceil(np.log10(max(pos.max(), norm * 10)))
        bins = np.linspace(lo, hi, int((hi - lo) * 8) + 1)
        for s, v in vals.items():
            ax.hist(np.log10(v[v > 0]), bins=bins, histtype="step", lw=1.5,
                    label={"lpr_mean": "mean", "lpr_p50": "P50", "lpr_p90": "P90"}[s])
    ax.axvline(np.log10(norm), color="red", ls="--", label=f"norm {norm:g}")
    ax.set_xlabel("log10 LPR [per year]")
    ax.set_ylabel("buildings")
    ax.set_title(f"Distribution of LPR over the buildings, {year}")
    ax.legend(fontsize=8)
    return _png(fig)


def category_table(ds: xr.Dataset) -> list[dict[str, Any]]:
    norm = norm_of(ds)
    mean = ds["lpr_mean"].transpose("building", "year").values
    p90 = ds["lpr_p90"].transpose("building", "year").values if "lpr_p90" in ds else None
    cat = risk_category(mean, p90, norm)
    rows = []
    for k, y in enumerate(ds["year"].values):
        rows.append({"year": int(y), **{c: int((cat[:, k] == c).sum()) for c in CATEGORIES}, "buildings": int(cat.shape[0])})
    allc = risk_category(mean.max(axis=1), None if p90 is None else p90.max(axis=1), norm)
    rows.append({"year": "any year", **{c: int((allc == c).sum()) for c in CATEGORIES}, "buildings": int(cat.shape[0])})
    return rows


def profile_table(prof) -> tuple[list[str], list[dict[str, Any]]]:
    """Buildings per profile and deciding year."""
    if prof is None:
        return [], []
    from hra.policy.profiles import PROFILE_ORDER

    years = sorted(int(y) for y in prof["decisive_year"].unique())
    rows = []
    for p in PROFILE_ORDER:
        sel = prof[prof["profile"] == p]
        rows.append({"profile": p, "total": int(len(sel)),
                     "by_year": [int((sel["decisive_year"] == y).sum()) for y in years]})
    return [str(y) for y in years], rows


def _explain_lines(run: Any, ids: list[str], year: int) -> dict[str, str]:
    """One explanation line per building from :func:`hra.review.explain.explain`: one call for all
    ``ids`` (the model chain is prepared once), then building by building if that fails (a failure
    leaves a note)."""
    import hra.review.explain as _explain_mod

    explain = getattr(_explain_mod, "explain", None)
    if explain is None or not ids:
        return {}
    try:
        res = explain(run, list(ids), year=year)
        if isinstance(res, (list, tuple)) and len(res) == len(ids):
            return {i: _summarise_explanation(r, i) for i, r in zip(ids, res)}
    except Exception:  # noqa: BLE001 - fall back to one building at a time
        pass
    out: dict[str, str] = {}
    for i in ids:
        try:
            out[i] = _summarise_explanation(explain(run, [i], year=year), i)
        except Exception as exc:  # noqa: BLE001 - the report stands without it
            out[i] = f"explanation unavailable: {exc}"
    return out


def _summarise_explanation(res: Any, building: str) -> str:
    if isinstance(res, (list, tuple)) and res:
        res = res[0]
    if isinstance(res, dict) and building in res and isinstance(res[building], dict):
        res = res[building]
    if hasattr(res, "summary") and isinstance(getattr(res, "summary"), str):
        return res.summary
    if hasattr(res, "to_dict"):
        res = res.to_dict()
    if not isinstance(res, dict) or "splits" not in res:
        return str(res)[:300]
    total = float(res.get("lpr_mean") or 0.0)
    parts = []
    for name in ("magnitude", "source_cell", "typology", "state", "inside_outside"):
        rows = res["splits"].get(name) or []
        if rows:
            top = max(rows, key=lambda r: float(r.get("lpr", 0.0)))
            share = float(top.get("lpr", 0.0)) / total if total > 0 else float("nan")
            parts.append(f"{name}: {top.get('label')} ({share:.0%})")
    nodes = [(k[5:], v) for k, v in res["splits"].items() if k.startswith("node:")]
    if nodes:
        def spread(rows):
            v = [float(r.get("lpr", 0.0)) for r in rows]
            return max(v) - min(v) if v else 0.0
        k, rows = max(nodes, key=lambda kv: spread(kv[1]))
        parts.append(f"most sensitive node: {k}")
    return "; ".join(parts)


def top_buildings(ds: xr.Dataset, prof, year: int, top: int, run: Any, explain_top: int = 5) -> list[dict[str, Any]]:
    mean = ds["lpr_mean"].sel(year=year).values
    order = np.argsort(-mean, kind="stable")[:top]
    ids = [str(v) for v in ds["building_id"].values[order]]
    expl = _explain_lines(run, ids[:max(explain_top, 0)], year)
    rows = []
    for rank, (k, i) in enumerate(zip(order, ids), 1):
        r: dict[str, Any] = {"rank": rank, "id": i}
        for s in ("lpr_mean", "lpr_p50", "lpr_p90"):
            r[s] = float(ds[s].sel(year=year).values[k]) if s in ds else None
        r["municipality"] = str(ds["municipality"].values[k]) if "municipality" in ds.coords else ""
        r["zone"] = int(ds["zone"].values[k]) if "zone" in ds.coords else ""
        r["wierde"] = bool(ds["wierde"].values[k]) if "wierde" in ds.coords else ""
        if "typology_candidate" in ds.coords:
            r["typologies"] = ", ".join(f"{c} ({p:.0%})" for c, p in zip(ds["typology_candidate"].values[k],
                                                                          ds["typology_probability"].values[k]) if c)
        else:
            r["typologies"] = ""
        if prof is not None:
            r["profile"] = str(prof["profile"].iloc[k])
            r["decisive"] = f"{prof['decisive_statistic'].iloc[k].replace('lpr_', '')} {int(prof['decisive_year'].iloc[k])}"
        else:
            r["profile"], r["decisive"] = "", ""
        r["explanation"] = expl.get(i, "")
        rows.append(r)
    return rows


def comparison_context(cmp, top: int) -> dict[str, Any]:
    """What the template shows of a :class:`hra.review.compare.Comparison` (and a scatter of old vs new mean)."""
    s = cmp.summary
    b = cmp.buildings
    y = s["years"][0]
    both = b[b["status"] == "both"]
    fig = _figure(5.5, 5.0)
    ax = fig.subplots()
    xo, yn = both[f"lpr_mean_old_{y}"].to_numpy(float), both[f"lpr_mean_new_{y}"].to_numpy(float)
    ok = (xo > 0) & (yn > 0)
    ax.loglog(xo[ok], yn[ok], ".", ms=4, alpha=0.6)
    if ok.any():
        lo, hi = min(xo[ok].min(), yn[ok].min()), max(xo[ok].max(), yn[ok].max(), 2e-5)
        ax.plot([lo, hi], [lo, hi], "k-", lw=0.8)
    ax.axvline(1e-5, color="red", ls="--", lw=1)
    ax.axhline(1e-5, color="red", ls="--", lw=1)
    ax.set_xlabel(f"mean LPR {y}, OLD [per year]")
    ax.set_ylabel(f"mean LPR {y}, NEW [per year]")
    ax.set_title("Mean LPR per building: NEW against OLD")
    changed = []
    for _, r in cmp.changed.head(top).iterrows():
        def f(v):
            return "" if v != v else f"{v:+.2e}"
        changed.append({"id": r["building_id"], "category": r["category_change"], "profile": r["profile_change"],
                        "moved": bool(r["moved"]), "retyped": bool(r["retyped"]),
                        "d_mean": f(r[f"d_lpr_mean_{y}"]), "d_p90": f(r[f"d_lpr_p90_{y}"]),
                        "year": r["attr_year"], "stat": str(r["attr_statistic"]).replace("lpr_", ""),
                        "source": f(r["attr_source"]), "models": f(r["attr_models"]), "exposure": f(r["attr_exposure"]),
                        "residual": f(r["attr_residual"]), "main": r["attr_main"], "reverts": r["attr_reverts"],
                        "note": r["attr_note"]})
    return {"old": cmp.old_name, "new": cmp.new_name, "summary": s, "scatter": _png(fig), "changed": changed,
            "n_changed": int(len(cmp.changed)), "notes": cmp.notes, "year": y}


def render_report(ds: xr.Dataset, *, name: str = "run", compare=None, top: int = 20, run_ref: Any = None,
                  explain_top: int = 5) -> str:
    """The HTML text of the report (see the module docstring)."""
    import jinja2

    prov = provenance_of(ds)
    years = [int(y) for y in ds["year"].values]
    year0 = years[0]
    prof = profiles(ds)
    pyears, prows = profile_table(prof)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATE_DIR)), autoescape=jinja2.select_autoescape(["html", "j2"]),
                             trim_blocks=True, lstrip_blocks=True)
    env.filters["sci"] = lambda v: "" if v is None or v != v else f"{v:.2e}"
    ctx = {
        "name": name, "generated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "norm": norm_of(ds), "n_buildings": int(ds.sizes["building"]), "years": years, "year0": year0,
        "prov_rows": provenance_rows(prov, ds), "files": sorted((prov.get("input_sha256") or {}).items()),
        "libraries": [(k, v) for k, v in (prov.get("library_versions") or {}).items() if v],
        "config_toml": prov.get("config_toml", ""), "logic_tree": prov.get("logic_tree") or {},
        "categories": category_table(ds), "category_labels": CATEGORY_LABELS,
        "profile_years": pyears, "profile_rows": prows,
        "maps": lpr_maps(ds, year0), "distribution": lpr_distribution(ds, year0),
        "top": top_buildings(ds, prof, year0, top, run_ref if run_ref is not None else ds, explain_top),
        "has_explain": _has_explain(), "comparison": comparison_context(compare, top) if compare is not None else None,
    }
    return env.get_template("report.html.j2").render(**ctx)


def _has_explain() -> bool:
    import hra.review.explain as _explain_mod

    return getattr(_explain_mod, "explain", None) is not None


def write_report(run: xr.Dataset | str | Path, path: str | os.PathLike, *, compare_with: xr.Dataset | str | Path | None = None,
                 top: int = 20, attribute: bool = True, overwrite: bool = False, explain_top: int = 5) -> Path:
    """Write the HTML report of ``run`` (a Dataset or the path of an output of ``hra run``) to ``path`` atomically.

    Parameters
    ----------
    run
        The run to report.
    path
        The HTML file.
    compare_with
        An earlier run: adds the comparison (:func:`hra.review.compare.compare`).
    top
        Number of top buildings (by mean LPR in the first year) and changed buildings listed. [-]
    attribute
        With ``compare_with``: attribute the category changes by recomputation.
    overwrite
        Replace an existing file.
    explain_top
        The first this many top buildings get an explanation line (:func:`hra.review.explain.explain`
        recomputes each: about half a minute per building with GMM V7); 0: none. [-]

    Returns
    -------
    pathlib.Path
        The written HTML file: one self-contained page (images embedded as PNG data URIs).

    Examples
    --------
    >>> import hra
    >>> hra.write_report("risk.zarr", "report.html", compare_with="last-year/risk.zarr")  # doctest: +SKIP
    PosixPath('report.html')
    """
    from hra.outputs import check_output as _check_target

    path = Path(path)
    _check_target(path, overwrite)
    if isinstance(run, xr.Dataset):
        ds, name = run, str(run.encoding.get("source", "run"))
    else:
        ds, name = open_run(run), str(run)
    cmp = None
    if compare_with is not None:
        from hra.review.compare import compare

        cmp = compare(compare_with, ds, attribute=attribute)
        cmp.new_name = name
    html = render_report(ds, name=name, compare=cmp, top=top, run_ref=run, explain_top=explain_top)
    fileio.atomic_write(path, lambda tmp: tmp.write_text(html, encoding="utf-8"), overwrite=True)
    return path
