"""The NPR 9998 elastic spectrum of a site from the HRA's hazard: fit (a_g;S, p, T_B, T_C, T_D) to a
uniform hazard spectrum.

:func:`fit_npr_spectrum` fits the NPR-form spectrum (:func:`npr9998.spectrum.elastic_spectrum`) to
spectral accelerations at given periods; :func:`site_spectra` computes the hazard at sites with
:func:`hra.hazard_curves`, the uniform hazard spectra at the return periods, and fits each.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from npr9998.errors import NPRInputError
from npr9998.spectrum import elastic_spectrum


def fit_npr_spectrum(period_s: Sequence[float], sa_g: Sequence[float], t_d: float | None = 2.0, damping: float = 0.05) -> dict[str, float]:
    """Fit the NPR 9998 elastic-spectrum parameters to a uniform hazard spectrum.

    Minimises the squared error of ln S_e over the given periods for (a_g;S, p, T_B, T_C[, T_D])
    with bounds 0.5..1.5 x the shortest-period value for a_g;S = S_e(0), 1 <= p <= 5 and
    0.02 <= T_B <= T_C <= 1.5 s. T_D is fitted only when periods beyond 1.5 s are
    given, else it is held at ``t_d``. Returns ``{ag_s_g, p, t_b, t_c, t_d, rms_ln}``.
    """
    from scipy.optimize import least_squares

    t = np.asarray(period_s, dtype=float)
    sa = np.asarray(sa_g, dtype=float)
    ok = np.isfinite(sa) & (sa > 0)
    t, sa = t[ok], sa[ok]
    if t.size < 4:
        raise NPRInputError("fit_npr_spectrum needs at least 4 periods with a positive spectral value")
    ag0 = float(sa[np.argmin(t)])
    fit_td = t.max() > 1.5

    def model(x):
        ag, p, tb, tc = x[:4]
        td = x[4] if fit_td else (t_d if t_d is not None else 2.0)
        return elastic_spectrum(t, ag, p, tb, max(tc, tb * 1.0001), max(td, tc * 1.0001), damping)

    def resid(x):
        return np.log(model(x)) - np.log(sa)

    lb = [0.5 * ag0, 1.0, 0.02, 0.05] + ([0.5] if fit_td else [])
    ub = [1.5 * ag0, 5.0, 0.5, 1.5] + ([4.0] if fit_td else [])
    best = None
    for tb0, tc0 in ((0.05, 0.3), (0.1, 0.4), (0.15, 0.6), (0.2, 0.8)):
        x0 = [ag0, float(np.clip(sa.max() / ag0, 1.0, 5.0)), tb0, tc0] + ([2.0] if fit_td else [])
        res = least_squares(resid, x0, bounds=(lb, ub))
        if best is None or res.cost < best.cost:
            best = res
    ag, p, tb, tc = best.x[:4]
    td = float(best.x[4]) if fit_td else float(t_d if t_d is not None else 2.0)
    return {"ag_s_g": float(ag), "p": float(p), "t_b": float(tb), "t_c": float(max(tc, tb)), "t_d": td,
            "rms_ln": float(np.sqrt(np.mean(best.fun**2)))}


def site_spectra(cfg, sites, return_periods: Sequence[float] = (475.0, 2475.0), year: int | None = None,
                 component: str = "geometric_mean", progress: bool | None = None) -> pd.DataFrame:
    """Hazard at ``sites`` with the HRA model of ``cfg``, and the fitted NPR spectrum per site and
    return period.

    Parameters
    ----------
    cfg : hra.Config
        The run configuration (source, ground motion; its spectral IMs must include PGA or SA(T)).
    sites : pandas.DataFrame or path
        ``id, x, y`` [m, RD New] (optional ``zone``).
    return_periods : sequence of float
        Return periods [yr].
    year : int, optional
        Year of the hazard (default: the first of ``[run] years``).
    component : str
        ``"geometric_mean"`` (default, the NPR 9998 convention) or ``"arbitrary"``.
    progress : bool, optional
        Progress bar / log lines (default: on a terminal).

    Returns
    -------
    pandas.DataFrame
        One row per (site, return period): ``site, return_period_yr, pga_g`` and the fitted
        ``ag_s_g, p, t_b, t_c, t_d, rms_ln`` (NaN where fewer than 4 spectral values exist).
    """
    import hra
    from hra.chain import make_gmm
    from hra.integration.hazard import spectral_imts, spectral_periods, uniform_hazard_spectrum

    imts = spectral_imts(make_gmm(cfg))  # PGA and SA(T): the spectrum, not AvgSa
    year = int(cfg.run.years[0]) if year is None else int(year)
    hc = hra.hazard_curves(cfg, sites, imts=imts, quantiles=[], component=component, years=[year], progress=progress)
    uhs = uniform_hazard_spectrum(hc, list(return_periods))
    periods, idx = spectral_periods(list(hc["imt"].values))
    iy = 0
    rows = []
    imts = list(hc["imt"].values)
    for s in range(hc.sizes["site"]):
        for k, rp in enumerate(return_periods):
            pga = float(uhs.values[s, imts.index("PGA"), iy, k]) if "PGA" in imts else np.nan
            row = {"site": str(hc["site_id"].values[s]), "return_period_yr": float(rp), "pga_g": pga}
            vals = uhs.values[s, idx, iy, k]
            if len(idx) >= 4 and np.all(np.isfinite(vals)):
                row.update(fit_npr_spectrum(periods, vals))
            else:
                row.update({k2: np.nan for k2 in ("ag_s_g", "p", "t_b", "t_c", "t_d", "rms_ln")})
            rows.append(row)
    return pd.DataFrame(rows)
