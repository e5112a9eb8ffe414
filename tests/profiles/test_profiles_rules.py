"""Profile assignment (Besluit art. 4): rules, presets, horizons, explanations and bad inputs.

Expected profiles are worked out by hand from the rule text for tiny synthetic Datasets.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hra.policy.profiles import (
    PRESETS,
    PROFILE_RANK,
    ProfileError,
    ProfileRule,
    YearRange,
    apply_ratchet,
    assign_profiles,
    default_run_id,
    load_rule,
    provenance_hash,
    resolve_horizons,
    risk_dataset_from_arrays,
)

LOW = 1e-7


def _by_id(df):
    return df.set_index("building_id")


def test_each_profile_with_decisive_statistic_and_year(make_ds):
    # years 2025..2030: short = 2025-2027, long = 2028-2030
    ds = make_ds({
        # mean exceeds only in 2026 -> verhoogd, decided by lpr_mean in 2026
        "V": ([5e-6, 2e-5, 5e-6, LOW, LOW, LOW], 4e-6, 3e-5),
        # P90 above in short and long (highest long value in 2029) -> langjarig
        "L": (2e-6, 1e-6, [2e-5, 2e-5, 2e-5, 1.5e-5, 1.8e-5, 1.2e-5]),
        # P90 above only in the short horizon (peak 2027) -> licht verhoogd
        "S": (2e-6, 1e-6, [1.1e-5, 1.2e-5, 1.3e-5, 5e-6, 4e-6, 3e-6]),
        # P90 above only in the long horizon -> normaal (licht needs the short horizon)
        "N": (2e-6, 1e-6, [5e-6, 6e-6, 7e-6, 2e-5, 2e-5, 2e-5]),
    })
    df = _by_id(assign_profiles(ds, "besluit-2019"))
    assert df.loc["V", "profile"] == "verhoogd"
    assert (df.loc["V", "decisive_statistic"], df.loc["V", "decisive_year"]) == ("lpr_mean", 2026)
    assert df.loc["V", "decisive_value"] == pytest.approx(2e-5)
    assert "lpr_mean" in df.loc["V", "explanation"] and "2026" in df.loc["V", "explanation"]

    assert df.loc["L", "profile"] == "langjarig_licht_verhoogd"
    assert (df.loc["L", "decisive_statistic"], df.loc["L", "decisive_year"], df.loc["L", "decisive_horizon"]) == (
        "lpr_p90", 2029, "long")

    assert df.loc["S", "profile"] == "licht_verhoogd"
    assert (df.loc["S", "decisive_statistic"], df.loc["S", "decisive_year"]) == ("lpr_p90", 2027)

    assert df.loc["N", "profile"] == "normaal"
    assert df.loc["N", "decisive_year"] == 2027  # highest short-horizon P90, still below the norm
    assert df.loc["N", "time_unsafe_years"] == 3  # P90 > 1e-5 in 2028, 2029, 2030
    assert df.loc["L", "time_unsafe_years"] == 6
    assert df.loc["S", "lpr_p90_short_max"] == pytest.approx(1.3e-5)
    assert df.loc["S", "lpr_p90_long_max"] == pytest.approx(5e-6)
    assert df.attrs["short_horizon"] == [2025, 2026, 2027]
    assert df.attrs["long_horizon"] == [2028, 2029, 2030]


def test_presets_differ_on_mean_versus_p50(make_ds):
    # skewed distribution: mean above the norm, median below, P90 above in the short horizon only
    ds = make_ds({"B": (2e-5, 5e-6, [4e-5, 4e-5, 4e-5, 1e-6, 1e-6, 1e-6])})
    assert assign_profiles(ds, "besluit-2019")["profile"].iloc[0] == "verhoogd"
    practice = assign_profiles(ds, "practice-p50")
    assert practice["profile"].iloc[0] == "licht_verhoogd"
    assert "lpr_p50" in practice["explanation"].iloc[0]
    assert PRESETS["practice-p50"].verhoogd.statistic == "p50"


def test_threshold_is_strict(make_ds):
    ds = make_ds({"B": (1e-5, 1e-5, 1e-5)})
    assert assign_profiles(ds)["profile"].iloc[0] == "normaal"


def test_langjarig_any_year_versus_every_year(make_ds):
    # P90 above in every short year, but in only one year of the long horizon
    ds = make_ds({"B": (1e-6, 1e-6, [2e-5, 2e-5, 2e-5, 2e-5, 5e-6, 5e-6])})
    any_rule = PRESETS["besluit-2019"]
    all_rule = load_rule({"name": "strict", "langjarig_licht_verhoogd": {"statistic": "p90", "years": "all"}})
    assert assign_profiles(ds, any_rule)["profile"].iloc[0] == "langjarig_licht_verhoogd"
    res = assign_profiles(ds, all_rule).iloc[0]
    assert res["profile"] == "licht_verhoogd"
    assert "in every year of" in res["explanation"]


def test_explicit_horizons(make_ds):
    ds = make_ds({"B": (1e-6, 1e-6, [5e-6, 2e-5, 5e-6, 5e-6, 2e-5, 5e-6])})
    # short 2026 only, long 2029-2030 -> langjarig; default horizons (long 2028-2030) also langjarig
    rule = PRESETS["besluit-2019"].with_horizons(YearRange(first=2026, last=2026), YearRange(first=2029, last=2030))
    out = assign_profiles(ds, rule)
    assert out["profile"].iloc[0] == "langjarig_licht_verhoogd"
    assert out.attrs["short_horizon"] == [2026] and out.attrs["long_horizon"] == [2029, 2030]
    # long horizon 2030 only -> P90 5e-6 there -> licht verhoogd
    rule2 = PRESETS["besluit-2019"].with_horizons(long=YearRange(first=2030, last=2030))
    assert assign_profiles(ds, rule2)["profile"].iloc[0] == "licht_verhoogd"


def test_overlapping_horizons_are_refused(make_ds):
    with pytest.raises(ProfileError, match="overlap"):
        PRESETS["besluit-2019"].with_horizons(YearRange(first=2025, last=2027), YearRange(first=2027, last=2030))
    with pytest.raises(ProfileError, match="overlap"):
        load_rule({"short": {"first": 2025, "last": 2028}, "long": {"first": 2026, "last": 2030}})
    # overlap that only shows against the Dataset: default short (first 3 years) vs explicit long
    ds = make_ds({"B": (1e-6, 1e-6, 1e-6)})
    rule = load_rule({"long": {"first": 2027, "last": 2030}})
    with pytest.raises(ProfileError, match=r"overlap in years \[2027\]"):
        assign_profiles(ds, rule)


def test_empty_horizons_are_refused(make_ds):
    ds3 = make_ds({"B": (1e-6, 1e-6, 1e-6)}, years=[2025, 2026, 2027])
    with pytest.raises(ProfileError, match="long horizon .* holds no year"):
        assign_profiles(ds3)
    ds = make_ds({"B": (1e-6, 1e-6, 1e-6)})
    with pytest.raises(ProfileError, match="short horizon .*2040-2042.* holds no year"):
        resolve_horizons(ds["year"].values, load_rule({"short": {"first": 2040, "last": 2042}}))
    with pytest.raises(ProfileError, match="empty"):
        load_rule({"short": {"first": 2030, "last": 2025}})


def test_bad_datasets_name_the_problem(make_ds):
    ds = make_ds({"A": (1e-6, 1e-6, 1e-6), "B": (1e-6, 1e-6, 1e-6)})
    bad = ds.copy(deep=True)
    bad["lpr_p90"].values[1, 2] = np.nan
    with pytest.raises(ProfileError, match=r"lpr_p90.*building 'B', year 2027"):
        assign_profiles(bad)
    with pytest.raises(ProfileError, match="'lpr_p50' needed by the profile rule is missing"):
        assign_profiles(ds.drop_vars("lpr_p50"), "practice-p50")
    dup = ds.assign_coords(building_id=("building", np.array(["A", "A"], dtype=object)))
    with pytest.raises(ProfileError, match="not unique: A"):
        assign_profiles(dup)
    no_prov = ds.copy()
    no_prov.attrs = {}
    with pytest.raises(ProfileError, match="provenance"):
        provenance_hash(no_prov)


def test_rule_file_and_invalid_keys(tmp_path):
    good = tmp_path / "rule.toml"
    good.write_text('[verhoogd]\nstatistic = "p50"\nthreshold = 2e-5\n[langjarig_licht_verhoogd]\n'
                    'statistic = "p90"\nyears = "all"\n')
    rule = load_rule(good)
    assert rule.name == "rule" and rule.verhoogd.variable == "lpr_p50" and rule.verhoogd.threshold == 2e-5
    bad = tmp_path / "bad.toml"
    bad.write_text('[verhoogd]\nstatistic = "mean"\nthreshold = -1\n')
    with pytest.raises(ProfileError, match=r"bad\.toml.*verhoogd\.threshold"):
        load_rule(bad)
    with pytest.raises(ProfileError, match="unknown profile rule 'nonsense'"):
        load_rule("nonsense")
    with pytest.raises(ProfileError, match="statistic"):
        load_rule({"verhoogd": {"statistic": "median"}})


def test_provenance_hash_and_default_run_id():
    prov = json.dumps({"config_sha256": "abcdef0123456789", "package_version": "1", "seed": 3})
    ds = risk_dataset_from_arrays(["a"], [2031, 2032], np.zeros((1, 2)), np.zeros((1, 2)), np.zeros((1, 2)),
                                  provenance=prov)
    assert provenance_hash(ds) == hashlib.sha256(prov.encode()).hexdigest()
    assert default_run_id(ds) == "2031-abcdef01"


def test_apply_ratchet_reasons():
    assert apply_ratchet("verhoogd", "licht_verhoogd") == ("verhoogd", "computed")
    assert apply_ratchet("normaal", "licht_verhoogd") == ("licht_verhoogd", "ratchet")
    assert apply_ratchet("normaal", "licht_verhoogd", ["verhoogd"]) == ("verhoogd", "adjustment")
    assert apply_ratchet("normaal") == ("normaal", "computed")


@settings(derandomize=True, max_examples=40, deadline=None)
@given(
    base=st.lists(st.floats(1e-8, 1e-4), min_size=18, max_size=18),
    factor=st.floats(1.0, 10.0),
    preset=st.sampled_from(sorted(PRESETS)),
)
def test_raising_risk_never_lowers_the_profile(base, factor, preset):
    """Property: multiplying every LPR statistic by a factor >= 1 never gives a lower profile."""
    a = np.array(base).reshape(3, 6)
    mean, p50 = a[0:1], a[1:2]
    p90 = np.maximum(a[2:3], np.maximum(mean, p50))
    ds = risk_dataset_from_arrays(["b"], list(range(2025, 2031)), mean, p50, p90)
    up = risk_dataset_from_arrays(["b"], list(range(2025, 2031)), mean * factor, p50 * factor, p90 * factor)
    p0 = assign_profiles(ds, preset)["profile"].iloc[0]
    p1 = assign_profiles(up, preset)["profile"].iloc[0]
    assert PROFILE_RANK[p1] >= PROFILE_RANK[p0]


def test_profile_rule_is_a_pydantic_model_with_forbidden_extras():
    with pytest.raises(ProfileError, match=r"key \[verhogd\]: .*; fix: remove it or check its spelling \(see hra.policy.profiles.ProfileRule"):
        load_rule({"verhogd": {"statistic": "mean"}})
    assert isinstance(PRESETS["besluit-2019"], ProfileRule)
