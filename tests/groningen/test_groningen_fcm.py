"""FCM-V7 / V6 / TNO-2020: fragility, consequence and the TNO conversion, checked by hand."""

from __future__ import annotations

import csv
import math

import numpy as np
import pytest

from fragility.groningen import lognormal_poe, load_fcm, p_death_nested
from hra.inputs import modeldata as md


def _row(model_dir, rel, cls):
    with open(model_dir / rel, encoding="utf-8-sig", newline="") as f:
        for r in csv.DictReader(f):
            if r["structural_system"] == cls:
                return {k: (float(v) if k != "structural_system" else v) for k, v in r.items()}
    raise KeyError(cls)


def _phi(z):
    return 0.5 * math.erfc(-z / math.sqrt(2.0))


def test_p_exceed_by_hand_from_one_row(model_dir, fcm_v7):
    """URM3M_U, Middle branch: ln SD = b0 + b1 ln AvgSa with sigma; P(>= CS_k) by hand."""
    r = _row(model_dir, md.MODEL_FILES["V7"]["fragility_Middle"][0], "URM3M_U")
    for state in ("CS1", "CS2", "CS3", "DS3"):
        dl = r[f"DL_{state}"]
        for a in (0.05, 0.3, 1.2):
            by_hand = _phi((r["b0"] + r["b1"] * math.log(a) - math.log(dl)) / r["sigma"])
            assert float(fcm_v7.p_exceed("URM3M_U", state, a, "Middle")) == pytest.approx(by_hand, rel=1e-12, abs=1e-300)
        t = fcm_v7.typology_index("URM3M_U")
        if state.startswith("CS"):
            k = fcm_v7.states.index(state)
            assert fcm_v7.median_g[t, 1, k] == pytest.approx(math.exp((math.log(dl) - r["b0"]) / r["b1"]))
            assert fcm_v7.beta[t, 1, k] == pytest.approx(r["sigma"] / r["b1"])
    assert float(fcm_v7.p_exceed("URM3M_U", "CS1", 0.0)) == 0.0


def test_arrays_and_weights(fcm_v7):
    n = len(fcm_v7.typologies)
    assert n == 35 and "URM1F_HA" in fcm_v7.typologies
    assert fcm_v7.median_g.shape == fcm_v7.beta.shape == (n, 3, 3)
    assert fcm_v7.p_death_inside.shape == fcm_v7.p_death_outside.shape == (n, 3, 3)
    assert fcm_v7.chimney_death_median_g.shape == (n, 3)
    assert np.allclose(fcm_v7.fragility_weights, [0.17, 0.66, 0.17])
    assert np.allclose(fcm_v7.consequence_weights, [0.25, 0.5, 0.25])
    # nested states: A50(CS1) <= A50(CS2) <= A50(CS3); Lower branch is the least fragile
    assert np.all(np.diff(fcm_v7.median_g, axis=-1) >= -1e-12)
    assert np.all(fcm_v7.median_g[:, 0] > fcm_v7.median_g[:, 1]) and np.all(fcm_v7.median_g[:, 1] > fcm_v7.median_g[:, 2])
    # consequence branches: Lower = 0.8 x Middle; Upper >= Middle (1.2 x for most classes)
    mid = fcm_v7.p_death_inside[:, 1]
    nz = mid > 0
    assert np.allclose(fcm_v7.p_death_inside[:, 0][nz] / mid[nz], 0.8, rtol=2e-3)
    assert np.all(fcm_v7.p_death_inside[:, 2] >= mid)


def test_nested_death_formula(model_dir, fcm_v7):
    """P_die = sum_k P(>=CS_k)(Pd_k - Pd_(k-1)) = sum_k [P(>=CS_k) - P(>=CS_(k+1))] Pd_k (URM2L)."""
    f = _row(model_dir, md.MODEL_FILES["V7"]["fragility_Middle"][0], "URM2L")
    c = _row(model_dir, md.MODEL_FILES["V7"]["fatality_Middle"][0], "URM2L")
    a = 0.6
    pge = [_phi((f["b0"] + f["b1"] * math.log(a) - math.log(f[f"DL_CS{k}"])) / f["sigma"]) for k in (1, 2, 3)]
    for loc in ("inside", "outside"):
        pd = [c[f"Pd_{loc}|CS{k}"] for k in (1, 2, 3)]
        exclusive = (pge[0] - pge[1]) * pd[0] + (pge[1] - pge[2]) * pd[1] + pge[2] * pd[2]
        assert float(fcm_v7.p_death("URM2L", a, "Middle", "Middle", loc)) == pytest.approx(exclusive, rel=1e-12)
    assert float(p_death_nested([0.5, 0.2, 0.1], [0.1, 0.3, 0.6])) == pytest.approx(0.5 * 0.1 + 0.2 * 0.2 + 0.1 * 0.3)


def test_chimney_terms(model_dir, fcm_v7):
    c = _row(model_dir, md.MODEL_FILES["V7"]["fatality_Middle"][0], "RC3L")
    by_hand = _phi((math.log(0.3) - math.log(c["Median_PGA_chd"])) / c["beta_chd"])
    assert float(fcm_v7.p_chimney_death("RC3L", 0.3)) == pytest.approx(by_hand, rel=1e-12)
    assert float(fcm_v7.p_chimney_death("RC1L", 0.3)) == 0.0  # median 0: no chimney
    f = _row(model_dir, md.MODEL_FILES["V7"]["fragility_Upper"][0], "URM9L")
    assert float(fcm_v7.p_chimney_failure("URM9L", 0.5, "Upper")) == pytest.approx(
        _phi((math.log(0.5) - math.log(f["Median_PGA_chf"])) / f["beta_chf"]), rel=1e-12)
    assert np.allclose(lognormal_poe([0.0, 1.0], 0.0, 0.5), 0.0)


def test_tno2020_conversion_by_hand(model_dir):
    tno = load_fcm("fcm-tno2020", model_dir)
    v7 = load_fcm("fcm-v7", model_dir)
    v6 = load_fcm("fcm-v6", model_dir)
    assert len(tno.typologies) == 35 and set(tno.typologies) == set(v7.typologies)

    # URM5L: base v7, frag_med_shift = yes, modelonzekerheid 0.35
    r = _row(model_dir, md.MODEL_FILES["V7"]["fragility_Middle"][0], "URM5L")
    b0_mid = r["b0"] - r["b1"] * math.log(0.85)
    t = tno.typology_index("URM5L")
    assert np.allclose(tno.b0[t], [b0_mid - 1.73 * 0.35, b0_mid, b0_mid + 1.73 * 0.35])
    # the median capacity is 0.85 x the V7 Middle one
    assert tno.median_g[t, 1, 0] == pytest.approx(0.85 * v7.median_g[v7.typology_index("URM5L"), 1, 0])
    assert np.allclose(tno.p_death_inside[t], v7.p_death_inside[v7.typology_index("URM5L")])

    # URM3L: base v7, frag_up2mid = yes, conseq_up2mid = yes
    up = _row(model_dir, md.MODEL_FILES["V7"]["fragility_Upper"][0], "URM3L")
    t = tno.typology_index("URM3L")
    assert np.allclose(tno.b0[t], [up["b0"] - 1.73 * 0.35, up["b0"], up["b0"] + 1.73 * 0.35])
    c_mid = _row(model_dir, md.MODEL_FILES["V7"]["fatality_Middle"][0], "URM3L")
    c_up = _row(model_dir, md.MODEL_FILES["V7"]["fatality_Upper"][0], "URM3L")
    for k in (1, 2, 3):
        pin = tno.p_death_inside[t, :, k - 1]
        ratio = c_up[f"Pd_inside|CS{k}"] / c_mid[f"Pd_inside|CS{k}"]
        assert np.allclose(pin, [c_mid[f"Pd_inside|CS{k}"], c_up[f"Pd_inside|CS{k}"], c_up[f"Pd_inside|CS{k}"] * ratio])

    # RC1L: base v6, modelonzekerheid 0.47, no shifts; sigma and limits from V6
    r6 = _row(model_dir, md.MODEL_FILES["V6"]["fragility_Middle"][0], "RC1L")
    t = tno.typology_index("RC1L")
    assert np.allclose(tno.b0[t], [r6["b0"] - 1.73 * 0.47, r6["b0"], r6["b0"] + 1.73 * 0.47])
    assert tno.beta[t, 1, 0] == pytest.approx(r6["sigma"] / r6["b1"])
    assert np.allclose(tno.p_death_outside[t], v6.p_death_outside[v6.typology_index("RC1L")])


def test_fcm_v6_and_errors(model_dir, fcm_v7):
    v6 = load_fcm("fcm-v6", model_dir)
    assert "W1" in v6.typologies and "URM1F_B" not in v6.typologies
    with pytest.raises(KeyError, match="unknown FCM"):
        load_fcm("fcm-v9", model_dir)
    with pytest.raises(KeyError, match="not in fcm-v7"):
        fcm_v7.p_exceed("W1", "CS1", 0.1)
    with pytest.raises(KeyError, match="unknown limit state"):
        fcm_v7.p_exceed("RC1L", "CS4", 0.1)
