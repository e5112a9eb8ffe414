"""npr9998.assess.risk_verdict through the real HRA engine (hra.building_lpr), not a stand-in."""

from __future__ import annotations

import numpy as np

from npr9998 import BuildingFragility
from npr9998.assess import risk_verdict
from tests.helpers import make_config

PD = dict(p_death_inside=(0.01, 0.06, 0.25), p_death_outside=(0.0, 0.0, 0.0), imt="PGA")


def test_risk_verdict_uses_engine_and_orders_capacity(tmp_path):
    cfg = make_config(tmp_path, cells=[(250_000.0 + 1000 * i, 590_000.0, 2.0) for i in range(3)],
                      curves={"URM": ((0.15, 0.3, 0.6), 0.5, (0.01, 0.1, 0.3))},
                      buildings=[dict(id="B", x=250_500.0, y=590_400.0, typology="URM")], m_max=((5.5, 0.5), (6.5, 0.5)))
    weak = risk_verdict(cfg, 250_500.0, 590_400.0, BuildingFragility(median_g=(0.02, 0.03, 0.05), beta=(0.5,) * 3, **PD))
    strong = risk_verdict(cfg, 250_500.0, 590_400.0, BuildingFragility(median_g=(6.0, 9.0, 14.0), beta=(0.5,) * 3, **PD))
    assert np.all(np.asarray(weak.lpr_mean) > 1e-5) and np.all(np.asarray(strong.lpr_mean) < 1e-5)
    assert np.all(np.asarray(weak.lpr_p90) >= np.asarray(weak.lpr_p50))
