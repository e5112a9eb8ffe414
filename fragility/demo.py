"""Demo fragility and consequence set for the embedded demo region (illustrative, not for decisions).

Eight typologies with lognormal collapse fragilities on the demo IM "AvgSa" [g], three fragility
branches (capacity x exp(-0.35), x1, x exp(+0.35); weights 0.17/0.66/0.17, as the Groningen FCM
discretises its capacity uncertainty) and death probabilities inside/outside per collapse state.
The numbers are written by this project to resemble the ranges of the Groningen FCM, no more.
"""

from __future__ import annotations

import pandas as pd


# typology: (median CS1, CS2, CS3 [g], beta, Pd_in CS1..3, Pd_out CS1..3)
_CURVES = {
    "URM_terraced_pre1920": ((0.28, 0.42, 0.60), 0.45, (0.010, 0.060, 0.250), (0.010, 0.030, 0.060)),
    "URM_detached_pre1945": ((0.34, 0.50, 0.72), 0.45, (0.008, 0.050, 0.220), (0.008, 0.025, 0.050)),
    "URM_cavity_post1945": ((0.45, 0.65, 0.95), 0.45, (0.006, 0.040, 0.200), (0.006, 0.020, 0.050)),
    "URM_farmhouse": ((0.30, 0.46, 0.66), 0.50, (0.010, 0.060, 0.250), (0.012, 0.035, 0.070)),
    "RC_frame": ((0.80, 1.10, 1.50), 0.50, (0.010, 0.080, 0.300), (0.005, 0.020, 0.040)),
    "precast_concrete": ((0.60, 0.90, 1.30), 0.50, (0.010, 0.080, 0.350), (0.005, 0.020, 0.040)),
    "timber_frame": ((1.20, 1.70, 2.40), 0.55, (0.002, 0.010, 0.050), (0.001, 0.005, 0.010)),
    "steel_frame": ((1.00, 1.40, 2.00), 0.55, (0.005, 0.040, 0.150), (0.002, 0.010, 0.020)),
}
#: The demo typologies (the synthetic exposure of hra.demo.exposure uses exactly these names).
DEMO_TYPOLOGIES = tuple(_CURVES)
BRANCHES = (("lower", 0.17, -0.35), ("central", 0.66, 0.0), ("upper", 0.17, 0.35))
#: Consequence branches (factor, weight) as in the Groningen FCM (0.8/1/1.2 x middle).
CONSEQUENCE = [(0.8, 0.25), (1.0, 0.5), (1.2, 0.25)]
#: Global capacity scale of the demo set, chosen so that the demo region exercises every risk
#: category (of the order of 1 % of buildings with P90 > 1e-5 in the first years, fewer by mean).
CAPACITY_SCALE = 1.3
PRESENCE_INSIDE = 0.99


def demo_fragility_table() -> pd.DataFrame:
    """The demo curves in the CSV layout read by :func:`fragility.lognormal.read_fragility_csv`."""
    import math

    rows = []
    for typ, (medians, beta, pin, pout) in _CURVES.items():
        for name, weight, shift in BRANCHES:
            for k, state in enumerate(("CS1", "CS2", "CS3")):
                rows.append(dict(typology=typ, state=state, median_g=round(CAPACITY_SCALE * medians[k] * math.exp(shift), 6), beta=beta,
                                 p_death=pin[k], p_death_outside=pout[k], branch=name, weight=weight))
    return pd.DataFrame(rows)
