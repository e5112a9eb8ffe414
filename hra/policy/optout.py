"""Opting out of strengthening (concept Besluit versterking gebouwen Groningen, art. 12-14).

An owner may ask not to have the building strengthened. The request is stored in the profile
register (:mod:`hra.policy.register`, tables ``optouts`` and ``optout_notifications``) and goes
through these states::

    pending --(owner withdraws within the window)--> withdrawn
    pending --(decision after the window)----------> granted | refused
    granted --(owner withdraws the opt-out)---------> revoked --(next annual update)--> reentered

Withdrawal window
-----------------
The owner can withdraw the request during **six weeks** (42 days). The window opens on the
request date and its last day is ``requested_on + 42 days`` (inclusive): a withdrawal on that
day is accepted, one on the day after is refused. The decision can be taken only once the
window has closed, i.e. from ``requested_on + 43 days`` on (:func:`withdrawal_window`,
:func:`earliest_decision_date`).

Who is notified
---------------
:func:`parties_to_notify` lists, for a request or a decision:

* the college of B&W of the building's municipality (and of the municipality of every
  structurally connected building when that differs);
* the residents of the building who are not the requesting owner, and its other owners
  (co-owners);
* the owners and residents of every structurally connected building. Buildings are
  structurally connected when they share a ``connected_group`` id (an exposure column, stored
  in the register by :meth:`hra.policy.register.Register.set_building_attributes` or taken from the
  risk Dataset's ``connected_group`` coordinate).

Effects of a granted opt-out (art. 13)
-------------------------------------
The building leaves the plan (the register export flags it ``opted_out``, which
:mod:`hra.policy.planning` excludes), and its active normbesluit and versterkingsbesluit are
withdrawn (status ``withdrawn`` with the date and reason). When the owner later withdraws the
opt-out (:func:`revoke_optout`, art. 14) the building re-enters the plan at the next annual
update (:meth:`hra.policy.register.Register.update` sets status ``reentered``). Its risk profile is
never changed by an opt-out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Sequence

import pandas as pd
from sqlalchemy import select

from hra.policy.profiles import ProfileError
from hra.policy.register import Building, Decision, OptOut, OptOutNotification, Party, Register

__all__ = [
    "WITHDRAWAL_WINDOW",
    "OptOutInfo",
    "decide_optout",
    "earliest_decision_date",
    "notifications",
    "optouts",
    "parties_to_notify",
    "request_optout",
    "revoke_optout",
    "withdraw_optout",
    "withdrawal_window",
]

#: Length of the owner's withdrawal window (art. 12): six weeks. [d]
WITHDRAWAL_WINDOW = timedelta(weeks=6)

NOTIFY_COLUMNS = ["party_kind", "party_name", "building_id", "reason"]


def _as_date(value: date | str, what: str) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise ProfileError(f"{what}: {value!r} is not a date; write it as YYYY-MM-DD") from None


def withdrawal_window(requested_on: date | str) -> tuple[date, date]:
    """First and last day (both inclusive) on which the owner may withdraw the request.

    Parameters
    ----------
    requested_on
        Date of the request.

    Returns
    -------
    first, last
        ``requested_on`` and ``requested_on + 42 days``.

    >>> withdrawal_window(date(2025, 1, 1))
    (datetime.date(2025, 1, 1), datetime.date(2025, 2, 12))
    """
    d = _as_date(requested_on, "opt-out request date")
    return d, d + WITHDRAWAL_WINDOW


def earliest_decision_date(requested_on: date | str) -> date:
    """First day on which the decision on a request may be taken (the day after the window).

    >>> earliest_decision_date(date(2025, 1, 1))
    datetime.date(2025, 2, 13)
    """
    return withdrawal_window(requested_on)[1] + timedelta(days=1)


def parties_to_notify(building_id: str, owner: str, buildings: pd.DataFrame, parties: pd.DataFrame) -> pd.DataFrame:
    """Parties to notify of an owner's opt-out request or its decision (art. 12).

    Pure function.

    Parameters
    ----------
    building_id
        The building of the request.
    owner
        Name of the requesting owner (not notified).
    buildings
        Columns ``building_id``, ``municipality`` and ``connected_group`` (buildings sharing a
        non-empty group id are structurally connected).
    parties
        Columns ``building_id``, ``role`` (``owner``/``resident``), ``name``.

    Returns
    -------
    pandas.DataFrame
        Columns ``party_kind`` (``municipality``, ``co_owner``, ``resident``,
        ``connected_owner``, ``connected_resident``), ``party_name``, ``building_id`` (the
        building the party belongs to; the municipality row carries the building of the
        request or the connected building) and ``reason``, without duplicates.

    Raises
    ------
    ProfileError
        If the building is not in ``buildings``.
    """
    bid = str(building_id)
    b = buildings[buildings["building_id"].astype(str) == bid]
    if b.empty:
        raise ProfileError(f"opt-out for building {bid!r}: the building is not in the buildings table; check the id")
    rows: list[dict[str, Any]] = []
    municipality = b["municipality"].iloc[0] if "municipality" in b.columns else None
    group = b["connected_group"].iloc[0] if "connected_group" in b.columns else None
    group = None if (group is None or pd.isna(group) or str(group).strip() == "") else str(group)

    seen_mun: set[str] = set()

    def add_municipality(mun: Any, for_building: str, why: str) -> None:
        name = "unknown" if mun is None or pd.isna(mun) or str(mun).strip() == "" else str(mun)
        if name in seen_mun:
            return
        seen_mun.add(name)
        rows.append({"party_kind": "municipality", "party_name": f"college van B&W {name}",
                     "building_id": for_building, "reason": why})

    add_municipality(municipality, bid, "municipality of the building (art. 12)")
    p = parties.assign(building_id=parties["building_id"].astype(str)) if len(parties) else parties
    own = p[p["building_id"] == bid] if len(p) else p
    owners = set(own.loc[own["role"] == "owner", "name"].astype(str)) if len(own) else set()
    for name in sorted(owners - {owner}):
        rows.append({"party_kind": "co_owner", "party_name": name, "building_id": bid,
                     "reason": "other owner of the building"})
    if len(own):
        for name in sorted(set(own.loc[own["role"] == "resident", "name"].astype(str)) - {owner} - owners):
            rows.append({"party_kind": "resident", "party_name": name, "building_id": bid,
                         "reason": "resident of the building who is not an owner"})
    if group is not None and "connected_group" in buildings.columns:
        conn = buildings[(buildings["connected_group"].astype(str) == group) & (buildings["building_id"].astype(str) != bid)]
        for cb in sorted(conn["building_id"].astype(str)):
            cmun = conn.loc[conn["building_id"].astype(str) == cb, "municipality"].iloc[0] \
                if "municipality" in conn.columns else None
            add_municipality(cmun, cb, f"municipality of structurally connected building {cb}")
            cp = p[p["building_id"] == cb] if len(p) else p
            if not len(cp):
                continue
            for role in ("owner", "resident"):
                for name in sorted(set(cp.loc[cp["role"] == role, "name"].astype(str))):
                    if name == owner:
                        continue
                    rows.append({"party_kind": f"connected_{role}", "party_name": name, "building_id": cb,
                                 "reason": f"{role} of structurally connected building {cb} (group {group})"})
    return pd.DataFrame(rows, columns=NOTIFY_COLUMNS)


@dataclass(frozen=True)
class OptOutInfo:
    """State of one opt-out request.

    Attributes
    ----------
    id, building_id, owner, status
        Request id, building, requesting owner and state (see the module docstring).
    requested_on, window_end, earliest_decision
        Request date, last day of the withdrawal window, first day a decision may be taken.
    notified
        Parties notified at this step (columns of :func:`parties_to_notify`).
    withdrawn_decisions
        Ids of decisions withdrawn by a granted opt-out.
    """

    id: int
    building_id: str
    owner: str
    status: str
    requested_on: date
    window_end: date
    earliest_decision: date
    notified: pd.DataFrame
    withdrawn_decisions: tuple[int, ...] = ()


def _register_tables(s: Any, building_id: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Buildings (the building and its connected group) and their parties, from the register."""
    b = s.get(Building, building_id)
    ids = [building_id]
    if b is not None and b.connected_group:
        ids = list(s.scalars(select(Building.building_id).where(Building.connected_group == b.connected_group)))
    bl = pd.DataFrame(
        [{"building_id": x.building_id, "municipality": x.municipality, "connected_group": x.connected_group}
         for x in s.scalars(select(Building).where(Building.building_id.in_(ids)))],
        columns=["building_id", "municipality", "connected_group"],
    )
    pl = pd.DataFrame(
        [{"building_id": x.building_id, "role": x.role, "name": x.name}
         for x in s.scalars(select(Party).where(Party.building_id.in_(ids)))],
        columns=["building_id", "role", "name"],
    )
    return bl, pl


def _store_notifications(s: Any, optout_id: int, event: str, table: pd.DataFrame, on: date) -> None:
    for r in table.to_dict("records"):
        s.add(OptOutNotification(optout_id=optout_id, event=event, party_kind=r["party_kind"],
                                 party_name=r["party_name"], party_building_id=r["building_id"],
                                 reason=r["reason"], created_on=on))


def _info(o: OptOut, notified: pd.DataFrame, withdrawn: Sequence[int] = ()) -> OptOutInfo:
    return OptOutInfo(id=o.id, building_id=o.building_id, owner=o.owner, status=o.status,
                      requested_on=o.requested_on, window_end=o.window_end,
                      earliest_decision=o.window_end + timedelta(days=1), notified=notified,
                      withdrawn_decisions=tuple(withdrawn))


def _get(reg: Register, s: Any, optout_id: int) -> OptOut:
    o = s.get(OptOut, int(optout_id))
    if o is None:
        raise ProfileError(f"opt-out request {optout_id} is not in register {reg.display_url}; list the requests "
                           "of a building with `hra profiles show BUILDING_ID`")
    return o


def request_optout(reg: Register, building_id: str, owner: str, requested_on: date | str) -> OptOutInfo:
    """Record an owner's request not to strengthen the building (art. 12) and notify parties.

    Parameters
    ----------
    reg
        The profile register.
    building_id
        Building in the register.
    owner
        Name of the requesting owner. When owners of the building are registered
        (:meth:`~hra.policy.register.Register.load_parties`) it must be one of them.
    requested_on
        Date of the request (the withdrawal window starts on it).

    Returns
    -------
    OptOutInfo
        With the parties notified of the request.

    Raises
    ------
    ProfileError
        Unknown building, requester not an owner, or an open request/opt-out already exists.
    """
    day = _as_date(requested_on, f"opt-out request for building {building_id!r}")
    owner = str(owner or "").strip()
    if not owner:
        raise ProfileError(f"opt-out request for building {building_id!r}: the owner's name is required")
    bid = str(building_id)
    with reg.transaction() as s:
        reg._require_building(s, bid)
        owners = set(s.scalars(select(Party.name).where(Party.building_id == bid, Party.role == "owner")))
        if owners and owner not in owners:
            raise ProfileError(f"opt-out request for building {bid!r}: {owner!r} is not a registered owner "
                               f"(owners: {', '.join(sorted(owners))}); only an owner can opt out (art. 12)")
        open_ = s.scalar(select(OptOut).where(OptOut.building_id == bid,
                                              OptOut.status.in_(("pending", "granted", "revoked"))))
        if open_ is not None:
            raise ProfileError(f"building {bid!r} already has opt-out request {open_.id} with status "
                               f"{open_.status!r}; withdraw or decide that one first")
        first, last = withdrawal_window(day)
        o = OptOut(building_id=bid, owner=owner, requested_on=first, window_end=last, status="pending")
        s.add(o)
        s.flush()
        bl, pl = _register_tables(s, bid)
        notified = parties_to_notify(bid, owner, bl, pl)
        _store_notifications(s, o.id, "request", notified, day)
        return _info(o, notified)


def withdraw_optout(reg: Register, optout_id: int, on: date | str) -> OptOutInfo:
    """The owner withdraws a pending request within the six-week window (art. 12).

    Raises
    ------
    ProfileError
        If the request is not pending, or ``on`` is outside the window (before the request or
        after its last day).
    """
    day = _as_date(on, f"withdrawal of opt-out request {optout_id}")
    with reg.transaction() as s:
        o = _get(reg, s, optout_id)
        if o.status != "pending":
            hint = " use revoke_optout (`optout revoke`) to withdraw a granted opt-out" if o.status == "granted" else ""
            raise ProfileError(f"opt-out request {o.id} of building {o.building_id!r} is {o.status!r}, not pending; "
                               f"it cannot be withdrawn now;{hint}")
        if day < o.requested_on or day > o.window_end:
            raise ProfileError(f"opt-out request {o.id} of building {o.building_id!r}: the withdrawal window runs "
                               f"from {o.requested_on} to {o.window_end} (six weeks, art. 12); {day} is outside it")
        o.status, o.withdrawn_on = "withdrawn", day
        return _info(o, pd.DataFrame(columns=NOTIFY_COLUMNS))


def decide_optout(reg: Register, optout_id: int, on: date | str, *, granted: bool, decided_by: str,
                  note: str = "") -> OptOutInfo:
    """Decide on a pending request, only after the six-week window has closed (art. 13).

    A granted opt-out takes the building out of the plan and withdraws its active normbesluit
    and versterkingsbesluit; the parties of :func:`parties_to_notify` are notified of the
    decision either way.

    Raises
    ------
    ProfileError
        If the request is not pending, the window has not closed yet on ``on``, or
        ``decided_by`` is empty.
    """
    day = _as_date(on, f"decision on opt-out request {optout_id}")
    if not str(decided_by or "").strip():
        raise ProfileError(f"decision on opt-out request {optout_id}: decided_by is required")
    with reg.transaction() as s:
        o = _get(reg, s, optout_id)
        if o.status != "pending":
            raise ProfileError(f"opt-out request {o.id} of building {o.building_id!r} is {o.status!r}; only a "
                               "pending request can be decided")
        first_day = o.window_end + timedelta(days=1)
        if day < first_day:
            raise ProfileError(f"opt-out request {o.id} of building {o.building_id!r}: the owner may withdraw "
                               f"until {o.window_end} (six weeks, art. 12), so the decision can be taken from "
                               f"{first_day} on, not on {day}")
        o.status = "granted" if granted else "refused"
        o.decided_on, o.decided_by, o.decision_note = day, str(decided_by).strip(), note or None
        withdrawn: list[int] = []
        if granted:
            for d in s.scalars(select(Decision).where(Decision.building_id == o.building_id,
                                                      Decision.status == "active")):
                d.status, d.withdrawn_on = "withdrawn", day
                d.withdrawn_reason = f"opt-out request {o.id} granted (art. 13)"
                withdrawn.append(d.id)
        bl, pl = _register_tables(s, o.building_id)
        notified = parties_to_notify(o.building_id, o.owner, bl, pl)
        _store_notifications(s, o.id, "decision", notified, day)
        return _info(o, notified, withdrawn)


def revoke_optout(reg: Register, optout_id: int, on: date | str) -> OptOutInfo:
    """The owner withdraws a granted opt-out (art. 14): re-entry at the next annual update.

    The building stays out of the plan until the next :meth:`hra.policy.register.Register.update`,
    which sets the status to ``reentered``. Withdrawn decisions are not restored; they are
    taken again in the plan.

    Raises
    ------
    ProfileError
        If the opt-out is not granted, or ``on`` precedes its decision.
    """
    day = _as_date(on, f"revocation of opt-out {optout_id}")
    with reg.transaction() as s:
        o = _get(reg, s, optout_id)
        if o.status != "granted":
            raise ProfileError(f"opt-out {o.id} of building {o.building_id!r} is {o.status!r}; only a granted "
                               "opt-out can be revoked (a pending request is withdrawn instead)")
        if o.decided_on is not None and day < o.decided_on:
            raise ProfileError(f"opt-out {o.id}: revocation date {day} precedes the decision of {o.decided_on}")
        o.status, o.revoked_on = "revoked", day
        bl, pl = _register_tables(s, o.building_id)
        notified = parties_to_notify(o.building_id, o.owner, bl, pl)
        _store_notifications(s, o.id, "revocation", notified, day)
        return _info(o, notified)


def optouts(reg: Register, building_id: str | None = None) -> pd.DataFrame:
    """Opt-out requests (all, or of one building) with their state and dates."""
    cols = ["id", "building_id", "owner", "status", "requested_on", "window_end", "withdrawn_on", "decided_on",
            "decided_by", "revoked_on"]
    with reg.transaction() as s:
        q = select(OptOut).order_by(OptOut.id)
        if building_id is not None:
            reg._require_building(s, str(building_id))
            q = q.where(OptOut.building_id == str(building_id))
        rows = [{c: getattr(o, c) for c in cols} for o in s.scalars(q)]
    return pd.DataFrame(rows, columns=cols)


def notifications(reg: Register, optout_id: int) -> pd.DataFrame:
    """Notifications stored for an opt-out request (events ``request``, ``decision``, ``revocation``)."""
    with reg.transaction() as s:
        _get(reg, s, optout_id)
        rows = [
            {"event": n.event, "party_kind": n.party_kind, "party_name": n.party_name,
             "building_id": n.party_building_id, "reason": n.reason, "created_on": n.created_on}
            for n in s.scalars(select(OptOutNotification).where(OptOutNotification.optout_id == int(optout_id))
                               .order_by(OptOutNotification.id))
        ]
    return pd.DataFrame(rows, columns=["event", "party_kind", "party_name", "building_id", "reason", "created_on"])
