"""[logic_tree] weights and fix: a fixed branch gives a run of that branch alone (built
independently, with a one-branch input), re-weighting gives the weighted sum of the per-branch
means exactly, and bad keys fail with the node, the label and the fix."""

from __future__ import annotations

import numpy as np
import pytest

from hra.chain import EngineError
from hra.config import ConfigError
from hra.integration.engine import compute
from tests.helpers import make_config

CURVES = {"URM": ((0.15, 0.3, 0.6), 0.5, (0.01, 0.1, 0.3))}
CELL = (250_000.0, 590_000.0)
B = [dict(id="B1", x=CELL[0] + 4000.0, y=CELL[1], typology="URM"), dict(id="B2", x=CELL[0] - 9000.0, y=CELL[1] + 2000.0,
                                                                         typology="URM")]


def _cfg(tmp, **kw):
    args = dict(cells=[(*CELL, 0.5), (CELL[0] + 6000.0, CELL[1] - 3000.0, 0.2)], curves=CURVES, buildings=B,
                m_max=((4.5, 0.3), (5.5, 0.7)), rate_branches=[("low", 0.4, 0.5), ("high", 0.6, 1.5)],
                frag_branches=[("weak", 0.5, 0.8), ("strong", 0.5, 1.25)])
    args.update(kw)
    return make_config(tmp, **args)


def test_fixed_branch_equals_a_run_of_that_branch_alone(tmp_path):
    cfg = _cfg(tmp_path / "full")
    for node, label, alone in (
        ("fragility", "strong", dict(frag_branches=[("strong", 1.0, 1.25)])),
        ("m_max", "Mmax=4.5", dict(m_max=((4.5, 1.0),))),
        ("source", "high", dict(rate_branches=[("high", 1.0, 1.5)])),
    ):
        fixed = compute(cfg.with_updates(logic_tree={"fix": {node: label}}))
        ref = compute(_cfg(tmp_path / node, **alone))
        np.testing.assert_allclose(fixed.mean, ref.mean, rtol=1e-12)
        np.testing.assert_allclose(fixed.quantiles, ref.quantiles, rtol=1e-12)  # zero-weight branches never decide


def test_reweighting_is_the_weighted_sum_of_branch_means(tmp_path):
    cfg = _cfg(tmp_path)
    base = compute(cfg).mean
    per = {lab: compute(cfg.with_updates(logic_tree={"fix": {"fragility": lab}})).mean for lab in ("weak", "strong")}
    np.testing.assert_allclose(base, 0.5 * per["weak"] + 0.5 * per["strong"], rtol=1e-12)
    rw = compute(cfg.with_updates(logic_tree={"weights": {"fragility": {"weak": 0.9, "strong": 0.1}}})).mean
    np.testing.assert_allclose(rw, 0.9 * per["weak"] + 0.1 * per["strong"], rtol=1e-12)
    assert not np.allclose(rw, base)
    # a node's weights from [source.magnitude] and from [logic_tree] are the same thing
    a = compute(cfg.with_updates(logic_tree={"weights": {"m_max": {"Mmax=4.5": 0.8, "Mmax=5.5": 0.2}}})).mean
    b = compute(_cfg(tmp_path / "m", m_max=((4.5, 0.8), (5.5, 0.2)))).mean
    np.testing.assert_allclose(a, b, rtol=1e-12)


def test_demo_gmm_node_fixed_and_reweighted(tmp_path):
    """A GMM node (fixed in the model code until now) of the demo model."""
    import hra

    cfg = hra.demo_config(n_buildings=4, seed=2, realisations="all", years=(2025,), workers=1, directory=tmp_path)
    cfg = cfg.with_updates(compute={"scheduler": "synchronous", "progress": False})
    per = {lab: compute(cfg.with_updates(logic_tree={"fix": {"gmm_sigma": lab}})) for lab in ("low", "high")}
    assert np.all(per["high"].mean > per["low"].mean)
    rw = compute(cfg.with_updates(logic_tree={"weights": {"gmm_sigma": {"low": 0.25, "high": 0.75}}}))
    np.testing.assert_allclose(rw.mean, 0.25 * per["low"].mean + 0.75 * per["high"].mean, rtol=1e-12)
    assert dict(zip(*[rw.prep.tree.node("gmm_sigma").labels, rw.prep.tree.node("gmm_sigma").weights])) == \
        {"low": 0.25, "high": 0.75}


def test_errors_name_the_key_and_the_fix(tmp_path):
    cfg = _cfg(tmp_path)
    with pytest.raises(EngineError, match=r"unknown node 'gmm_foo'.*source, b_value, m_max.*fix the node name"):
        compute(cfg.with_updates(logic_tree={"fix": {"gmm_foo": "x"}}))
    with pytest.raises(EngineError, match=r"fix.fragility = 'medium'.*no branch 'medium'.*weak, strong"):
        compute(cfg.with_updates(logic_tree={"fix": {"fragility": "medium"}}))
    with pytest.raises(EngineError, match=r"weights.m_max.*'Mmax=5'.*Mmax=4.5, Mmax=5.5"):
        compute(cfg.with_updates(logic_tree={"weights": {"m_max": {"Mmax=5": 1.0}}}))
    from hra.config import config_from_dict

    data = cfg.model_dump(mode="json")
    for lt, msg in (({"weights": {"fragility": {"weak": 0.5, "strong": 0.6}}}, "sum to 1.1"),
                    ({"weights": {"fragility": {"weak": 1.0}}, "fix": {"fragility": "weak"}}, "both weights and fix"),
                    ({"weight": {}}, "logic_tree.weight")):
        with pytest.raises(ConfigError, match=msg):
            config_from_dict({**data, "logic_tree": lt})


def test_cli_bad_logic_tree_exits_2(tmp_path):
    import tomli_w
    from typer.testing import CliRunner

    from hra.cli.main import app

    cfg = _cfg(tmp_path)
    data = cfg.model_dump(mode="json", exclude={"base_dir", "source_file"})
    data["logic_tree"] = {"fix": {"gmm_median": "Upper"}}  # the parametric GMM has no such node
    (tmp_path / "bad.toml").write_text(tomli_w.dumps(_drop_none(data)))
    r = CliRunner().invoke(app, ["run", str(tmp_path / "bad.toml")])
    assert r.exit_code == 2 and "unknown node 'gmm_median'" in r.output and "Traceback" not in r.output


def _drop_none(d):
    if isinstance(d, dict):
        return {k: _drop_none(v) for k, v in d.items() if v is not None}
    if isinstance(d, list):
        return [_drop_none(v) for v in d]
    return d
