"""Results files and per-building reports (Markdown with PNG figures, matplotlib Agg).

Output layout of :func:`write_results` and :func:`write_building_report` (schema in
``docs/npr9998.md``, "Output files")::

    OUT/results.json            schema "npr9998-results/1": provenance + one object per building
    OUT/results.csv             one row per building, columns npr9998.decision.RECORD_COLUMNS
    OUT/errors.csv              (batch --keep-going only) row, building_id, error
    OUT/reports/<id>/report.md  per-building report
    OUT/reports/<id>/spectrum.png, adrs.png

Every file is written atomically (temporary name, then rename). Figures use the Agg canvas
directly (no pyplot, no global backend switch), so this works on headless machines and in
threads.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import math
import re
from pathlib import Path
from typing import Sequence

import numpy as np

from npr9998._io import atomic_path, atomic_write_text
from npr9998.decision import RECORD_COLUMNS
from npr9998.spectrum import G

__all__ = ["write_results", "write_building_report", "plot_spectrum", "plot_adrs", "RESULTS_SCHEMA", "safe_name"]

RESULTS_SCHEMA = "npr9998-results/1"


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("groningen-hra")
    except Exception:  # pragma: no cover - not installed
        return "unknown"


def safe_name(building_id: str) -> str:
    """File-system safe form of a building id (letters, digits, ``._-``)."""
    s = re.sub(r"[^A-Za-z0-9._-]+", "_", str(building_id)).strip("._")
    return s or "building"


def _clean(x):
    """JSON-safe copy: non-finite floats -> None, numpy scalars -> Python, tuples -> lists."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return _clean(x.tolist())
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _csv_value(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "" if not math.isfinite(v) else repr(v)
    return str(v)


def write_results(assessments: Sequence, out_dir: str | Path, *, errors: Sequence[tuple[int | None, str, str]] = (), command: str = "") -> tuple[Path, Path]:
    """Write ``results.json`` and ``results.csv`` (and ``errors.csv`` if any) into ``out_dir``.

    Parameters
    ----------
    assessments
        :class:`npr9998.assess.BuildingAssessment` objects.
    out_dir
        Output folder (created).
    errors
        ``(row, building_id, message)`` of buildings that could not be assessed.
    command
        Command line recorded in the provenance.

    Returns
    -------
    tuple of Path
        The JSON and CSV paths.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tables = assessments[0].tables if assessments else {}
    doc = {
        "schema": RESULTS_SCHEMA,
        "generated_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "npr9998_version": _version(),
        "command": command,
        "tables": tables,
        "provisional": any(a.decision.provisional for a in assessments),
        "n_buildings": len(assessments),
        "n_errors": len(errors),
        "buildings": [a.to_dict() for a in assessments],
        "errors": [{"row": r, "building_id": b, "error": e} for r, b, e in errors],
    }
    json_path = atomic_write_text(out / "results.json", json.dumps(_clean(doc), indent=2, ensure_ascii=False) + "\n")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(RECORD_COLUMNS)
    for a in assessments:
        rec = a.to_record()
        w.writerow([_csv_value(rec[c]) for c in RECORD_COLUMNS])
    csv_path = atomic_write_text(out / "results.csv", buf.getvalue())
    if errors:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["row", "building_id", "error"])
        for r, b, e in errors:
            w.writerow(["" if r is None else r, b, e])
        atomic_write_text(out / "errors.csv", buf.getvalue())
    return json_path, csv_path


# ------------------------------------------------------------------------------------------
# figures


def _figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.4), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def plot_spectrum(assessment, path: str | Path) -> Path:
    """Elastic spectrum (and design spectrum for the lateral force method) with the demand point."""
    a = assessment
    sp = a.spectrum
    r = a.result
    t = np.linspace(0.0, max(2.5, 1.3 * sp.t_d_s), 600)
    fig = _figure()
    ax = fig.add_subplot(111)
    ax.plot(t, sp.sa_g(t), color="C0", label="elastic $S_e$ (5 %)")
    if r.method == "lateral force":
        ax.plot(t, sp.design_sa_g(t, q=r.q, beta=r.beta), color="C1", ls="--", label=f"design $S_d$ (q = {r.q:g})")
        ax.plot([r.period_s], [r.sd_g], "o", color="C3", label=f"$T_1$ = {r.period_s:.2f} s")
    else:
        ax.plot([r.t_star_s], [float(sp.sa_g(r.t_star_s))], "o", color="C3", label=f"$T^*$ = {r.t_star_s:.2f} s")
        if r.method == "capacity spectrum" and not r.elastic:
            ax.plot(t, sp.sa_g(t, damping=r.beta_eff), color="C2", ls=":", label=f"reduced, $\\beta_{{eff}}$ = {100 * r.beta_eff:.1f} %")
    for x, name in ((sp.t_b_s, "$T_B$"), (sp.t_c_s, "$T_C$"), (sp.t_d_s, "$T_D$")):
        ax.axvline(x, color="0.8", lw=0.8)
        ax.text(x, 1.01, name, transform=ax.get_xaxis_transform(), ha="center", va="bottom", fontsize=8, color="0.4")
    ax.set_xlabel("period T [s]")
    ax.set_ylabel("spectral acceleration [g]")
    rp = f"{sp.return_period_yr:g} yr" if sp.return_period_yr else ""
    ax.set_title(f"{a.building_id}: NPR spectrum {rp}, $a_{{g;S}}$ = {sp.ag_s_g:.3f} g, p = {sp.p:g}", fontsize=9, pad=14)
    ax.grid(alpha=0.3)
    ax.set_xlim(0, t[-1])
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    return _save(fig, Path(path))


def plot_adrs(assessment, path: str | Path) -> Path | None:
    """ADRS: SDOF capacity curve, bilinear idealisation, demand spectrum, performance point."""
    a = assessment
    r = a.result
    if a.curve is None or a.structure is None or r.method == "lateral force":
        return None
    sp = a.spectrum
    gam, m_star = r.gamma, r.m_star_t
    d_star = a.curve.roof_displacement_m / gam
    sa_cap = a.curve.base_shear_kn / gam / (m_star * G)
    ay = r.f_y_star_kn / (m_star * G)
    if r.method == "N2":
        d_perf, a_perf = r.performance_point_sd_m, r.performance_point_sa_g
    else:
        d_perf, a_perf = r.sd_p_star_m, r.sa_p_g
    d_max = 1.25 * max(d_star[-1], d_perf)
    t = np.linspace(1e-3, 6.0, 2000)
    sd_dem, sa_dem = sp.sd_m(t), np.asarray(sp.sa_g(t))
    keep = sd_dem <= d_max
    fig = _figure()
    ax = fig.add_subplot(111)
    ax.plot(sd_dem[keep], sa_dem[keep], color="C0", label="elastic demand (5 %)")
    if r.method == "capacity spectrum" and not r.elastic:
        sd_red = np.asarray(sp.sd_m(t, damping=r.beta_eff))
        ax.plot(sd_red[sd_red <= d_max], np.asarray(sp.sa_g(t, damping=r.beta_eff))[sd_red <= d_max], color="C2", ls=":", label=f"reduced demand, $\\beta_{{eff}}$ = {100 * r.beta_eff:.1f} %")
    ax.plot(d_star, sa_cap, color="k", lw=1.6, label="capacity (SDOF)")
    ax.plot([0, r.d_y_star_m, max(r.d_m_star_m, d_perf)], [0, ay, ay], color="C1", ls="--", label="EPP idealisation")
    # radial line of T*
    ts = r.t_star_s
    sd_line = np.array([0.0, d_max])
    ax.plot(sd_line, sd_line * (2 * np.pi / ts) ** 2 / G, color="0.6", lw=0.8, ls="-.", label=f"$T^*$ = {ts:.2f} s")
    ax.plot([d_perf], [a_perf], "o", color="C3", ms=7, label=f"performance point $d_t^*$ = {1000 * d_perf:.1f} mm")
    first = True
    for c in r.checks:
        if c.roof_displacement_capacity_m is not None:
            ax.axvline(c.roof_displacement_capacity_m / gam, color="C3", lw=0.8, ls="--", label="NC capacity / Γ" if first else None)
            first = False
    ax.set_xlim(0, d_max)
    ax.set_ylim(0, 1.15 * max(float(sa_dem[keep].max()) if keep.any() else ay, ay, a_perf))
    ax.set_xlabel("spectral displacement $S_d$ = d* [m]")
    ax.set_ylabel("spectral acceleration $S_a$ [g]")
    ax.set_title(f"{a.building_id}: ADRS ({r.method}), UC = {r.unity_check:.2f}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    return _save(fig, Path(path))


# ------------------------------------------------------------------------------------------
# Markdown report


def _fmt(v, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        s = f"{v:.4g}"
    else:
        s = str(v)
    return f"{s} {unit}".strip()


_RESULT_ROWS = {
    "N2": [
        ("gamma", "Γ (B.3)", ""),
        ("m_star_t", "m* (B.2)", "t"),
        ("f_y_star_kn", "F_y* (B.3)", "kN"),
        ("d_y_star_m", "d_y* (B.8)", "m"),
        ("d_m_star_m", "d_m* (idealised up to)", "m"),
        ("e_m_star_knm", "E_m*", "kN·m"),
        ("t_star_s", "T* (B.7)", "s"),
        ("se_t_star_g", "S_e(T*)", "g"),
        ("d_et_star_m", "d_et* (B.9)", "m"),
        ("q_u", "q_u (B.12)", ""),
        ("d_t_star_m", "d_t* (B.10/B.11)", "m"),
        ("d_t_m", "d_t = Γ d_t*", "m"),
        ("regime", "regime", ""),
        ("capped", "3 d_et* cap applied", ""),
        ("iterations", "idealisation passes", ""),
    ],
    "capacity spectrum": [
        ("procedure", "procedure", ""),
        ("behaviour_type", "ATC-40 behaviour type", ""),
        ("gamma", "Γ", ""),
        ("m_star_t", "m*", "t"),
        ("f_y_star_kn", "F_y*", "kN"),
        ("d_y_star_m", "d_y*", "m"),
        ("t_star_s", "T_0", "s"),
        ("elastic", "elastic", ""),
        ("mu", "ductility μ", ""),
        ("beta_eff", "β_eff", ""),
        ("eta", "η(β_eff)", ""),
        ("period_used_s", "T_sec / T_eff", "s"),
        ("sd_p_star_m", "d_p*", "m"),
        ("sa_p_g", "a_p", "g"),
        ("d_t_m", "d_t = Γ d_p*", "m"),
        ("beyond_curve", "beyond the pushover curve", ""),
    ],
    "lateral force": [
        ("period_s", "T_1", "s"),
        ("q", "q", ""),
        ("beta", "β (lower bound)", ""),
        ("sd_g", "S_d(T_1)", "g"),
        ("lambda_factor", "λ", ""),
        ("total_mass_t", "m", "t"),
        ("f_b_kn", "F_b = S_d m λ", "kN"),
        ("base_shear_capacity_kn", "V_R", "kN"),
        ("applicable", "T_1 <= min(4 T_C, 2 s)", ""),
    ],
}


def write_building_report(assessment, out_dir: str | Path) -> Path:
    """Write ``report.md``, ``spectrum.png`` and ``adrs.png`` for one building.

    Parameters
    ----------
    assessment
        A :class:`npr9998.assess.BuildingAssessment`.
    out_dir
        Folder of the reports; the files go to ``out_dir/<building id>/``.

    Returns
    -------
    Path
        The ``report.md`` path.
    """
    a = assessment
    d = a.decision
    r = a.result
    folder = Path(out_dir) / safe_name(a.building_id)
    folder.mkdir(parents=True, exist_ok=True)
    plot_spectrum(a, folder / "spectrum.png")
    adrs = plot_adrs(a, folder / "adrs.png")
    L: list[str] = [f"# NPR 9998 assessment of building {a.building_id}", ""]
    if d.provisional or d.decision_illustrative or d.catalogue_illustrative:
        L += [
            "> **NOT A NORMBESLUIT.** "
            + ("The NPR 9998 tables used are PROVISIONAL stand-ins. " if d.provisional else "")
            + ("The decision tables (bands, budgets, terms) are ILLUSTRATIVE. " if d.decision_illustrative else "")
            + ("The typology catalogue is ILLUSTRATIVE. " if d.catalogue_illustrative else ""),
            "",
        ]
    L += [
        "## Outcome",
        "",
        "| item | value |",
        "|---|---|",
        f"| verdict | **{d.verdict}** |",
        f"| basis | {d.basis} |",
        f"| unity check (demand / capacity) | {_fmt(d.unity_check)} |",
        f"| governing check | {d.governing or '-'} |",
        f"| category of measures | {(d.category + ': ' + d.category_label) if d.category else '-'} |",
        f"| budget bandwidth | {'-' if not d.category else f'EUR {d.budget_low_eur:,.0f} - {d.budget_high_eur:,.0f} ({d.budget_basis})'} |",
        f"| term | {_fmt(d.term_years, 'yr')} |",
        f"| typology approach | {('yes (' + d.typology + ')') if d.typology_approach else 'no'} |",
    ]
    if d.standard_measures:
        L += [f"| standard measures | {'; '.join(d.standard_measures)} |"]
    if a.risk is not None:
        L += [f"| risk verdict (mean LPR max / 1e-5) | {_fmt(a.risk.lpr_ratio)} ({'voldoet' if a.risk.voldoet else 'voldoet niet'}, {a.risk.classification}) |"]
    sp = a.spectrum
    L += [
        "",
        "## Input",
        "",
        "| item | value |",
        "|---|---|",
        f"| input | {a.source} |",
        f"| consequence class | {a.consequence_class} |",
        f"| typology | {a.typology or '-'} |",
        f"| structural system | {a.structural_system or '-'} |",
        f"| capacity | {a.capacity_source} |",
        f"| spectrum | a_g;S = {sp.ag_s_g:.4g} g (importance factor {sp.importance_factor:g} applied), p = {sp.p:g}, T_B = {sp.t_b_s:g} s, T_C = {sp.t_c_s:g} s, T_D = {sp.t_d_s:g} s, return period {_fmt(sp.return_period_yr, 'yr')} |",
        "",
        f"## Method: {r.method}",
        "",
        "| quantity | value |",
        "|---|---|",
    ]
    for key, label, unit in _RESULT_ROWS.get(r.method, []):
        L.append(f"| {label} | {_fmt(getattr(r, key), unit)} |")
    L += ["", "### Checks", "", "| check | demand | capacity | unity check |", "|---|---|---|---|"]
    for c in r.checks:
        L.append(f"| {c.name} | {_fmt(c.demand, c.unit)} | {_fmt(c.capacity, c.unit)} | {c.unity_check:.3f} |")
    if a.fragility is not None:
        f = a.fragility.fragility
        L += [
            "",
            f"## Building-specific fragility ({f.imt})",
            "",
            f"Near-collapse roof displacement d_NC = {a.fragility.nc_displacement_m:.4g} m; reference IM of the spectrum {a.fragility.im_reference_g:.4g} g.",
            "",
            "| state | roof-displacement limit [m] | spectrum factor λ | median [g] | β | P(death) inside | P(death) outside |",
            "|---|---|---|---|---|---|---|",
        ]
        for k in range(3):
            L.append(
                f"| CS{k + 1} | {a.fragility.limit_displacements_m[k]:.4g}{' (extrapolated)' if a.fragility.extrapolated[k] else ''} | {a.fragility.scale_factors[k]:.4g} | {f.median_g[k]:.4g} | {f.beta[k]:.3g} | {f.p_death_inside[k]:.3g} | {f.p_death_outside[k]:.3g} |"
            )
    if a.risk is not None:
        L += ["", "## Risk (HRA engine)", "", "| year | mean LPR | P50 | P90 |", "|---|---|---|---|"]
        for y, m, p5, p9 in zip(a.risk.years, a.risk.lpr_mean, a.risk.lpr_p50, a.risk.lpr_p90):
            L.append(f"| {y} | {m:.3e} | {p5:.3e} | {p9:.3e} |")
    L += ["", "## Figures", "", "![elastic spectrum](spectrum.png)", ""]
    if adrs is not None:
        L += ["![ADRS](adrs.png)", ""]
    t = a.tables
    L += [
        "## Tables used",
        "",
        f"- NPR 9998 tables: edition *{t.get('edition')}*, version *{t.get('table_version')}*, provisional = {t.get('provisional')}, {t.get('tables_source')} (sha256 {str(t.get('tables_sha256'))[:12]}...)",
        f"- decision tables: version *{t.get('decision_table_version')}* ({t.get('decision_tables_source')})",
        f"- catalogue: version *{t.get('catalogue_version')}* ({t.get('catalogue_source')})",
        "",
    ]
    if a.notes:
        L += ["## Notes", ""] + [f"- {n}" for n in a.notes] + [""]
    L += [
        "## References",
        "",
        "EN 1998-1:2004 §3.2.2 and Annex B; EN 1998-3:2005; NPR 9998 (edition above); Fajfar (2000) Earthquake Spectra 16(3):573-592; ATC-40 (1996); FEMA 440 (2005).",
        "",
        f"*npr9998 {_version()}, {_dt.datetime.now(_dt.timezone.utc).isoformat(timespec='seconds')}*",
        "",
    ]
    return atomic_write_text(folder / "report.md", "\n".join(L))
