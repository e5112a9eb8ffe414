"""Demo seismicity: a declining rate grid over the demo field outline (illustrative, not for decisions).

Annual rate of M >= 1.5 events per 1 km cell, for the years 2025-2031 and two source-model
branches that differ in how concentrated and how fast-declining the activity is (in the spirit
of the elastic / elastic-plastic branches of the Groningen source model):

    rate(x, y, year, branch) = N_total(year, branch) * density(x, y, branch)

``density`` is a normalised mixture of Gaussian bumps (the most active area near Loppersum)
restricted to cells whose centre lies inside the field outline; ``N_total`` declines
geometrically from ``n_2025`` events per year.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

YEARS = tuple(range(2025, 2032))
#: branch -> (weight, events/yr with M >= 1.5 in 2025, annual decline factor, bump width scale)
BRANCHES = {
    "elastic": (0.5, 3.7, 0.86, 1.0),
    "elastic_plastic": (0.5, 5.0, 0.82, 0.8),
}
#: activity centres (x, y [m], relative strength, sigma [m])
BUMPS = (
    (246_500.0, 596_500.0, 1.8, 3000.0),   # Loppersum - Huizinge - Wirdum
    (241_000.0, 589_000.0, 0.45, 4000.0),  # Ten Boer - Garrelsweer
    (252_500.0, 590_500.0, 0.35, 3500.0),  # Appingedam south
    (244_000.0, 583_000.0, 0.25, 5000.0),  # Slochteren
    (250_000.0, 602_000.0, 0.20, 5000.0),  # Middelstum - Zeerijp north
)
CELL_M = 1000.0


def demo_rate_grid(years=YEARS) -> pd.DataFrame:
    """Rate grid in the CSV layout of hra.inputs.source.read_rate_grid (x, y, year, rate, branch, weight)."""
    import shapely

    from hra.demo.region import field_outline

    outline = field_outline()
    xmin, ymin, xmax, ymax = outline.bounds
    xs = np.arange(np.floor(xmin / CELL_M) * CELL_M + CELL_M / 2, xmax, CELL_M)
    ys = np.arange(np.floor(ymin / CELL_M) * CELL_M + CELL_M / 2, ymax, CELL_M)
    gx, gy = np.meshgrid(xs, ys, indexing="ij")
    inside = shapely.contains_xy(outline, gx, gy)
    cx, cy = gx[inside], gy[inside]
    frames = []
    for branch, (weight, n0, decline, width) in BRANCHES.items():
        dens = np.full(cx.shape, 0.02)  # a low background everywhere in the field
        for bx, by, amp, sig in BUMPS:
            s = sig * width
            dens += amp * np.exp(-0.5 * ((cx - bx) ** 2 + (cy - by) ** 2) / s**2)
        dens /= dens.sum()
        for i, year in enumerate(years):
            frames.append(pd.DataFrame(dict(x=cx, y=cy, year=year, rate=n0 * decline**i * dens, branch=branch, weight=weight)))
    return pd.concat(frames, ignore_index=True)


def write_demo_rates(path: str | Path, years=YEARS) -> Path:
    path = Path(path)
    demo_rate_grid(years).to_csv(path, index=False, float_format="%.8g")
    return path
