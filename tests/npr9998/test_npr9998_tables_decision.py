"""Normative tables, decision tables, catalogue and the normbesluit."""

from __future__ import annotations

import math

import pytest

import npr9998 as n
from npr9998.errors import ProvisionalTableWarning

USER_TOML = """
schema = "npr9998-tables/1"
edition = "NPR 9998:2020"
table_version = "office-2024-03"
provisional = false

[design_spectrum]
beta = 0.2

[consequence_classes.CC2]
return_period_yr = 2475
importance_factor = 1.0

[consequence_classes.CC3]
return_period_yr = 4975
importance_factor = 1.0

[structural_systems.urm]
q = 1.5
drift_limit_nc = 0.005
"""

USER_CSV = """table,key,field,value
meta,,schema,npr9998-tables/1
meta,,edition,NPR 9998:2020
meta,,table_version,office-2024-03
meta,,provisional,false
design_spectrum,,beta,0.2
consequence_class,CC2,return_period_yr,2475
consequence_class,CC2,importance_factor,1.0
consequence_class,CC3,return_period_yr,4975
structural_system,urm,q,1.5
structural_system,urm,drift_limit_nc,0.005
"""


def test_provisional_tables_are_labelled_and_warn():
    with pytest.warns(ProvisionalTableWarning, match="PROVISIONAL"):
        t = n.load_tables()
    assert t.provisional is True
    assert t.edition and t.table_version and len(t.sha256) == 64
    assert t.source.startswith("package:npr9998/data/provisional_tables.toml")
    assert set(t.consequence_classes) >= {"CC1A", "CC1B", "CC2", "CC3"}
    assert t.structural_system("URM").q == 1.5  # case-insensitive


def test_user_tables_toml_and_csv_are_equivalent_and_recorded(tmp_path, stiff_curve, two_storey, spectrum):
    (tmp_path / "t.toml").write_text(USER_TOML)
    (tmp_path / "t.csv").write_text(USER_CSV)
    a = n.load_tables(tmp_path / "t.toml")
    b = n.load_tables(tmp_path / "t.csv")
    assert a.provisional is False and b.provisional is False
    assert a.consequence_classes == b.consequence_classes and a.structural_systems == b.structural_systems
    assert a.structural_system("urm").c_t == 0.05  # default
    r = n.n2_method(stiff_curve, two_storey, spectrum, tables=a)
    assert (r.edition, r.table_version, r.provisional) == ("NPR 9998:2020", "office-2024-03", False)


@pytest.mark.parametrize(
    "edit, words",
    [
        (lambda s: s.replace("q = 1.5", "q = 0.5"), ["structural_systems.urm.q", "greater than or equal to 1"]),
        (lambda s: s.replace("drift_limit_nc = 0.005", "drift_limit_nc = 0.005\nqq = 2"), ["key [structural_systems.urm.qq]", "remove it or check its spelling"]),
        (lambda s: s.replace('edition = "NPR 9998:2020"\n', ""), ["key [edition]: Field required; fix: add this key"]),
        (lambda s: s.replace("return_period_yr = 4975", "return_period_yr = -1"), ["consequence_classes.CC3.return_period_yr"]),
        (lambda s: s.replace('schema = "npr9998-tables/1"', 'schema = "npr9998-tables/9"'), ["schema"]),
        (lambda s: s.replace("[design_spectrum]", "[design_spectrum"), ["not valid TOML"]),
    ],
)
def test_bad_table_files_name_file_and_key(tmp_path, edit, words):
    f = tmp_path / "bad.toml"
    f.write_text(edit(USER_TOML))
    with pytest.raises(n.NPRInputError) as exc:
        n.load_tables(f)
    msg = str(exc.value)
    assert "bad.toml" in msg and "Fix:" in msg
    for w in words:
        assert w in msg


def test_bad_table_csv_row(tmp_path):
    f = tmp_path / "bad.csv"
    f.write_text(USER_CSV + "structural_sistem,rc,q,2\n")
    with pytest.raises(n.NPRInputError) as exc:
        n.load_tables(f)
    assert "row 12" in str(exc.value) and "unknown table" in str(exc.value)


def test_unknown_consequence_class_and_system():
    t = n.load_tables()
    with pytest.raises(n.NPRInputError) as exc:
        t.consequence_class("CC4")
    assert "CC4" in str(exc.value) and "CC1A" in str(exc.value) and "Fix:" in str(exc.value)
    with pytest.raises(n.NPRInputError, match="unknown structural system"):
        t.structural_system("adobe")


def test_catalogue_is_illustrative_and_every_typology_idealises():
    cat = n.load_catalogue()
    assert cat.illustrative and 4 <= len(cat.typologies) <= 8
    for name, t in cat.typologies.items():
        s = t.structure(floor_area_m2=200.0)
        c = t.pushover(s)
        assert s.total_mass_t == pytest.approx(200.0 * t.mass_t_per_m2)
        assert c.peak_shear_kn == pytest.approx(max(t.capacity_curve.base_shear_coefficient) * s.total_mass_t * 9.80665)
        assert c.ultimate_displacement_m == pytest.approx(t.capacity_curve.roof_drift[-1] * t.n_storeys * t.storey_height_m)
        n.bilinear_idealisation(n.sdof_transformation(c, s))
        n.load_tables().structural_system(t.structural_system)  # every system exists in the tables
        assert set(t.measures) == {"A", "B", "C", "D"}
    with pytest.raises(n.NPRInputError, match="not in the catalogue"):
        cat.typology("igloo")


def test_catalogue_n2_result_does_not_depend_on_floor_area(spectrum):
    t = n.load_catalogue().typology("urm_terraced_pre1920")
    ucs = []
    for area in (60.0, 600.0):
        s = t.structure(floor_area_m2=area)
        ucs.append(n.n2_method(t.pushover(s), s, spectrum).unity_check)
    assert ucs[0] == pytest.approx(ucs[1], rel=1e-12)


class _R:
    """Minimal assessment result for normbesluit()."""

    def __init__(self, uc):
        self.unity_check = uc
        self.method = "N2"
        self.governing = "roof displacement"
        self.demand, self.capacity = uc, 1.0
        self.edition, self.table_version, self.provisional = "E", "V", False


def test_normbesluit_bands_budgets_terms():
    dt = n.load_decision_tables()
    ok = n.normbesluit(_R(0.8), building_id="B1")
    assert ok.verdict == "voldoet" and ok.category == "" and ok.budget_low_eur == ok.budget_high_eur == 0.0 and ok.term_years is None
    # UC = 1.0 exactly: voldoet (bands are inclusive at the top)
    assert n.normbesluit(_R(1.0)).verdict == "voldoet"
    a = n.normbesluit(_R(1.2), floor_area_m2=100.0)
    cat_a = dt.categories[0]
    assert a.verdict == "voldoet niet" and a.category == "A"
    assert (a.budget_low_eur, a.budget_high_eur) == pytest.approx((cat_a.budget_eur_per_m2[0] * 100, cat_a.budget_eur_per_m2[1] * 100))
    assert a.term_years == cat_a.term_years
    assert n.normbesluit(_R(1.5)).category == "A"  # inclusive upper bound
    b = n.normbesluit(_R(2.0))
    assert b.category == "B" and (b.budget_low_eur, b.budget_high_eur) == dt.categories[1].budget_eur  # no area: per building
    assert n.normbesluit(_R(3.0)).category == "C"
    assert n.normbesluit(_R(50.0)).category == "D"
    rec = a.to_record()
    assert list(rec)[:8] == ["building_id", "verdict", "unity_check", "category", "budget_low", "budget_high", "edition", "table_version"]
    assert rec["edition"] == "E" and rec["table_version"] == "V"


def test_normbesluit_typology_approach_and_override():
    d = n.normbesluit(_R(2.0), typology="farmhouse", floor_area_m2=400.0)
    assert d.typology_approach and d.standard_measures and d.typology == "farmhouse"
    assert (d.budget_low_eur, d.budget_high_eur) == pytest.approx((80.0 * 400, 250.0 * 400))  # catalogue override for B
    assert "catalogue farmhouse" in d.budget_basis
    d2 = n.normbesluit(_R(2.0), typology="not_in_catalogue")
    assert not d2.typology_approach and d2.standard_measures == ()
    assert not n.normbesluit(_R(0.5), typology="farmhouse").typology_approach


def test_normbesluit_lpr_basis():
    from npr9998.assess import RiskVerdict

    risk = RiskVerdict((2025, 2026), (4e-5, 2e-5), (3e-5, 1e-5), (8e-5, 4e-5))
    d = n.normbesluit(_R(0.5), risk=risk, basis="lpr_ratio")
    assert d.verdict == "voldoet niet" and d.lpr_ratio == pytest.approx(4.0) and d.category == "B"
    assert d.risk_voldoet is False and d.unity_check == 0.5
    with pytest.raises(n.NPRInputError, match="needs a risk verdict"):
        n.normbesluit(_R(0.5), basis="lpr_ratio")
    with pytest.raises(n.NPRInputError, match="unknown decision basis"):
        n.normbesluit(_R(0.5), basis="vibes")


def test_decision_tables_validation(tmp_path):
    f = tmp_path / "d.toml"
    f.write_text(
        'schema = "npr9998-decision/1"\ntable_version = "x"\nillustrative = false\n'
        '[[categories]]\ncode = "A"\nlabel = "a"\nmax_unity_check = 2.0\nmax_lpr_ratio = 3.0\nbudget_eur = [1.0, 2.0]\nterm_years = 2\n'
        '[[categories]]\ncode = "B"\nlabel = "b"\nmax_unity_check = 1.5\nmax_lpr_ratio = inf\nbudget_eur = [1.0, 2.0]\nterm_years = 2\n'
    )
    with pytest.raises(n.NPRInputError) as exc:
        n.load_decision_tables(f)
    assert "increasing max_unity_check" in str(exc.value) and "d.toml" in str(exc.value)
    dt = n.load_decision_tables()
    assert dt.illustrative and math.isinf(dt.categories[-1].max_unity_check)
