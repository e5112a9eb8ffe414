"""The profile register: ratchet (art. 4.5), idempotence, atomic updates, append-only history."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError

import hra.policy.register as register_mod
from hra.policy.profiles import ProfileError
from hra.policy.register import Building, ProfileRecord, Register, RegisterMeta, Run

HIGH = (2e-5, 1.5e-5, 4e-5)    # verhoogd
LICHT = (2e-6, 1e-6, [2e-5, 2e-5, 2e-5, 1e-6, 1e-6, 1e-6])  # licht verhoogd
LOW = (1e-7, 1e-7, 1e-7)      # normaal


@pytest.fixture
def reg(tmp_path):
    r = Register(tmp_path / "register.db")
    yield r
    r.close()


def _counts(r: Register) -> dict[str, int]:
    with r.transaction() as s:
        return {
            "runs": s.scalar(select(func.count()).select_from(Run)),
            "buildings": s.scalar(select(func.count()).select_from(Building)),
            "history": s.scalar(select(func.count()).select_from(ProfileRecord)),
            "updates": s.get(RegisterMeta, 1).updates,
        }


def test_ratchet_keeps_profile_and_records_computed(reg, make_ds):
    r1 = reg.update(make_ds({"A": HIGH, "B": LICHT, "C": LOW}, tag="2025"))
    assert r1.status == "applied" and r1.computed["verhoogd"] == 1
    # next year A's LPR drops to normaal, B's to normaal, C rises to licht verhoogd
    r2 = reg.update(make_ds({"A": LOW, "B": LOW, "C": LICHT}, tag="2026"), run_id="2026")
    assert r2.n_ratchet == 2
    assert r2.computed == {"verhoogd": 0, "langjarig_licht_verhoogd": 0, "licht_verhoogd": 1, "normaal": 2}
    assert r2.applied == {"verhoogd": 1, "langjarig_licht_verhoogd": 0, "licht_verhoogd": 2, "normaal": 0}
    a = reg.show("A")
    assert a["computed"] == "normaal" and a["applied"] == "verhoogd"
    assert [(h["computed"], h["applied"], h["reason"]) for h in a["history"]] == [
        ("verhoogd", "verhoogd", "computed"), ("normaal", "verhoogd", "ratchet")]
    assert a["history"][1]["statistics"]["lpr_mean_short_max"] == pytest.approx(1e-7)
    c = reg.show("C")
    assert [h["applied"] for h in c["history"]] == ["normaal", "licht_verhoogd"]
    exp = reg.export().set_index("building_id")
    assert exp.loc["A", "computed_profile"] == "normaal" and exp.loc["A", "applied_profile"] == "verhoogd"
    assert exp.loc["A", "applied_reason"] == "ratchet"


def test_same_run_twice_changes_nothing(reg, make_ds):
    ds = make_ds({"A": HIGH, "B": LOW})
    first = reg.update(ds)
    before = _counts(reg)
    again = reg.update(ds)
    assert again.status == "unchanged" and again.run_id == first.run_id
    assert _counts(reg) == before  # not even the update counter moved


def test_same_run_id_with_other_provenance_is_refused(reg, make_ds):
    reg.update(make_ds({"A": HIGH}, tag="x"), run_id="2025")
    before = _counts(reg)
    with pytest.raises(ProfileError, match="run '2025' is already in register .* different risk run"):
        reg.update(make_ds({"A": LOW}, tag="y"), run_id="2025")
    with pytest.raises(ProfileError, match="already registered as run '2025'"):
        reg.update(make_ds({"A": HIGH}, tag="x"), run_id="other")
    with pytest.raises(ProfileError, match="with rule 'besluit-2019'"):
        reg.update(make_ds({"A": HIGH}, tag="x"), "practice-p50", run_id="2025")
    assert _counts(reg) == before


def test_interrupted_update_leaves_register_unchanged(tmp_path, make_ds, monkeypatch):
    path = tmp_path / "reg.db"
    with Register(path) as r:
        first = r.update(make_ds({"A": HIGH, "B": LICHT}, tag="2025"))
        before = _counts(r)
        calls = {"n": 0}
        real = register_mod._history_row

        def failing(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 3:
                raise RuntimeError("disk full (injected)")
            return real(*args, **kwargs)

        monkeypatch.setattr(register_mod, "_FLUSH_EVERY", 1)  # rows 1-2 are INSERTed before the failure
        monkeypatch.setattr(register_mod, "_history_row", failing)
        with pytest.raises(RuntimeError, match="injected"):
            r.update(make_ds({"A": LOW, "B": LOW, "N1": HIGH, "N2": HIGH}, tag="2026"), run_id="2026")
        assert calls["n"] == 3
    monkeypatch.undo()
    with Register(path) as r2:  # a fresh connection sees only committed data
        assert _counts(r2) == before
        assert r2.runs()["run_id"].tolist() == [first.run_id]
        with pytest.raises(ProfileError, match="'N1' is not in register"):
            r2.show("N1")
        # and the same update works once the failure is gone
        res = r2.update(make_ds({"A": LOW, "B": LOW, "N1": HIGH, "N2": HIGH}, tag="2026"), run_id="2026")
        assert res.status == "applied" and res.n_new_buildings == 2 and res.n_ratchet == 2


def test_adjustments_raise_and_act_as_floor(reg, make_ds):
    reg.update(make_ds({"A": LICHT, "B": LOW}, tag="2025"))
    aid = reg.adjust("B", "langjarig_licht_verhoogd", reason="cracks after inspection", author="gemeente X",
                     article="4.8")
    b = reg.show("B")
    assert b["applied"] == "langjarig_licht_verhoogd" and b["computed"] == "normaal"
    assert b["adjustments"][0] | {"created_at": None} == {
        "id": aid, "profile": "langjarig_licht_verhoogd", "reason": "cracks after inspection",
        "author": "gemeente X", "article": "4.8", "created_at": None}
    assert reg.export().set_index("building_id").loc["B", "applied_reason"] == "adjustment"
    res = reg.update(make_ds({"A": LICHT, "B": LOW}, tag="2026"), run_id="2026")
    assert res.n_adjusted == 1
    assert reg.show("B")["history"][-1]["applied"] == "langjarig_licht_verhoogd"
    assert reg.show("B")["history"][-1]["reason"] == "adjustment"
    with pytest.raises(ProfileError, match="does not raise its applied profile 'licht_verhoogd'"):
        reg.adjust("A", "normaal", reason="r", author="a")
    with pytest.raises(ProfileError, match="a reason is required"):
        reg.adjust("A", "verhoogd", reason=" ", author="a")
    with pytest.raises(ProfileError, match="article '5.1' unknown"):
        reg.adjust("A", "verhoogd", reason="r", author="a", article="5.1")
    with pytest.raises(ProfileError, match="unknown risk profile 'hoog'"):
        reg.adjust("A", "hoog", reason="r", author="a")
    with pytest.raises(ProfileError, match="building 'ZZZ' is not in register"):
        reg.adjust("ZZZ", "verhoogd", reason="r", author="a")


def test_history_is_append_only(reg, make_ds):
    reg.update(make_ds({"A": HIGH}))
    with reg.transaction() as s:
        rec = s.scalars(select(ProfileRecord)).one()
        rec.applied_profile = "normaal"
        with pytest.raises(ProfileError, match="append-only"):
            s.flush()
        s.rollback()
    from sqlalchemy import update

    with pytest.raises(ProfileError, match="append-only"):
        with reg.transaction() as s:
            s.execute(update(ProfileRecord).values(applied_profile="normaal"))
    # the database itself refuses it too (SQLite trigger), even outside the ORM
    with pytest.raises(IntegrityError, match="append-only"):
        with reg.engine.begin() as conn:
            conn.execute(text("UPDATE profile_history SET applied_profile = 'normaal'"))
    with pytest.raises(IntegrityError, match="append-only"):
        with reg.engine.begin() as conn:
            conn.execute(text("DELETE FROM runs"))
    assert reg.show("A")["applied"] == "verhoogd"


def test_building_missing_from_a_later_run_keeps_its_profile(reg, make_ds):
    reg.update(make_ds({"A": HIGH, "B": LICHT}, tag="2025"))
    res = reg.update(make_ds({"A": LOW}, tag="2026"), run_id="2026")
    assert res.missing == ("B",)
    assert reg.show("B")["applied"] == "licht_verhoogd" and len(reg.show("B")["history"]) == 1


def test_inspection_requests_and_attributes(reg, make_ds):
    import datetime as dt

    import pandas as pd

    reg.update(make_ds({"A": LOW, "B": LOW}))
    rid = reg.request_inspection("A", requested_by="owner A", on=dt.date(2025, 3, 1), reason="new cracks")
    reg.resolve_inspection(rid, on=dt.date(2025, 4, 1), outcome="no damage")
    ins = reg.show("A")["inspection_requests"]
    assert ins == [{"id": rid, "requested_by": "owner A", "requested_on": "2025-03-01", "reason": "new cracks",
                    "status": "done", "resolved_on": "2025-04-01", "outcome": "no damage"}]
    with pytest.raises(ProfileError, match="already done"):
        reg.resolve_inspection(rid, on=dt.date(2025, 4, 2))
    with pytest.raises(ProfileError, match="'Q' is not in register"):
        reg.request_inspection("Q", requested_by="x")
    reg.set_building_attributes(pd.DataFrame({"building_id": ["A", "B"], "municipality": ["X", "Y"],
                                              "connected_group": ["g1", None]}))
    exp = reg.export().set_index("building_id")
    assert exp.loc["A", "municipality"] == "X" and exp.loc["A", "connected_group"] == "g1"
    assert pd.isna(exp.loc["B", "connected_group"])
    with pytest.raises(ProfileError, match=r"1 building id\(s\) are not in register.*'C'"):
        reg.set_building_attributes(pd.DataFrame({"building_id": ["A", "C"], "municipality": ["X", "Y"]}))


def test_bad_register_urls(tmp_path):
    with pytest.raises(ProfileError, match="folder .* does not exist"):
        Register(tmp_path / "nope" / "reg.db")
    with pytest.raises(ProfileError, match="empty.db does not exist"):
        Register(tmp_path / "empty.db", create=False)
    assert not (tmp_path / "empty.db").exists()
    import sqlite3

    sqlite3.connect(tmp_path / "other.db").close()  # an existing SQLite file without register tables
    with pytest.raises(ProfileError, match="no profile register tables"):
        Register(tmp_path / "other.db", create=False)
    with pytest.raises(ProfileError, match="cannot create a database engine"):
        Register("nosuchdialect://x/y")
