"""Opt-out (art. 12-14): six-week window, notified parties, removal from the plan, re-entry."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from hra.policy import optout
from hra.policy.planning import STAGES, PlanConfig, make_plan
from hra.policy.profiles import ProfileError
from hra.policy.register import Register

HIGH = (2e-5, 1.5e-5, 4e-5)
LOW = (1e-7, 1e-7, 1e-7)
D0 = date(2025, 3, 3)


def test_window_dates():
    assert optout.withdrawal_window(D0) == (D0, date(2025, 4, 14))  # 42 days later
    assert optout.earliest_decision_date(D0) == date(2025, 4, 15)
    assert optout.withdrawal_window("2024-12-31")[1] == date(2025, 2, 11)
    with pytest.raises(ProfileError, match="not a date; write it as YYYY-MM-DD"):
        optout.withdrawal_window("31-12-2024")


@pytest.fixture
def reg(tmp_path, make_ds):
    r = Register(tmp_path / "reg.db")
    ds = make_ds({"A": HIGH, "B": HIGH, "C": LOW, "D": HIGH},
                 municipality={"A": "Groningen", "B": "Groningen", "C": "Eemsdelta", "D": "Groningen"},
                 connected_group={"A": "row-1", "B": "row-1", "C": "row-1", "D": None}, tag="2025")
    r.update(ds, run_id="2025")
    r.load_parties(pd.DataFrame([
        ("A", "owner", "Ann"), ("A", "owner", "Alex"), ("A", "resident", "Ann"), ("A", "resident", "Rob"),
        ("B", "owner", "Bob"), ("B", "resident", "Bea"), ("C", "owner", "Cas"), ("C", "resident", "Ann"),
        ("D", "owner", "Dirk"), ("D", "resident", "Dora"),
    ], columns=["building_id", "role", "name"]))
    yield r
    r.close()


def test_withdrawal_only_within_six_weeks(reg):
    info = optout.request_optout(reg, "D", "Dirk", D0)
    assert (info.window_end, info.earliest_decision) == (date(2025, 4, 14), date(2025, 4, 15))
    with pytest.raises(ProfileError, match=r"window runs from 2025-03-03 to 2025-04-14.*2025-04-15 is outside"):
        optout.withdraw_optout(reg, info.id, D0 + timedelta(days=43))
    done = optout.withdraw_optout(reg, info.id, D0 + timedelta(days=42))  # the last day still counts
    assert done.status == "withdrawn"
    with pytest.raises(ProfileError, match="is 'withdrawn', not pending"):
        optout.withdraw_optout(reg, info.id, D0)


def test_decision_only_after_the_window(reg):
    info = optout.request_optout(reg, "D", "Dirk", D0)
    with pytest.raises(ProfileError, match="decision can be taken from 2025-04-15 on, not on 2025-04-14"):
        optout.decide_optout(reg, info.id, date(2025, 4, 14), granted=True, decided_by="college")
    assert optout.optouts(reg, "D")["status"].tolist() == ["pending"]  # the refused decision wrote nothing
    res = optout.decide_optout(reg, info.id, date(2025, 4, 15), granted=False, decided_by="college")
    assert res.status == "refused"
    with pytest.raises(ProfileError, match="only a pending request can be decided"):
        optout.decide_optout(reg, info.id, date(2025, 5, 1), granted=True, decided_by="college")


def test_parties_to_notify_include_connected_buildings(reg):
    info = optout.request_optout(reg, "A", "Ann", D0)
    got = set(zip(info.notified["party_kind"], info.notified["party_name"], info.notified["building_id"]))
    assert got == {
        ("municipality", "college van B&W Groningen", "A"),
        ("co_owner", "Alex", "A"),
        ("resident", "Rob", "A"),              # Ann lives there but is the requesting owner
        ("connected_owner", "Bob", "B"),
        ("connected_resident", "Bea", "B"),
        ("connected_owner", "Cas", "C"),
        ("municipality", "college van B&W Eemsdelta", "C"),  # connected building in another municipality
    }
    stored = optout.notifications(reg, info.id)
    assert len(stored) == len(got) and set(stored["event"]) == {"request"}
    # a free-standing building: only its municipality and its resident
    d = optout.request_optout(reg, "D", "Dirk", D0)
    assert set(d.notified["party_name"]) == {"college van B&W Groningen", "Dora"}


def test_parties_to_notify_is_pure_and_checks_the_building():
    buildings = pd.DataFrame({"building_id": ["1", "2"], "municipality": ["M", "M"], "connected_group": ["g", "g"]})
    parties = pd.DataFrame({"building_id": ["2"], "role": ["resident"], "name": ["Zoe"]})
    out = optout.parties_to_notify("1", "Owner", buildings, parties)
    assert out["party_name"].tolist() == ["college van B&W M", "Zoe"]
    with pytest.raises(ProfileError, match="'9': the building is not in the buildings table"):
        optout.parties_to_notify("9", "Owner", buildings, parties)


def test_bad_requests(reg):
    with pytest.raises(ProfileError, match="'Eve' is not a registered owner"):
        optout.request_optout(reg, "A", "Eve", D0)
    with pytest.raises(ProfileError, match="building 'X9' is not in register"):
        optout.request_optout(reg, "X9", "Ann", D0)
    first = optout.request_optout(reg, "B", "Bob", D0)
    with pytest.raises(ProfileError, match=f"already has opt-out request {first.id} with status 'pending'"):
        optout.request_optout(reg, "B", "Bob", D0 + timedelta(days=1))
    with pytest.raises(ProfileError, match="opt-out request 999 is not in register"):
        optout.withdraw_optout(reg, 999, D0)
    with pytest.raises(ProfileError, match="only a granted opt-out can be revoked"):
        optout.revoke_optout(reg, first.id, D0)


def test_granted_optout_leaves_plan_withdraws_decisions_and_reenters_next_update(reg, make_ds):
    cfg = PlanConfig.model_validate({"start_year": 2026, "capacity": {s: 10 for s in STAGES}})
    nb = reg.record_decision("D", "normbesluit", date(2025, 1, 10))
    assert "D" in make_plan(reg.export(), cfg).schedule["building_id"].tolist()

    info = optout.request_optout(reg, "D", "Dirk", D0)
    assert reg.show("D")["in_plan"]  # a pending request does not remove the building yet
    dec = optout.decide_optout(reg, info.id, optout.earliest_decision_date(D0), granted=True, decided_by="college")
    assert dec.withdrawn_decisions == (nb,)
    assert reg.show("D")["decisions"][0]["status"] == "withdrawn"
    exp = reg.export().set_index("building_id")
    assert bool(exp.loc["D", "opted_out"]) and exp.loc["D", "applied_profile"] == "verhoogd"  # profile kept
    plan = make_plan(reg.export(), cfg)
    assert "D" not in plan.schedule["building_id"].tolist()
    assert plan.excluded.set_index("building_id").loc["D", "reason"] == "opted out (art. 13)"

    optout.revoke_optout(reg, info.id, date(2025, 9, 1))
    assert "D" not in make_plan(reg.export(), cfg).schedule["building_id"].tolist()  # until the next update
    res = reg.update(make_ds({"A": HIGH, "B": HIGH, "C": LOW, "D": HIGH}, tag="2026"), run_id="2026")
    assert res.reentered == ("D",)
    assert optout.optouts(reg, "D")["status"].tolist() == ["reentered"]
    assert "D" in make_plan(reg.export(), cfg).schedule["building_id"].tolist()
    # a new request is possible again after re-entry
    assert optout.request_optout(reg, "D", "Dirk", date(2026, 5, 1)).status == "pending"
