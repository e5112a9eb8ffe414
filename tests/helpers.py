"""Small builders of input files for engine tests (tiny regions written to tmp_path)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hra.config import Config, config_from_dict

PARAMETRIC = dict(model="parametric", imt="PGA", c0=-5.0, c1=1.2, c2=-1.5, c3=0.0, tau=0.3, phi=0.5)


def write_rates(path: Path, cells: list[tuple[float, float, float]], years=(2025,), branches=None) -> Path:
    """cells: (x, y, rate); branches: optional [(label, weight, factor)] scaling the rates."""
    rows = []
    for y in years:
        for x, yy, rate in cells:
            if branches:
                for label, w, fac in branches:
                    rows.append(dict(x=x, y=yy, year=y, rate=rate * fac, branch=label, weight=w))
            else:
                rows.append(dict(x=x, y=yy, year=y, rate=rate))
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def write_fragility(path: Path, curves: dict[str, tuple[tuple[float, float, float], float, tuple[float, float, float]]],
                    branches=None) -> Path:
    """curves: typology -> ((median CS1..3) [g], beta, (p_death CS1..3)); branches [(label, weight, factor on median)]."""
    rows = []
    for typ, (med, beta, pd_) in curves.items():
        for label, w, fac in (branches or [("central", 1.0, 1.0)]):
            for k in range(3):
                rows.append(dict(typology=typ, state=f"CS{k + 1}", median_g=med[k] * fac, beta=beta, p_death=pd_[k],
                                 branch=label, weight=w))
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def write_buildings(path: Path, rows: list[dict]) -> Path:
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def make_config(tmp: Path, *, cells, buildings, curves, gm=None, years=(2025,), m_max=((5.0, 1.0),), b_value=1.0,
                realisations="all", run=None, source=None, fragility=None, compute=None, output=None,
                rate_branches=None, frag_branches=None) -> Config:
    tmp = Path(tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    rates = write_rates(tmp / "rates.csv", cells, years, rate_branches)
    frag = write_fragility(tmp / "fragility.csv", curves, frag_branches)
    bld = write_buildings(tmp / "buildings.csv", buildings)
    data = {
        "run": {"years": list(years), "seed": 7, "realisations": realisations, **(run or {})},
        "source": {"rates": str(rates), "cell_size_m": 1000.0, "m_min": 1.5, "depth_km": 3.0,
                   "magnitude": {"b_value": b_value, "m_max": [{"value": v, "weight": w} for v, w in m_max]},
                   **(source or {})},
        "ground_motion": gm or dict(PARAMETRIC),
        "exposure": {"buildings": str(bld)},
        "fragility": {"curves": str(frag), **(fragility or {})},
        "compute": {"workers": 1, "executor": "synchronous", "progress": False, **(compute or {})},
    }
    if output:
        data["output"] = output
    return config_from_dict(data, base_dir=tmp)
