"""The summary a run prints: buildings per risk category and year, the highest LPRs, run time."""

from __future__ import annotations

import json
from typing import Any

from hra.cli.common import _console
from hra.core.norm import LPR_NORM_PER_YEAR

# ------------------------------------------------------------------------------------------
# summary
# ------------------------------------------------------------------------------------------


def category_counts(ds, norm: float = LPR_NORM_PER_YEAR) -> list[dict[str, Any]]:
    """Buildings per risk category and year: mean > norm; P90 > norm with mean <= norm; neither.

    The last row ("any year") uses each building's highest mean and P90 over the years.
    """
    import numpy as np

    mean = np.asarray(ds["lpr_mean"].values)
    p90 = np.asarray(ds["lpr_p90"].values) if "lpr_p90" in ds else None
    rows = []
    labels = [str(int(y)) for y in ds["year"].values] + ["any year"]
    for i, label in enumerate(labels):
        m = mean[:, i] if i < mean.shape[1] else mean.max(axis=1)
        hi = m > norm
        row = {"year": label, "buildings": int(m.size), "mean": int(hi.sum())}
        if p90 is not None:
            q = p90[:, i] if i < p90.shape[1] else p90.max(axis=1)
            row["p90_only"] = int(((q > norm) & ~hi).sum())
            row["neither"] = int((~hi & ~(q > norm)).sum())
        else:
            row["p90_only"] = None
            row["neither"] = int((~hi).sum())
        rows.append(row)
    return rows


def print_summary(ds, wall_s: float | None = None, outputs: list | None = None, console=None, top: int = 10) -> None:
    """Risk categories per year, the highest mean LPRs and the run time, as rich tables on stdout."""
    import numpy as np
    from rich.table import Table

    console = console or _console()
    norm_value = float(ds.attrs.get("norm_lpr_per_year", LPR_NORM_PER_YEAR))
    norm = _sci(norm_value)
    prov = json.loads(ds.attrs.get("provenance", "{}"))
    years = [int(y) for y in ds["year"].values]
    n = ds.sizes["building"]

    t = Table(title=f"Buildings per risk category (norm {norm} per year)", title_justify="left")
    t.add_column("year")
    t.add_column(f"mean > {norm}", justify="right")
    t.add_column(f"P90 > {norm}\n(mean ≤ {norm})", justify="right")
    t.add_column("neither", justify="right")
    t.add_column("buildings", justify="right")
    rows = category_counts(ds, norm_value)
    for i, r in enumerate(rows):
        style = "bold" if i == 0 else ("italic" if r["year"] == "any year" else None)
        t.add_row(r["year"], f"{r['mean']:,}", "n/a" if r["p90_only"] is None else f"{r['p90_only']:,}",
                  f"{r['neither']:,}", f"{r['buildings']:,}", style=style, end_section=(i == len(rows) - 2))
    console.print(t)

    mean0 = ds["lpr_mean"].values[:, 0]
    order = np.argsort(-mean0, kind="stable")[:top]
    t2 = Table(title=f"Highest mean LPR in {years[0]} [per year]", title_justify="left")
    t2.add_column("#", justify="right")
    t2.add_column("building")
    has_mun = "municipality" in ds.coords and any(str(m) for m in ds["municipality"].values[order])
    if has_mun:
        t2.add_column("municipality")
    stats = ["lpr_mean"] + [v for v in ("lpr_p50", "lpr_p90") if v in ds]
    for s in stats:
        t2.add_column(s[4:].upper() if s != "lpr_mean" else "mean", justify="right")
    ids = ds["building_id"].values
    for rank, i in enumerate(order, 1):
        cells = [str(rank), str(ids[i])]
        if has_mun:
            cells.append(str(ds["municipality"].values[i]))
        for s in stats:
            v = float(ds[s].values[i, 0])
            cells.append(f"[red]{v:.2e}[/red]" if v > norm_value else f"{v:.2e}")
        t2.add_row(*cells)
    console.print(t2)

    tim = prov.get("timings_s", {})
    order_t = ["prepare_s", "tables_s", "buildings_s"]
    keys = [k for k in order_t if k in tim] + [k for k in tim if k not in order_t and k != "total_s"
                                                and not k.endswith("_cpu_s")]
    parts = [f"{k[:-2]} {tim[k]:.1f} s" for k in keys]
    cpu_keys = [k for k in ("tables_cpu_s", "buildings_cpu_s") if k in tim]
    cpu = [f"{k[:-6]} {tim[k]:.1f} s" for k in cpu_keys + [k for k in tim if k.endswith("_cpu_s") and k not in cpu_keys]]
    if cpu:
        parts.append("CPU: " + ", ".join(cpu))
    total = tim.get("total_s", wall_s)
    line = f"run time: {total:.1f} s" if total is not None else "run time: n/a"
    if parts:
        line += " (" + ", ".join(parts) + ")"
    if tim.get("buildings_s"):
        line += f"; {n / tim['buildings_s']:,.0f} buildings/s after the tables"
    console.print(line, highlight=False, soft_wrap=True)
    if prov:
        console.print(f"{n:,} buildings, years {years[0]}-{years[-1]}, {prov.get('n_realisations', '?')} "
                      f"{prov.get('realisations', '')} realisations, seed {prov.get('seed', '?')}",
                      highlight=False, soft_wrap=True)
    for p in outputs or []:
        if p is not None:
            console.print(f"wrote {p}", highlight=False, soft_wrap=True)


def _sci(x: float) -> str:
    """1e-05 -> '1e-5' (short scientific notation for labels)."""
    import re

    s = f"{x:g}"
    return re.sub(r"e([+-])0*(\d)", lambda m: "e" + ("-" if m.group(1) == "-" else "") + m.group(2), s)
