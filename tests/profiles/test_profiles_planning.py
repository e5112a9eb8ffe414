"""Municipal plans (art. 5, 6): order, capacity, lead times, additions, feasibility, bad inputs."""

from __future__ import annotations

import hashlib
import importlib.util
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hra.policy import planning
from hra.policy.planning import STAGES, PlanConfig, load_plan_config, make_plan, plot_plan, prepare_profiles, write_plan
from hra.policy.profiles import PROFILE_RANK, ProfileError

ALL_CAP = {s: 1 for s in STAGES}


def _table(rows):
    """rows: (building_id, profile, p90, time_unsafe, municipality)."""
    return pd.DataFrame(rows, columns=["building_id", "applied_profile", "lpr_p90_short_max", "time_unsafe_years",
                                       "municipality"])


def _cfg(**kw):
    data = {"start_year": 2026, "horizon_years": 40, "capacity": ALL_CAP}
    data.update(kw)
    return PlanConfig.model_validate(data)


def test_order_profile_then_statistic_then_time_unsafe_then_id():
    t = _table([
        ("n1", "normaal", 9e-5, 6, "X"),
        ("l1", "licht_verhoogd", 5e-5, 1, "X"),
        ("lj1", "langjarig_licht_verhoogd", 1.1e-5, 6, "X"),
        ("v2", "verhoogd", 3e-5, 2, "X"),
        ("v1", "verhoogd", 3e-5, 5, "X"),   # same P90 as v2, unsafe longer -> first
        ("v3", "verhoogd", 3e-5, 5, "X"),   # ties with v1 on both -> by id
        ("v0", "verhoogd", 8e-5, 0, "X"),
        ("a1", "normaal", 1e-6, 0, "X"),
    ])
    res = make_plan(t, _cfg(additions=["a1"]))
    assert res.schedule["building_id"].tolist() == ["v0", "v1", "v3", "v2", "lj1", "l1", "a1"]
    assert res.schedule["priority"].tolist() == list(range(1, 8))
    assert res.schedule["addition"].tolist() == [False] * 6 + [True]
    # capacity 1 per stage and no lead time: the k-th building does every stage in year 2026 + k - 1
    for k, row in enumerate(res.schedule.to_dict("records")):
        assert all(row[s] == 2026 + k for s in STAGES)
    assert res.excluded.set_index("building_id").loc["n1", "reason"] == "normaal, not added (art. 5.5)"


def test_lead_times_and_exact_schedule():
    t = _table([("A", "verhoogd", 3e-5, 0, "X"), ("B", "verhoogd", 2e-5, 0, "X")])
    cfg = _cfg(capacity={"opname": 1, "beoordeling": 2, "normbesluit": 2, "versterkingsbesluit": 2,
                         "uitvoering": 1},
               lead_years={"beoordeling": 0, "normbesluit": 1, "versterkingsbesluit": 0, "uitvoering": 2})
    s = make_plan(t, cfg).schedule.set_index("building_id")
    assert [int(s.loc["A", st_]) for st_ in STAGES] == [2026, 2026, 2027, 2027, 2029]
    assert [int(s.loc["B", st_]) for st_ in STAGES] == [2027, 2027, 2028, 2028, 2030]


def test_capacity_precedence_per_municipality_and_year():
    cfg = _cfg(capacity={**ALL_CAP, "opname": 5},
               capacity_municipality={"X": {"opname": 3}},
               capacity_year=[{"scope": "municipality", "municipality": "X", "stage": "opname", "year": 2027,
                               "capacity": 1},
                              {"scope": "default", "stage": "opname", "year": 2027, "capacity": 2}])
    caps = planning._Capacities(cfg)
    assert caps.get("X", "opname", 2026) == 3  # municipality value
    assert caps.get("X", "opname", 2027) == 1  # municipality + year
    assert caps.get("Y", "opname", 2027) == 2  # default + year
    assert caps.get("Y", "opname", 2026) == 5  # default
    assert caps.get("Y", "uitvoering", 2026) == 1
    t = _table([(f"b{i}", "verhoogd", 1e-4 - i * 1e-6, 0, "X") for i in range(5)])
    opname = make_plan(t, cfg).schedule["opname"].tolist()
    assert opname == [2026, 2026, 2026, 2027, 2028]


def test_feasibility_reports_overload_per_stage_and_year():
    rows = [(f"x{i}", "verhoogd", 5e-5, 0, "X") for i in range(5)] + \
           [(f"y{i}", "licht_verhoogd", 5e-5, 0, "Y") for i in range(4)]
    cfg = _cfg(capacity={s: 3 for s in STAGES}, capacity_global={"opname": 4, "uitvoering": 10})
    res = make_plan(_table(rows), cfg)
    f = res.feasibility.set_index(["year", "stage"])
    # 2026: X does 3, Y does 3 -> 6 planned, global 4 -> overload 2 (same for every stage, lead 0)
    assert f.loc[(2026, "opname"), "planned"] == 6 and f.loc[(2026, "opname"), "overload"] == 2
    assert f.loc[(2027, "opname"), "planned"] == 3 and f.loc[(2027, "opname"), "overload"] == 0
    assert np.isnan(f.loc[(2026, "beoordeling"), "global_capacity"])  # not given: unchecked
    assert f.loc[(2026, "beoordeling"), "overload"] == 0
    assert f.loc[(2026, "uitvoering"), "overload"] == 0
    assert not res.feasible
    j = res.jaarschijven.set_index(["municipality", "year", "stage"])
    assert j.loc[("X", 2026, "opname"), "planned"] == 3 and j.loc[("X", 2027, "opname"), "planned"] == 2
    assert j.loc[("Y", 2026, "uitvoering"), "licht_verhoogd"] == 3
    assert make_plan(_table(rows), _cfg(capacity={s: 3 for s in STAGES}, capacity_global={"opname": 6})).feasible


profile_st = st.sampled_from(["verhoogd", "langjarig_licht_verhoogd", "licht_verhoogd", "normaal"])


@st.composite
def plan_inputs(draw):
    n = draw(st.integers(1, 25))
    rows = []
    for i in range(n):
        rows.append((f"b{i:02d}", draw(profile_st), draw(st.floats(1e-7, 1e-4)),
                     draw(st.integers(0, 6)), draw(st.sampled_from(["X", "Y", "Z"]))))
    caps = {s: draw(st.integers(1, 3)) for s in STAGES}
    lead = {s: draw(st.integers(0, 2)) for s in STAGES[1:]}
    mun_caps = {"Y": {"uitvoering": draw(st.integers(1, 2))}}
    return _table(rows), caps, lead, mun_caps


@settings(derandomize=True, max_examples=40, deadline=None)
@given(plan_inputs())
def test_property_capacity_never_exceeded_and_order_kept(inputs):
    table, caps, lead, mun_caps = inputs
    cfg = _cfg(capacity=caps, lead_years=lead, capacity_municipality=mun_caps, add_all_normaal=True)
    res = make_plan(table, cfg)
    s = res.schedule
    assert s["scheduled"].all() and len(s) == len(table)
    c = planning._Capacities(cfg)
    for (mun, stage), grp in s.melt(id_vars=["municipality"], value_vars=list(STAGES), var_name="stage",
                                    value_name="year").groupby(["municipality", "stage"]):
        for year, n in grp["year"].value_counts().items():
            assert n <= c.get(mun, stage, int(year)), (mun, stage, year)
    for prev, nxt in zip(STAGES, STAGES[1:]):
        assert (s[nxt] >= s[prev] + lead[nxt]).all()
    for mun, grp in s.groupby("municipality"):
        grp = grp.sort_values("priority")
        ranks = grp["profile"].map(PROFILE_RANK).to_numpy()
        assert (np.diff(ranks) <= 0).all()  # art. 5.4 order, additions (normaal) last
        assert grp["opname"].is_monotonic_increasing  # a later building never starts earlier
    assert s["opname"].min() == 2026


@settings(derandomize=True, max_examples=40, deadline=None)
@given(plan_inputs(), st.data())
def test_property_additions_never_delay_higher_profiles(inputs, data):
    table, caps, lead, mun_caps = inputs
    normaal = table.loc[table["applied_profile"] == "normaal", "building_id"].tolist()
    adds = data.draw(st.lists(st.sampled_from(normaal), unique=True) if normaal else st.just([]))
    base = make_plan(table, _cfg(capacity=caps, lead_years=lead, capacity_municipality=mun_caps))
    more = make_plan(table, _cfg(capacity=caps, lead_years=lead, capacity_municipality=mun_caps, additions=adds))
    assert set(more.schedule.loc[more.schedule["addition"], "building_id"]) == set(adds)
    b = base.schedule.set_index("building_id")
    m = more.schedule.set_index("building_id").loc[b.index]
    for stage in STAGES:
        assert (m[stage] <= b[stage]).all(), stage


def test_additions_fill_leftover_capacity_only():
    # two verhoogd buildings, uitvoering capacity 1: the addition comes after both
    t = _table([("v1", "verhoogd", 5e-5, 0, "X"), ("v2", "verhoogd", 4e-5, 0, "X"),
                ("n1", "normaal", 9e-5, 0, "X")])
    cfg = _cfg(capacity={**{s: 3 for s in STAGES}, "uitvoering": 1}, additions=["n1"])
    s = make_plan(t, cfg).schedule.set_index("building_id")
    assert s.loc["n1", "opname"] == 2026  # opname has room for all three in 2026
    assert [s.loc[b, "uitvoering"] for b in ("v1", "v2", "n1")] == [2026, 2027, 2028]


def test_opted_out_and_profileless_buildings_are_excluded():
    t = _table([("v1", "verhoogd", 5e-5, 0, "X"), ("v2", "verhoogd", 4e-5, 0, "X"),
                ("v3", None, np.nan, 0, "X")])
    t["opted_out"] = [True, "False", False]
    res = make_plan(t, _cfg())
    assert res.schedule["building_id"].tolist() == ["v2"]
    ex = res.excluded.set_index("building_id")["reason"].to_dict()
    assert ex == {"v1": "opted out (art. 13)", "v3": "no profile in the register"}


def test_municipality_from_exposure_or_unknown():
    t = _table([("a", "verhoogd", 5e-5, 0, None), ("b", "verhoogd", 4e-5, 0, None)]).drop(columns="municipality")
    assert make_plan(t, _cfg()).schedule["municipality"].unique().tolist() == ["unknown"]
    exp = pd.DataFrame({"building_id": ["a", "b", "c"], "municipality": ["X", "Y", "Y"]})
    s = make_plan(t, _cfg(), exposure=exp).schedule
    assert dict(zip(s["building_id"], s["municipality"])) == {"a": "X", "b": "Y"}
    with pytest.raises(ProfileError, match="exposure table: 1 building.*'b'"):
        make_plan(t, _cfg(), exposure=exp.iloc[[0]])


def test_bad_plan_inputs_have_clear_errors(tmp_path):
    t = _table([("a", "verhoogd", 5e-5, 0, "X"), ("n", "normaal", 1e-6, 0, "X")])
    with pytest.raises(ProfileError, match=r"additions: building id\(s\) 'zz' are not in"):
        make_plan(t, _cfg(additions=["zz"]))
    with pytest.raises(ProfileError, match="building 'a' has profile 'verhoogd', not 'normaal'"):
        make_plan(t, _cfg(additions=["a"]))
    with pytest.raises(ProfileError, match="no capacity for stage 'uitvoering' in municipality 'X'"):
        make_plan(t, _cfg(capacity={s: 1 for s in STAGES[:-1]}))
    with pytest.raises(ProfileError, match="'normbesluit' in municipality 'X' is 0 in every plan year"):
        make_plan(t, _cfg(capacity={**ALL_CAP, "normbesluit": 0}))
    with pytest.raises(ProfileError, match="row 2 \\(building 'n'\\), column 'applied_profile': unknown profile"):
        make_plan(t.assign(applied_profile=["verhoogd", "hoog"]), _cfg())
    with pytest.raises(ProfileError, match="'a' occurs more than once"):
        make_plan(pd.concat([t, t.iloc[[0]]]), _cfg())
    with pytest.raises(ProfileError, match="sort column 'lpr_p90_short_max' is missing"):
        make_plan(t.drop(columns="lpr_p90_short_max"), _cfg())
    toml = tmp_path / "cap.toml"
    toml.write_text("start_year = 2026\n[capacity]\nopname = -3\n")
    with pytest.raises(ProfileError, match=r"cap\.toml: key \[capacity\.opname\].*greater than or equal to 0"):
        load_plan_config(toml)
    toml.write_text("[capacity]\nopname = 3\n")
    with pytest.raises(ProfileError, match="'start_year' is not set"):
        load_plan_config(toml)
    toml.write_text("start_year = 2026\n[lead_years]\nuitvoering = -1\n")
    with pytest.raises(ProfileError, match="lead_years.uitvoering"):
        load_plan_config(toml)
    csv = tmp_path / "cap.csv"
    csv.write_text("scope,municipality,stage,year,capacity\ndefault,,opname,,4\nmunicipality,X,uitvoering,,-2\n")
    with pytest.raises(ProfileError, match=r"cap\.csv: row 3, column 'capacity': -2 is negative"):
        load_plan_config(csv, start_year=2026)
    csv.write_text("scope,municipality,stage,year,capacity\ndefault,,opnamen,,4\n")
    with pytest.raises(ProfileError, match="row 2, column 'stage': 'opnamen'"):
        load_plan_config(csv, start_year=2026)
    with pytest.raises(ProfileError, match="does not exist"):
        load_plan_config(tmp_path / "missing.toml")


def test_capacity_csv_and_toml_give_the_same_config(tmp_path):
    csv = tmp_path / "cap.csv"
    csv.write_text("scope,municipality,stage,year,capacity\n"
                   + "".join(f"default,,{s},,2\n" for s in STAGES)
                   + "municipality,X,uitvoering,,1\nglobal,,uitvoering,,3\nmunicipality,X,opname,2027,0\n")
    toml = tmp_path / "cap.toml"
    toml.write_text("start_year = 2026\n[capacity]\n" + "".join(f"{s} = 2\n" for s in STAGES)
                    + "[capacity_municipality.X]\nuitvoering = 1\n[capacity_global]\nuitvoering = 3\n"
                    + '[[capacity_year]]\nscope = "municipality"\nmunicipality = "X"\nstage = "opname"\n'
                    + "year = 2027\ncapacity = 0\n")
    assert load_plan_config(csv, start_year=2026) == load_plan_config(toml)


def test_outputs_csv_png_and_parquet_error(tmp_path, monkeypatch):
    t = _table([("a", "verhoogd", 5e-5, 0, "X"), ("b", "licht_verhoogd", 4e-5, 0, "Y")])
    res = make_plan(t, _cfg(capacity_global={"opname": 1}))
    written = write_plan(res, tmp_path / "plan")
    names = sorted(p.name for p in written)
    assert names == ["excluded.csv", "feasibility.csv", "jaarschijven.csv", "provenance.json", "schedule.csv",
                     "schedule_long.csv"]
    prov = json.loads((tmp_path / "plan" / "provenance.json").read_text())
    assert prov["plan_config"]["start_year"] == res.config.start_year and "numpy" in prov["library_versions"]
    assert prov["input_sha256"]["profiles:table (CSV of the prepared table)"] == hashlib.sha256(
        prepare_profiles(t).to_csv(index=False).encode()).hexdigest()
    back = pd.read_csv(tmp_path / "plan" / "schedule.csv", dtype={"building_id": str})
    assert back["uitvoering"].tolist() == [2026, 2026]
    long = pd.read_csv(tmp_path / "plan" / "schedule_long.csv")
    assert len(long) == 2 * len(STAGES)
    assert not [p for p in (tmp_path / "plan").iterdir() if p.name.endswith(".tmp")]
    png = plot_plan(res, tmp_path / "plan" / "plan.png")
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    assert (width, height) == (900, 1080)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else real(name, *a))
    with pytest.raises(ProfileError, match="parquet needs the package pyarrow"):
        write_plan(res, tmp_path / "plan", fmt="parquet")
