"""Synthetic exposure for the demo region.

:func:`synthetic_exposure` draws a plausible, fully synthetic building stock for the demo region of
:mod:`hra.demo.region`, in the normalised exposure layout of :mod:`hra.inputs.exposure`:

* 80 % of the buildings cluster around the towns (2-D Gaussian of the town's radius, towns drawn
  by their weights), 20 % are scattered uniformly over the field outline buffered by 10 km;
* typologies from :data:`DEMO_TYPOLOGIES` with different mixes for old town centres (within 0.75
  radius of a town centre: many pre-1920 terraced houses), town outskirts (post-1945 cavity walls)
  and the countryside (farmhouses);
* 30 % of the buildings carry typology uncertainty: 2 (60 % of those) or 3 candidates, the drawn
  typology first with the largest probability, alternatives drawn from typologies that are easily
  confused with it; probabilities are whole percentages summing to exactly 100 %;
* zone from the demo zones (:func:`hra.inputs.sites.assign_zones`), municipality of the nearest town,
  ``population_inside`` around a typology-dependent mean (1.5-5 persons), ``wierde`` for 1 % of the
  rural buildings; ids ``DEMO-000001``, ... given after shuffling, so id order has no spatial pattern.

:func:`write_exposure` (from :mod:`hra.inputs.exposure`, re-exported here) writes the table as CSV,
atomically (temporary file, then ``os.replace``).

Random numbers come from ``default_rng(SeedSequence(seed, spawn_key=(PURPOSE_DEMO_EXPOSURE,)))``
and are drawn in a fixed sequence of vectorised calls, so the result depends only on
``(n_buildings, seed)``. 500,000 buildings take about 0.8 s on one core.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import shapely

from hra.demo.region import field_outline, region_bounds, towns, zones
from hra.inputs.exposure import probability_column, system_column, write_exposure
from hra.inputs.sites import assign_zones

__all__ = ["DEMO_TYPOLOGIES", "PURPOSE_DEMO_EXPOSURE", "synthetic_exposure", "write_exposure"]

#: Purpose id of the demo exposure's random stream (``SeedSequence(seed, spawn_key=(10,))``).
PURPOSE_DEMO_EXPOSURE = 10

#: Typologies of the demo region: those of the demo fragility set.
from fragility.demo import DEMO_TYPOLOGIES  # noqa: E402

TOWN_SHARE = 0.80
UNCERTAIN_SHARE = 0.30
THREE_CANDIDATE_SHARE = 0.40  # of the uncertain buildings
WIERDE_SHARE_RURAL = 0.01
RURAL_BUFFER_M = 10_000.0
OLD_CENTRE_RADII = 0.75  # within this many town radii of the centre: old town centre

# Typology mix [-] per setting, order of DEMO_TYPOLOGIES.
_MIX = np.array(
    [
        # terr  det   cav   farm  RC    prec  timb  steel
        [0.40, 0.20, 0.15, 0.01, 0.10, 0.06, 0.05, 0.03],  # old town centre
        [0.12, 0.18, 0.40, 0.02, 0.08, 0.10, 0.07, 0.03],  # town outskirts
        [0.04, 0.16, 0.20, 0.40, 0.03, 0.05, 0.07, 0.05],  # rural
    ]
)

# How easily typology j is mistaken for typology i (row i = the drawn typology) [-, relative].
_CONFUSION = np.array(
    [
        # terr  det   cav   farm  RC    prec  timb  steel
        [0.0, 3.0, 2.0, 1.0, 0.3, 0.3, 0.3, 0.2],
        [3.0, 0.0, 2.0, 2.0, 0.3, 0.3, 0.5, 0.2],
        [2.0, 2.0, 0.0, 1.0, 0.5, 1.5, 0.5, 0.2],
        [1.0, 2.0, 1.0, 0.0, 0.2, 0.3, 1.0, 1.0],
        [0.3, 0.3, 0.5, 0.2, 0.0, 3.0, 0.2, 1.5],
        [0.3, 0.3, 1.5, 0.3, 3.0, 0.0, 0.3, 1.0],
        [0.5, 0.5, 0.5, 1.0, 0.2, 0.3, 0.0, 1.0],
        [0.2, 0.2, 0.2, 1.0, 1.5, 1.0, 1.0, 0.0],
    ]
)

# Mean persons inside per typology [persons]; each building gets mean * U(0.6, 1.4).
_POPULATION_MEAN = np.array([2.2, 2.4, 2.3, 2.6, 5.0, 3.5, 2.0, 1.5])


def _uniform_in_polygon(rng: np.random.Generator, polygon, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points uniform in ``polygon`` by rejection from its bounding box (vectorised)."""
    xmin, ymin, xmax, ymax = polygon.bounds
    shapely.prepare(polygon)
    frac = polygon.area / ((xmax - xmin) * (ymax - ymin))
    xs, ys, have = [np.empty(0)], [np.empty(0)], 0
    while have < n:
        m = int((n - have) / frac * 1.1) + 16
        x = rng.uniform(xmin, xmax, m)
        y = rng.uniform(ymin, ymax, m)
        inside = shapely.contains_xy(polygon, x, y)
        xs.append(x[inside])
        ys.append(y[inside])
        have += int(inside.sum())
    return np.concatenate(xs)[:n], np.concatenate(ys)[:n]


def synthetic_exposure(n_buildings: int, seed: int = 1) -> pd.DataFrame:
    """Synthetic buildings for the demo region.

    Parameters
    ----------
    n_buildings
        Number of buildings (>= 1; 1,000 to 500,000 is the intended range).
    seed
        Seed (int >= 0); the same ``(n_buildings, seed)`` always gives the same table.

    Returns
    -------
    pandas.DataFrame
        The normalised exposure layout of :mod:`hra.inputs.exposure`: ``id``, ``x``, ``y``
        [m, EPSG:28992, rounded to 0.1 m], ``zone`` (Int64, 1..8), ``municipality``,
        ``population_inside`` [persons], ``wierde``, ``system_1..K``, ``s_probability_1..K``
        (K = 3 unless no building drew 3 candidates). ``df.attrs["source"]`` names the generator.

    Examples
    --------
    >>> df = synthetic_exposure(1000, seed=1)
    >>> len(df), df["id"].iloc[0]
    (1000, 'DEMO-000001')
    """
    if isinstance(n_buildings, bool) or not isinstance(n_buildings, (int, np.integer)) or n_buildings < 1:
        raise ValueError(f"n_buildings must be an integer >= 1, got {n_buildings!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    n = int(n_buildings)
    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(PURPOSE_DEMO_EXPOSURE,)))
    town_list = towns()
    tx = np.array([t.x for t in town_list])
    ty = np.array([t.y for t in town_list])
    tw = np.array([t.weight for t in town_list])
    tr = np.array([t.radius_m for t in town_list])
    xmin, ymin, xmax, ymax = region_bounds()

    # -- locations -----------------------------------------------------------------------------
    n_town = int(round(TOWN_SHARE * n))
    n_rural = n - n_town
    k = rng.choice(len(town_list), size=n_town, p=tw / tw.sum())
    offset = rng.standard_normal((n_town, 2)) * tr[k, None]
    x_town = np.clip(tx[k] + offset[:, 0], xmin, xmax)
    y_town = np.clip(ty[k] + offset[:, 1], ymin, ymax)
    rel_dist = np.hypot(offset[:, 0], offset[:, 1]) / tr[k]
    x_rural, y_rural = _uniform_in_polygon(rng, field_outline().buffer(RURAL_BUFFER_M), n_rural)

    x = np.round(np.concatenate([x_town, x_rural]), 1)
    y = np.round(np.concatenate([y_town, y_rural]), 1)
    setting = np.concatenate([np.where(rel_dist < OLD_CENTRE_RADII, 0, 1), np.full(n_rural, 2)])
    perm = rng.permutation(n)
    x, y, setting = x[perm], y[perm], setting[perm]
    rural = setting == 2

    # -- typologies ----------------------------------------------------------------------------
    cdf = np.cumsum(_MIX, axis=1)
    cdf /= cdf[:, -1:]
    u = rng.random(n)
    primary = np.minimum((u[:, None] >= cdf[setting]).sum(axis=1), len(DEMO_TYPOLOGIES) - 1)

    uncertain = rng.random(n) < UNCERTAIN_SHARE
    n_cand = np.where(uncertain, np.where(rng.random(n) < THREE_CANDIDATE_SHARE, 3, 2), 1)
    # two alternatives without replacement, proportional to _CONFUSION[primary] (Gumbel top-k)
    with np.errstate(divide="ignore"):
        log_w = np.log(_CONFUSION)
    unc = np.flatnonzero(uncertain)
    keys = log_w[primary[unc]] + rng.gumbel(size=(unc.size, len(DEMO_TYPOLOGIES)))
    alternatives = np.zeros((n, 2), dtype=np.int64)
    alternatives[unc] = np.argsort(-keys, axis=1, kind="stable")[:, :2]
    # whole percentages: 2 candidates 55-90 / rest; 3 candidates 40-80 / c2 / c3 with c1 >= c2 >= c3 >= 5
    c1_two = rng.integers(55, 91, size=n)
    c1_three = rng.integers(40, 81, size=n)
    rest = 100 - c1_three
    c2_three = rng.integers((rest + 1) // 2, np.minimum(c1_three, rest - 5) + 1)
    c1 = np.select([n_cand == 1, n_cand == 2], [100, c1_two], c1_three)
    c2 = np.select([n_cand == 1, n_cand == 2], [0, 100 - c1_two], c2_three)
    c3 = np.where(n_cand == 3, rest - c2_three, 0)

    # -- attributes ----------------------------------------------------------------------------
    population = np.round(_POPULATION_MEAN[primary] * rng.uniform(0.6, 1.4, size=n), 2)
    wierde = rural & (rng.random(n) < WIERDE_SHARE_RURAL)
    polygons, zone_ids, _ = zones()
    zone = assign_zones(x, y, polygons, zone_ids)
    best = np.full(n, np.inf)
    nearest = np.zeros(n, dtype=np.int64)
    for i in range(len(town_list)):
        d2 = (x - tx[i]) ** 2 + (y - ty[i]) ** 2
        closer = d2 < best
        best[closer] = d2[closer]
        nearest[closer] = i
    municipality = np.array([t.municipality for t in town_list], dtype=object)[nearest]
    width = max(6, len(str(n)))
    ids = [f"DEMO-{i:0{width}d}" for i in range(1, n + 1)]

    names = np.array(DEMO_TYPOLOGIES + ("",), dtype=object)
    empty = len(DEMO_TYPOLOGIES)
    candidates = [
        (primary, c1),
        (np.where(n_cand >= 2, alternatives[:, 0], empty), c2),
        (np.where(n_cand >= 3, alternatives[:, 1], empty), c3),
    ][: int(n_cand.max())]

    data: dict[str, object] = {
        "id": pd.Series(ids, dtype=object).astype(str),
        "x": x,
        "y": y,
        "zone": pd.array(zone, dtype="Int64"),
        "municipality": pd.Series(municipality, dtype=object).astype(str),
        "population_inside": population,
        "wierde": wierde,
    }
    for j, (index, cents) in enumerate(candidates, start=1):
        data[system_column(j)] = pd.Series(names[index], dtype=object).astype(str)
        data[probability_column(j)] = cents / 100.0
    df = pd.DataFrame(data)
    df.attrs["source"] = f"synthetic_exposure(n_buildings={n}, seed={int(seed)})"
    return df
