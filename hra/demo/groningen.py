"""The demo region with the public Groningen models: ``hra demo --model groningen-v7``.

The buildings of :func:`hra.demo.exposure.synthetic_exposure` (same locations, ids,
municipalities and occupancy for the same ``(n_buildings, seed)``) are given the attributes the
public Groningen ground-motion and fragility models need. Everything here is **illustrative**,
written by this project for demonstrations and benchmarks; it is not the exposure database and
says nothing about real buildings.

**Site-response zones.** The demo region keeps its 8 zones, and each demo zone takes the site
response of one real GMM V6/V7 zone (``ID_V6`` of ``Geological_zones_V6.zip``): the V6 zone that
contains the demo zone's Voronoi seed point (:data:`DEMO_TO_V6_ZONE`; a test checks the mapping
against the zonation). The 8 zones are distinct and have distinct amplification (linear AF at
10 km from about 2.2 to 3.2 averaged over the V7 periods, non-linearity f3 from 0.06 to 0.29 g).
Mapping the demo zones rather than placing every building on the real zonation keeps the number
of sites at 16 (8 zones x on/off a wierde), as in the demo, so the per-site tables stay cheap.

**Typologies.** Each building gets one to ten candidate FCM V7 structural systems
(``system_1..10`` / ``s_probability_1..10``, as in the EDB) out of the 35 classes of
:data:`V7_TYPOLOGIES`. The primary class is drawn from a mix that depends on the setting
(:data:`SETTINGS`: centre or outskirts of the city of Groningen, of the three larger towns
Hoogezand, Appingedam and Delfzijl, of a village, or countryside); the mixes are built from
class families as the class names suggest (:data:`FAMILIES`: low-rise and mid-rise unreinforced
masonry, masonry farm buildings ``URM1F_*``, reinforced and precast concrete by height, steel,
timber) with the shares of :data:`FAMILY_SHARES` [%], mostly masonry as in Groningen. A
building's setting is that of the nearest town in units of the town's radius: within 0.75 radii
the centre, within 2.5 radii the outskirts, else the countryside. 45 % of the buildings carry
typology uncertainty (2-10 candidates, probabilities in whole percentages summing to 100 %, the
primary class first); alternatives are drawn without replacement, preferring the same family
(weight 3), then the same material (1), then any other class (0.1).

**Wierden.** ``wierde`` (the EDB's ``wiede_flag``) is set for 40 % of the buildings in the old
centres of five villages built on dwelling mounds (Ten Boer, Loppersum, Middelstum, Winsum,
Uithuizen), for 12 % of the countryside buildings in the demo's salt-marsh (wierden) zone 7 and
for 4 % of those in the other northern clay zones 1, 3 and 5: about 2 % of all buildings.

Random numbers come from ``default_rng(SeedSequence(seed, spawn_key=(PURPOSE_DEMO_EXPOSURE_GRONINGEN,)))``
in a fixed sequence of vectorised calls, so the table depends only on ``(n_buildings, seed)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from hra.demo.exposure import synthetic_exposure
from hra.demo.region import towns
from hra.inputs.exposure import MAX_CANDIDATES, probability_column, system_column

__all__ = [
    "DEMO_TO_V6_ZONE",
    "FAMILIES",
    "FAMILY_SHARES",
    "PURPOSE_DEMO_EXPOSURE_GRONINGEN",
    "SETTINGS",
    "V7_TYPOLOGIES",
    "synthetic_exposure_groningen",
]

#: Purpose id of this generator's random stream (``SeedSequence(seed, spawn_key=(11,))``).
PURPOSE_DEMO_EXPOSURE_GRONINGEN = 11

#: Demo zone (1..8) -> GMM V6/V7 site-response zone (``ID_V6``) that contains the demo zone's
#: Voronoi seed point (hra.demo.region._ZONES); illustrative.
DEMO_TO_V6_ZONE: dict[int, int] = {1: 2109, 2: 110, 3: 820, 4: 1735, 5: 1019, 6: 1221, 7: 2106, 8: 619}

#: The 35 structural systems of FCM V7 (and V6), in the order of the model tables.
V7_TYPOLOGIES: tuple[str, ...] = (
    "RC1L", "RC1M", "RC1H", "RC2", "PC2", "RC3L", "RC3M", "RC3H", "PC3L", "PC3M", "PC3H", "W2", "W3",
    "S1L", "S1H", "S1M", "S2L", "S2H", "S2M", "S3", "URM1F_B", "URM1F_HA", "URM1F_HC", "URM2L", "URM3L",
    "URM3M_U", "URM3M_D", "URM3M_B", "URM4L", "URM5L", "URM6L", "URM7L", "URM8L", "URM9L", "URM10",
)

#: Settings of a building (rows of the typology mix).
SETTINGS: tuple[str, ...] = ("city centre", "city outskirts", "town centre", "town outskirts",
                             "village centre", "village outskirts", "countryside")
_CITY = ("Groningen",)
_TOWNS = ("Hoogezand", "Appingedam", "Delfzijl")
_WIERDE_VILLAGES = ("Ten Boer", "Loppersum", "Middelstum", "Winsum", "Uithuizen")
CENTRE_RADII = 0.75
OUTSKIRTS_RADII = 2.5

#: Class families: (classes, within-family split in old centres and countryside, split elsewhere) [-].
FAMILIES: dict[str, tuple[tuple[str, ...], tuple[float, ...], tuple[float, ...]]] = {
    "urm_low": (("URM2L", "URM3L", "URM4L", "URM5L", "URM6L", "URM7L", "URM8L", "URM9L", "URM10"),
                (0.18, 0.14, 0.10, 0.14, 0.12, 0.08, 0.10, 0.06, 0.08),
                (0.06, 0.10, 0.16, 0.10, 0.10, 0.16, 0.10, 0.14, 0.08)),
    "urm_mid": (("URM3M_U", "URM3M_D", "URM3M_B"), (0.40, 0.35, 0.25), (0.40, 0.35, 0.25)),
    "urm_farm": (("URM1F_B", "URM1F_HA", "URM1F_HC"), (0.40, 0.35, 0.25), (0.40, 0.35, 0.25)),
    "rc_low": (("RC1L", "RC3L"), (0.5, 0.5), (0.5, 0.5)),
    "rc_mid": (("RC1M", "RC3M", "RC2"), (0.35, 0.45, 0.20), (0.35, 0.45, 0.20)),
    "rc_high": (("RC1H", "RC3H"), (0.5, 0.5), (0.5, 0.5)),
    "precast": (("PC2", "PC3L", "PC3M", "PC3H"), (0.30, 0.45, 0.20, 0.05), (0.30, 0.45, 0.20, 0.05)),
    "steel": (("S1L", "S1M", "S1H", "S2L", "S2M", "S2H", "S3"),
              (0.14, 0.05, 0.01, 0.14, 0.05, 0.01, 0.60), (0.14, 0.05, 0.01, 0.14, 0.05, 0.01, 0.60)),
    "timber": (("W2", "W3"), (0.6, 0.4), (0.6, 0.4)),
}

#: Family shares [%] per setting, in the order of :data:`SETTINGS` (normalised per setting).
FAMILY_SHARES: dict[str, tuple[float, ...]] = {
    #            city c. city o. town c. town o. vill. c. vill. o. country
    "urm_low":  (45.0,   55.0,   60.0,   62.0,   75.0,    68.0,    30.0),
    "urm_mid":  (25.0,   10.0,   15.0,    5.0,    4.0,     2.0,     0.5),
    "urm_farm": (0.2,     0.5,    1.0,    0.5,    5.0,     4.0,    40.0),
    "rc_low":   (3.0,     5.0,    4.0,    5.0,    2.0,     2.0,     1.5),
    "rc_mid":   (10.0,    8.0,    6.0,    3.0,    1.0,     1.0,     0.5),
    "rc_high":  (4.0,     2.0,    1.0,    0.5,    0.1,     0.1,     0.05),
    "precast":  (5.0,    10.0,    6.0,   12.0,    5.0,    10.0,     4.0),
    "steel":    (5.0,     5.0,    5.0,    6.0,    5.0,     6.0,    15.0),
    "timber":   (2.0,     5.0,    2.0,    6.0,    3.0,     7.0,     8.0),
}
_OLD_SPLIT_SETTINGS = (0, 2, 4, 6)  # centres and countryside use the "old" within-family split

#: Probability of 1, 2, ..., 10 typology candidates [-].
N_CANDIDATES_P = (0.55, 0.20, 0.10, 0.06, 0.04, 0.015, 0.012, 0.010, 0.008, 0.005)

#: Wierde shares [-]: old centres of the wierde villages; countryside by demo zone.
WIERDE_VILLAGE_CENTRE = 0.40
WIERDE_COUNTRYSIDE_BY_ZONE = {7: 0.12, 1: 0.04, 3: 0.04, 5: 0.04}


def _material(name: str) -> str:
    return "URM" if name.startswith("URM") else "C" if name.startswith(("RC", "PC")) else name[0]


def _mix_matrix() -> tuple[np.ndarray, np.ndarray]:
    """(settings x 35) typology mix and the family index of each class."""
    index = {t: i for i, t in enumerate(V7_TYPOLOGIES)}
    mix = np.zeros((len(SETTINGS), len(V7_TYPOLOGIES)))
    family = np.full(len(V7_TYPOLOGIES), -1, dtype=np.int64)
    for f, (name, (classes, old, new)) in enumerate(FAMILIES.items()):
        shares = np.asarray(FAMILY_SHARES[name], dtype=float)
        for s in range(len(SETTINGS)):
            split = np.asarray(old if s in _OLD_SPLIT_SETTINGS else new)
            for c, w in zip(classes, split / split.sum()):
                mix[s, index[c]] += shares[s] * w
        for c in classes:
            family[index[c]] = f
    if (family < 0).any():  # pragma: no cover - a class missing from FAMILIES
        raise RuntimeError("every V7 class needs a family")
    return mix / mix.sum(axis=1, keepdims=True), family


def _confusion(family: np.ndarray) -> np.ndarray:
    """How easily class j is mistaken for class i [-, relative]; 0 on the diagonal."""
    mat = np.array([_material(t) for t in V7_TYPOLOGIES])
    w = np.where(family[:, None] == family[None, :], 3.0, np.where(mat[:, None] == mat[None, :], 1.0, 0.1))
    np.fill_diagonal(w, 0.0)
    return w


def _settings(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Setting index (:data:`SETTINGS`) and nearest town (in town radii) of every building."""
    town_list = towns()
    rel = np.stack([np.hypot(x - t.x, y - t.y) / t.radius_m for t in town_list], axis=1)
    k = rel.argmin(axis=1)
    r = rel[np.arange(x.size), k]
    kind = np.array([0 if t.name in _CITY else 1 if t.name in _TOWNS else 2 for t in town_list])[k]
    setting = np.where(r < CENTRE_RADII, 2 * kind, np.where(r < OUTSKIRTS_RADII, 2 * kind + 1, 6))
    return setting.astype(np.int64), k


def _whole_percentages(rng: np.random.Generator, n_cand: np.ndarray) -> np.ndarray:
    """(n, 10) whole percentages, descending for the drawn candidates, >= 1 each, rows sum to 100."""
    n = n_cand.size
    k = np.arange(MAX_CANDIDATES)
    raw = rng.gamma(1.0, size=(n, MAX_CANDIDATES))
    raw[k[None, :] >= n_cand[:, None]] = 0.0
    raw = -np.sort(-raw, axis=1)
    p = raw / raw.sum(axis=1, keepdims=True)
    cents = np.where(k[None, :] < n_cand[:, None], np.maximum(1, np.floor(100.0 * p)), 0).astype(np.int64)
    cents[:, 0] = 100 - cents[:, 1:].sum(axis=1)
    return cents


def synthetic_exposure_groningen(n_buildings: int, seed: int = 1) -> pd.DataFrame:
    """Synthetic demo buildings with V6 site-response zones, V7 classes and wierden.

    Parameters
    ----------
    n_buildings
        Number of buildings (>= 1).
    seed
        Seed (int >= 0); the same ``(n_buildings, seed)`` always gives the same table, and the
        same locations and ids as ``synthetic_exposure(n_buildings, seed)``.

    Returns
    -------
    pandas.DataFrame
        The normalised exposure layout of :mod:`hra.inputs.exposure`: ``id``, ``x``, ``y`` [m,
        EPSG:28992], ``zone`` (Int64, a GMM V6/V7 zone id of :data:`DEMO_TO_V6_ZONE`),
        ``municipality``, ``population_inside`` [persons], ``wierde``, and ``system_1..10`` /
        ``s_probability_1..10`` (unused slots ``""`` and 0). ``df.attrs["source"]`` names the
        generator.

    Examples
    --------
    >>> df = synthetic_exposure_groningen(1000, seed=1)
    >>> sorted(set(df["zone"])) == sorted(DEMO_TO_V6_ZONE.values())
    True
    """
    base = synthetic_exposure(n_buildings, seed=seed)
    n = len(base)
    rng = np.random.default_rng(np.random.SeedSequence(int(seed), spawn_key=(PURPOSE_DEMO_EXPOSURE_GRONINGEN,)))
    x = base["x"].to_numpy(dtype=float)
    y = base["y"].to_numpy(dtype=float)
    demo_zone = base["zone"].to_numpy(dtype=np.int64)
    setting, town = _settings(x, y)
    mix, family = _mix_matrix()
    T = len(V7_TYPOLOGIES)

    # -- primary class, candidates ---------------------------------------------------------------
    cdf = np.cumsum(mix, axis=1)
    cdf /= cdf[:, -1:]
    primary = np.minimum((rng.random(n)[:, None] >= cdf[setting]).sum(axis=1), T - 1)
    pc = np.cumsum(N_CANDIDATES_P)
    n_cand = np.minimum(np.searchsorted(pc / pc[-1], rng.random(n), side="right") + 1, MAX_CANDIDATES)
    with np.errstate(divide="ignore"):
        log_w = np.log(_confusion(family))
    unc = np.flatnonzero(n_cand > 1)
    alternatives = np.zeros((n, MAX_CANDIDATES - 1), dtype=np.int64)
    if unc.size:
        keys = log_w[primary[unc]] + rng.gumbel(size=(unc.size, T))  # Gumbel top-k: without replacement
        alternatives[unc] = np.argsort(-keys, axis=1, kind="stable")[:, : MAX_CANDIDATES - 1]
    cents = _whole_percentages(rng, n_cand)

    # -- wierden ---------------------------------------------------------------------------------
    names = [t.name for t in towns()]
    wierde_town = np.isin(np.array(names, dtype=object)[town], _WIERDE_VILLAGES)
    p_wierde = np.where((setting == 4) & wierde_town, WIERDE_VILLAGE_CENTRE, 0.0)
    for z, p in WIERDE_COUNTRYSIDE_BY_ZONE.items():
        p_wierde = np.where((setting == 6) & (demo_zone == z), p, p_wierde)
    wierde = rng.random(n) < p_wierde

    # -- table -----------------------------------------------------------------------------------
    zone_map = np.zeros(max(DEMO_TO_V6_ZONE) + 1, dtype=np.int64)
    for dz, vz in DEMO_TO_V6_ZONE.items():
        zone_map[dz] = vz
    data: dict[str, object] = {
        "id": base["id"],
        "x": x,
        "y": y,
        "zone": pd.array(zone_map[demo_zone], dtype="Int64"),
        "municipality": base["municipality"],
        "population_inside": base["population_inside"],
        "wierde": wierde,
    }
    classes = np.array(V7_TYPOLOGIES + ("",), dtype=object)
    for j in range(MAX_CANDIDATES):
        index = primary if j == 0 else np.where(n_cand > j, alternatives[:, j - 1], T)
        data[system_column(j + 1)] = pd.Series(classes[index], dtype=object).astype(str)
        data[probability_column(j + 1)] = cents[:, j] / 100.0
    df = pd.DataFrame(data)
    df.attrs["source"] = f"synthetic_exposure_groningen(n_buildings={n}, seed={int(seed)})"
    return df
