"""The durable profile register: profile history without downgrades (Besluit art. 4).

A relational database (SQLAlchemy 2; SQLite by default, any SQLAlchemy URL, written with
portable types and constraints only) that holds, per building:

* the **profile history** per annual run (table ``profile_history``): run, provenance hash,
  statistics, the *computed* profile and the *applied* profile. History rows are append-only:
  the ORM refuses updates and deletes of them, and on SQLite and PostgreSQL database triggers
  refuse them as well;
* **adjustments** of the profile with reason and author (art. 4.4, 4.8), which act as floors;
* **inspection requests** (art. 4.6);
* **opt-out requests** and their decisions (art. 12-14; logic in :mod:`hra.policy.optout`), the parties
  (owners, residents) needed to notify, and the earlier **decisions** (normbesluit,
  versterkingsbesluit) an opt-out withdraws.

Annual update (art. 4.5)
------------------------
:meth:`Register.update` computes the profiles of a risk Dataset (:func:`hra.policy.profiles.assign_profiles`)
and, in **one transaction**, appends one history row per building with

    applied = max(computed, previous applied, adjustments)

so a profile never drops. The update is idempotent: the same run id with the same provenance
hash (and rule) changes nothing; the same run id with another hash or rule is refused with a
:class:`~hra.policy.profiles.ProfileError`; if anything fails midway the transaction is rolled back and
the register is unchanged.

Schema (tables)
---------------
``register_meta`` (schema version), ``runs``, ``buildings``, ``profile_history``,
``adjustments``, ``inspection_requests``, ``parties``, ``optouts``, ``optout_notifications``,
``decisions``. See docs/profiles.md for the columns.

Times are stored as naive UTC datetimes; calendar dates (requests, decisions) as dates.
"""

from __future__ import annotations

import math
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr
from sqlalchemy import (
    DDL,
    JSON,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from hra.core.fileio import atomic_write
from hra.policy.profiles import (
    PROFILE_ORDER,
    ProfileError,
    ProfileRule,
    apply_ratchet,
    assign_profiles,
    default_run_id,
    load_rule,
    max_profile,
    open_risk,
    profile_rank,
    provenance_hash,
)

__all__ = [
    "ADJUSTMENT_ARTICLES",
    "DECISION_KINDS",
    "OPTOUT_EXCLUDING_STATUSES",
    "SCHEMA_VERSION",
    "Adjustment",
    "Base",
    "Building",
    "Decision",
    "InspectionRequest",
    "OptOut",
    "OptOutNotification",
    "Party",
    "ProfileRecord",
    "Register",
    "RegisterMeta",
    "Run",
    "UpdateResult",
    "atomic_write_csv",
    "normalise_url",
]

#: Version of the table layout; a register of another version is refused.
SCHEMA_VERSION = 1

#: Articles under which a profile may be adjusted.
ADJUSTMENT_ARTICLES = ("4.4", "4.8")

#: Kinds of decisions an opt-out withdraws (art. 13).
DECISION_KINDS = ("normbesluit", "versterkingsbesluit")

#: Opt-out statuses that keep a building out of the plan. ``revoked`` (the owner withdrew a
#: granted opt-out) keeps it out until the next annual update, which sets ``reentered``.
OPTOUT_EXCLUDING_STATUSES = ("granted", "revoked")

OPTOUT_STATUSES = ("pending", "withdrawn", "granted", "refused", "revoked", "reentered")
INSPECTION_STATUSES = ("open", "done", "rejected")

#: Rows per INSERT batch in an update (tests lower it to interrupt an update midway).
_FLUSH_EVERY = 2000

_PROFILE_LIST = ", ".join(f"'{p}'" for p in PROFILE_ORDER)


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _in_list(column: str, values: Sequence[str], nullable: bool = False) -> str:
    vals = ", ".join(f"'{v}'" for v in values)
    expr = f"{column} IN ({vals})"
    return f"({column} IS NULL OR {expr})" if nullable else expr


# --------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------


class Base(DeclarativeBase):
    """Declarative base of the register tables."""


class RegisterMeta(Base):
    """One row: schema version and an update counter (also used as a write lock)."""

    __tablename__ = "register_meta"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    schema_version: Mapped[int] = mapped_column(Integer, nullable=False)
    updates: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=_utcnow)


class Run(Base):
    """One annual risk run registered by :meth:`Register.update` (append-only)."""

    __tablename__ = "runs"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    provenance_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    rule_name: Mapped[str] = mapped_column(String(128), nullable=False)
    rule: Mapped[dict] = mapped_column(JSON, nullable=False)
    short_years: Mapped[list] = mapped_column(JSON, nullable=False)
    long_years: Mapped[list] = mapped_column(JSON, nullable=False)
    source: Mapped[str | None] = mapped_column(Text)
    n_buildings: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=_utcnow)


class Building(Base):
    """A building known to the register."""

    __tablename__ = "buildings"
    building_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    municipality: Mapped[str | None] = mapped_column(String(128))
    connected_group: Mapped[str | None] = mapped_column(String(128), index=True)
    x_rd: Mapped[float | None] = mapped_column(Float)
    y_rd: Mapped[float | None] = mapped_column(Float)
    first_run_seq: Mapped[int | None] = mapped_column(ForeignKey("runs.seq"))


class ProfileRecord(Base):
    """Profile of one building at one run: computed and applied (append-only history)."""

    __tablename__ = "profile_history"
    __table_args__ = (
        UniqueConstraint("run_seq", "building_id", name="uq_history_run_building"),
        CheckConstraint(f"computed_profile IN ({_PROFILE_LIST})", name="ck_history_computed"),
        CheckConstraint(f"applied_profile IN ({_PROFILE_LIST})", name="ck_history_applied"),
        CheckConstraint(_in_list("previous_applied", PROFILE_ORDER, nullable=True), name="ck_history_previous"),
        CheckConstraint(_in_list("applied_reason", ("computed", "ratchet", "adjustment")), name="ck_history_reason"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_seq: Mapped[int] = mapped_column(ForeignKey("runs.seq"), nullable=False)
    building_id: Mapped[str] = mapped_column(ForeignKey("buildings.building_id"), nullable=False, index=True)
    computed_profile: Mapped[str] = mapped_column(String(32), nullable=False)
    applied_profile: Mapped[str] = mapped_column(String(32), nullable=False)
    previous_applied: Mapped[str | None] = mapped_column(String(32))
    applied_reason: Mapped[str] = mapped_column(String(16), nullable=False)
    decisive_statistic: Mapped[str] = mapped_column(String(32), nullable=False)
    decisive_year: Mapped[int] = mapped_column(Integer, nullable=False)
    decisive_value: Mapped[float] = mapped_column(Float, nullable=False)
    explanation: Mapped[str] = mapped_column(Text, nullable=False)
    statistics: Mapped[dict] = mapped_column(JSON, nullable=False)


class Adjustment(Base):
    """A profile adjustment with reason and author (art. 4.4, 4.8); acts as a floor."""

    __tablename__ = "adjustments"
    __table_args__ = (
        CheckConstraint(f"profile IN ({_PROFILE_LIST})", name="ck_adjustment_profile"),
        CheckConstraint(_in_list("article", ADJUSTMENT_ARTICLES), name="ck_adjustment_article"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    building_id: Mapped[str] = mapped_column(ForeignKey("buildings.building_id"), nullable=False, index=True)
    profile: Mapped[str] = mapped_column(String(32), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    author: Mapped[str] = mapped_column(String(256), nullable=False)
    article: Mapped[str] = mapped_column(String(8), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, default=_utcnow)


class InspectionRequest(Base):
    """A request for an inspection (opname) of a building (art. 4.6)."""

    __tablename__ = "inspection_requests"
    __table_args__ = (CheckConstraint(_in_list("status", INSPECTION_STATUSES), name="ck_inspection_status"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    building_id: Mapped[str] = mapped_column(ForeignKey("buildings.building_id"), nullable=False, index=True)
    requested_by: Mapped[str] = mapped_column(String(256), nullable=False)
    requested_on: Mapped[date] = mapped_column(Date, nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False, default="")
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="open")
    resolved_on: Mapped[date | None] = mapped_column(Date)
    outcome: Mapped[str | None] = mapped_column(Text)


class Party(Base):
    """An owner or resident of a building (needed for opt-out notifications, art. 12)."""

    __tablename__ = "parties"
    __table_args__ = (
        UniqueConstraint("building_id", "role", "name", name="uq_party"),
        CheckConstraint("role IN ('owner', 'resident')", name="ck_party_role"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    building_id: Mapped[str] = mapped_column(ForeignKey("buildings.building_id"), nullable=False, index=True)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    name: Mapped[str] = mapped_column(String(256), nullable=False)
    contact: Mapped[str | None] = mapped_column(Text)


class OptOut(Base):
    """An owner's request not to have the building strengthened (art. 12-14)."""

    __tablename__ = "optouts"
    __table_args__ = (CheckConstraint(_in_list("status", OPTOUT_STATUSES), name="ck_optout_status"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    building_id: Mapped[str] = mapped_column(ForeignKey("buildings.building_id"), nullable=False, index=True)
    owner: Mapped[str] = mapped_column(String(256), nullable=False)
    requested_on: Mapped[date] = mapped_column(Date, nullable=False)
    window_end: Mapped[date] = mapped_column(Date, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    withdrawn_on: Mapped[date | None] = mapped_column(Date)
    decided_on: Mapped[date | None] = mapped_column(Date)
    decided_by: Mapped[str | None] = mapped_column(String(256))
    decision_note: Mapped[str | None] = mapped_column(Text)
    revoked_on: Mapped[date | None] = mapped_column(Date)
    reentered_run_seq: Mapped[int | None] = mapped_column(ForeignKey("runs.seq"))


class OptOutNotification(Base):
    """A party notified of an opt-out request or decision (art. 12)."""

    __tablename__ = "optout_notifications"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    optout_id: Mapped[int] = mapped_column(ForeignKey("optouts.id"), nullable=False, index=True)
    event: Mapped[str] = mapped_column(String(16), nullable=False)
    party_kind: Mapped[str] = mapped_column(String(32), nullable=False)
    party_name: Mapped[str] = mapped_column(String(256), nullable=False)
    party_building_id: Mapped[str | None] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    created_on: Mapped[date] = mapped_column(Date, nullable=False)


class Decision(Base):
    """A normbesluit or versterkingsbesluit on a building; an opt-out withdraws it (art. 13)."""

    __tablename__ = "decisions"
    __table_args__ = (
        CheckConstraint(_in_list("kind", DECISION_KINDS), name="ck_decision_kind"),
        CheckConstraint("status IN ('active', 'withdrawn')", name="ck_decision_status"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    building_id: Mapped[str] = mapped_column(ForeignKey("buildings.building_id"), nullable=False, index=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    taken_on: Mapped[date] = mapped_column(Date, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, default="active")
    withdrawn_on: Mapped[date | None] = mapped_column(Date)
    withdrawn_reason: Mapped[str | None] = mapped_column(Text)


_APPEND_ONLY_TABLES = ("profile_history", "runs")

# Database-level guards: refuse UPDATE and DELETE of history rows and runs.
for _table in _APPEND_ONLY_TABLES:
    _t = Base.metadata.tables[_table]
    for _op in ("UPDATE", "DELETE"):
        event.listen(
            _t,
            "after_create",
            DDL(
                f"CREATE TRIGGER {_table}_no_{_op.lower()} BEFORE {_op} ON {_table} "
                f"BEGIN SELECT RAISE(ABORT, '{_table} is append-only: {_op} refused'); END"
            ).execute_if(dialect="sqlite"),
        )
    event.listen(
        _t,
        "after_create",
        DDL(
            f"CREATE OR REPLACE FUNCTION {_table}_append_only() RETURNS trigger AS $$ "
            f"BEGIN RAISE EXCEPTION '{_table} is append-only: update and delete are refused'; END; "
            f"$$ LANGUAGE plpgsql"
        ).execute_if(dialect="postgresql"),
    )
    event.listen(
        _t,
        "after_create",
        DDL(
            f"CREATE TRIGGER {_table}_append_only BEFORE UPDATE OR DELETE ON {_table} "
            f"FOR EACH ROW EXECUTE FUNCTION {_table}_append_only()"
        ).execute_if(dialect="postgresql"),
    )


class _RegisterSession(Session):
    """Session class of the register; ORM-level append-only guards are attached to it."""


@event.listens_for(_RegisterSession, "before_flush")
def _refuse_history_changes(session: Session, flush_context: Any, instances: Any) -> None:
    for obj in list(session.dirty) + list(session.deleted):
        if isinstance(obj, (ProfileRecord, Run)) and (obj in session.deleted or session.is_modified(obj)):
            raise ProfileError(
                f"{type(obj).__tablename__} is append-only (art. 4.5: history is kept); changing or deleting "
                "a row is refused. Record an adjustment or register a new run instead"
            )


@event.listens_for(_RegisterSession, "do_orm_execute")
def _refuse_bulk_history_changes(state: Any) -> None:
    if state.is_update or state.is_delete:
        table = getattr(state.statement, "table", None)
        name = getattr(table, "name", None) or getattr(getattr(table, "__table__", None), "name", None)
        if name in _APPEND_ONLY_TABLES:
            raise ProfileError(f"{name} is append-only (art. 4.5); UPDATE/DELETE statements on it are refused")


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def normalise_url(url: str | Path) -> str:
    """SQLAlchemy URL for a register: a URL as is, a plain path as an SQLite file.

    Raises
    ------
    ProfileError
        If the folder of an SQLite file does not exist.
    """
    text = str(url)
    if "://" in text:
        return text
    path = Path(text).expanduser()
    if not path.parent.exists():
        raise ProfileError(f"register {text}: folder {path.parent} does not exist; create it or give an "
                           "SQLAlchemy URL such as sqlite:///register.db")
    return f"sqlite:///{path.resolve()}"


def atomic_write_csv(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a CSV atomically: to a temporary file beside ``path``, then ``os.replace``.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    return atomic_write(path, lambda tmp: df.to_csv(tmp, index=False, encoding="utf-8"), overwrite=True,
                        error=ProfileError)


def _py(v: Any) -> Any:
    """Plain Python value for JSON columns (numpy scalars, NaN -> None)."""
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return None if math.isnan(f) else f
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def _clean_str(v: Any) -> str | None:
    if v is None:
        return None
    if isinstance(v, float) and math.isnan(v):
        return None
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    s = str(v).strip()
    return s or None


def _iso(v: date | datetime | None) -> str | None:
    return None if v is None else v.isoformat()


@dataclass(frozen=True)
class UpdateResult:
    """Outcome of :meth:`Register.update`.

    Attributes
    ----------
    run_id, provenance_hash
        The run and the SHA-256 of its provenance.
    status
        ``"applied"`` (new run recorded) or ``"unchanged"`` (the same run was already there).
    n_buildings, n_new_buildings
        Buildings in the run; of which new to the register.
    computed, applied
        Number of buildings per profile, computed and applied (all profiles present as keys).
    n_ratchet, n_adjusted
        Buildings whose applied profile is above the computed one because of the ratchet
        (art. 4.5) or an adjustment.
    missing
        Buildings in the register but not in this run (their profile is kept, no row added).
    reentered
        Buildings whose owner withdrew a granted opt-out and that re-enter the plan now.
    """

    run_id: str
    provenance_hash: str
    status: str
    n_buildings: int = 0
    n_new_buildings: int = 0
    computed: dict[str, int] = field(default_factory=dict)
    applied: dict[str, int] = field(default_factory=dict)
    n_ratchet: int = 0
    n_adjusted: int = 0
    missing: tuple[str, ...] = ()
    reentered: tuple[str, ...] = ()


def _history_row(run_seq: int, row: Mapping[str, Any], previous: str | None,
                 adjustments: Sequence[str], stat_cols: Sequence[str]) -> dict[str, Any]:
    """History row of one building for one run: computed and applied profile (ratchet)."""
    computed = row["profile"]
    applied, reason = apply_ratchet(computed, previous, adjustments)
    stats = {c: _py(row[c]) for c in stat_cols}
    stats["decisive_horizon"] = row["decisive_horizon"]
    stats["threshold"] = _py(row["threshold"])
    return {
        "run_seq": run_seq,
        "building_id": row["building_id"],
        "computed_profile": computed,
        "applied_profile": applied,
        "previous_applied": previous,
        "applied_reason": reason,
        "decisive_statistic": row["decisive_statistic"],
        "decisive_year": int(row["decisive_year"]),
        "decisive_value": float(row["decisive_value"]),
        "explanation": row["explanation"],
        "statistics": stats,
    }


# --------------------------------------------------------------------------------------------
# The register
# --------------------------------------------------------------------------------------------


class Register:
    """A profile register in a database.

    Parameters
    ----------
    url
        SQLAlchemy URL (``sqlite:///register.db``, ``postgresql+psycopg://...``) or the path of
        an SQLite file (created if missing).
    create
        Create the tables if they do not exist (default). With ``False`` a missing register
        is an error.

    Raises
    ------
    ProfileError
        If the URL is invalid, the database cannot be reached, or holds a register of another
        schema version.

    Examples
    --------
    >>> reg = Register("sqlite://")           # in memory
    >>> ds = risk_dataset_from_arrays(...)    # doctest: +SKIP
    >>> reg.update(ds, "besluit-2019")        # doctest: +SKIP
    """

    def __init__(self, url: str | Path, *, create: bool = True) -> None:
        self.url = normalise_url(url)
        try:
            shown = make_url(self.url).render_as_string(hide_password=True)
        except ArgumentError:
            raise ProfileError(f"register URL {self.url!r} is not a valid SQLAlchemy URL; use e.g. "
                               "sqlite:///register.db or postgresql+psycopg://user@host/db") from None
        self.display_url = shown
        u = make_url(self.url)
        if (not create and u.get_backend_name() == "sqlite" and u.database not in (None, "", ":memory:")
                and not u.database.startswith("file:") and not Path(u.database).exists()):
            raise ProfileError(f"register {shown}: the file {u.database} does not exist; run `hra profiles update "
                               "RISK --register ...` first to create the register, or check the path")
        connect_args = {"timeout": SQLITE_LOCK_TIMEOUT_S} if u.get_backend_name() == "sqlite" else {}
        try:
            self.engine: Engine = create_engine(self.url, connect_args=connect_args)
        except (ArgumentError, NoSuchModuleError, ImportError) as err:
            raise ProfileError(f"register {shown}: cannot create a database engine: {err}; check the URL "
                               "and that the database driver is installed") from None
        if self.engine.dialect.name == "sqlite":
            _configure_sqlite(self.engine)
        self._sessions = sessionmaker(bind=self.engine, class_=_RegisterSession, expire_on_commit=False)
        try:
            self._init_schema(create)
        except (OperationalError, DBAPIError) as err:
            self.engine.dispose()
            raise _db_error(shown, err, "open") from None

    # -- lifecycle ------------------------------------------------------------------------

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    def __enter__(self) -> "Register":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Register({self.display_url!r})"

    def _init_schema(self, create: bool) -> None:
        with self.engine.connect() as conn:
            has = self.engine.dialect.has_table(conn, "register_meta")
        if not has:
            if not create:
                raise ProfileError(f"register {self.display_url} has no profile register tables; run "
                                   "`hra profiles update` first to create one")
            Base.metadata.create_all(self.engine)
            with self.transaction() as s:
                if s.get(RegisterMeta, 1) is None:
                    s.add(RegisterMeta(id=1, schema_version=SCHEMA_VERSION, updates=0))
        with self.transaction() as s:
            meta = s.get(RegisterMeta, 1)
            if meta is None or meta.schema_version != SCHEMA_VERSION:
                found = None if meta is None else meta.schema_version
                raise ProfileError(f"register {self.display_url} has schema version {found}, this program "
                                   f"needs {SCHEMA_VERSION}; use a matching hra version or a new register")

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session inside one transaction: committed on success, rolled back on any error.

        A database that stays locked by another writer longer than :data:`SQLITE_LOCK_TIMEOUT_S`, or
        a read-only one, raises :class:`ProfileError` naming the register and the fix."""
        try:
            with self._sessions() as session, session.begin():
                yield session
        except OperationalError as err:
            raise _db_error(self.display_url, err, "update") from None

    # -- lookups -------------------------------------------------------------------------

    def _require_building(self, s: Session, building_id: str) -> Building:
        b = s.get(Building, str(building_id))
        if b is None:
            raise ProfileError(f"building {building_id!r} is not in register {self.display_url}; check the id, "
                               "or run `hra profiles update` with a risk file that contains it")
        return b

    def _check_known(self, s: Session, ids: Sequence[str], where: str) -> None:
        ids = list(dict.fromkeys(str(i) for i in ids))
        known: set[str] = set()
        for k in range(0, len(ids), 500):
            chunk = ids[k:k + 500]
            known.update(s.scalars(select(Building.building_id).where(Building.building_id.in_(chunk))))
        unknown = [i for i in ids if i not in known]
        if unknown:
            more = f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else ""
            raise ProfileError(f"{where}: {len(unknown)} building id(s) are not in register {self.display_url}: "
                               f"{', '.join(map(repr, unknown[:5]))}{more}; check the ids or run "
                               "`hra profiles update` with a risk file that contains them")

    @staticmethod
    def _latest_applied(s: Session, ids: Sequence[str] | None = None) -> dict[str, tuple[str, str, int]]:
        """building_id -> (computed, applied, run_seq) of the latest history row."""
        latest = (
            select(ProfileRecord.building_id, func.max(ProfileRecord.run_seq).label("m"))
            .group_by(ProfileRecord.building_id)
            .subquery()
        )
        q = select(ProfileRecord.building_id, ProfileRecord.computed_profile, ProfileRecord.applied_profile,
                   ProfileRecord.run_seq).join(
            latest, (ProfileRecord.building_id == latest.c.building_id) & (ProfileRecord.run_seq == latest.c.m)
        )
        if ids is not None:
            q = q.where(ProfileRecord.building_id.in_(list(ids)))
        return {b: (c, a, r) for b, c, a, r in s.execute(q)}

    @staticmethod
    def _adjustments(s: Session) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for b, p in s.execute(select(Adjustment.building_id, Adjustment.profile)):
            out.setdefault(b, []).append(p)
        return out

    # -- annual update ---------------------------------------------------------------------

    def update(self, ds: xr.Dataset, rule: str | Path | ProfileRule | Mapping | None = "besluit-2019", *,
               run_id: str | None = None, source: str | None = None) -> UpdateResult:
        """Register an annual risk run: compute profiles, append history, never lower (art. 4.5).

        Parameters
        ----------
        ds
            Risk Dataset (docs/architecture.md §4.1), with attribute ``provenance``.
        rule
            Profile rule (preset name, TOML file or :class:`~hra.policy.profiles.ProfileRule`).
        run_id
            Run id; default: first year and prefix of ``config_sha256`` (see
            :func:`hra.policy.profiles.default_run_id`).
        source
            Where the Dataset came from (stored with the run; informative).

        Returns
        -------
        UpdateResult

        Raises
        ------
        ProfileError
            If the Dataset is invalid, the run id is already registered with another provenance
            hash or rule, or the same provenance is registered under another run id. Nothing is
            written then, nor when any other error occurs during the update.
        """
        where = f"risk file {source}" if source else "risk Dataset"
        rule = load_rule(rule)
        table = assign_profiles(ds, rule, where=where)
        phash = provenance_hash(ds, where=where)
        rid = str(run_id) if run_id else default_run_id(ds, where=where)
        rule_json = rule.model_dump(mode="json")
        stat_cols = [c for c in table.columns if c.endswith("_short_max") or c.endswith("_long_max")]
        stat_cols.append("time_unsafe_years")

        try:
            with self.transaction() as s:
                # Take the write lock first (serialises concurrent updates on every backend).
                s.execute(update(RegisterMeta).where(RegisterMeta.id == 1).values(updates=RegisterMeta.updates + 1))
                existing = s.scalar(select(Run).where(Run.run_id == rid))
                if existing is not None:
                    if existing.provenance_hash != phash:
                        raise ProfileError(
                            f"run {rid!r} is already in register {self.display_url} with provenance hash "
                            f"{existing.provenance_hash[:12]}..., but {where} has {phash[:12]}...; it is a different "
                            "risk run. Give it its own run id (--run-id) or check that you load the right file"
                        )
                    if existing.rule != rule_json:
                        raise ProfileError(
                            f"run {rid!r} is already in register {self.display_url} with rule "
                            f"{existing.rule_name!r}, now asked with rule {rule.name!r} (different settings); a "
                            "run is registered once. Use the original rule, or another run id"
                        )
                    raise _Unchanged(rid, phash, existing.n_buildings)
                same = s.scalar(select(Run.run_id).where(Run.provenance_hash == phash))
                if same is not None:
                    raise ProfileError(
                        f"{where} (provenance hash {phash[:12]}...) is already registered as run {same!r}; a run is "
                        f"registered once. Re-running with run id {same!r} changes nothing"
                    )
                return self._apply_update(s, table, rule, rule_json, rid, phash, source, stat_cols)
        except _Unchanged as u:
            return UpdateResult(run_id=u.run_id, provenance_hash=u.phash, status="unchanged", n_buildings=u.n)
        except IntegrityError as err:
            raise ProfileError(f"register {self.display_url}: the update of run {rid!r} was refused by the "
                               f"database and rolled back ({err.orig}); another update may have run at the same "
                               "time, try again") from None

    def update_from_file(self, path: str | Path, rule: str | Path | ProfileRule | Mapping | None = "besluit-2019",
                         *, run_id: str | None = None) -> UpdateResult:
        """:meth:`update` with a risk file (zarr directory or netCDF), read by :func:`hra.policy.profiles.open_risk`."""
        ds = open_risk(path)
        return self.update(ds, rule, run_id=run_id, source=str(path))

    def _apply_update(self, s: Session, table: pd.DataFrame, rule: ProfileRule, rule_json: dict, rid: str,
                      phash: str, source: str | None, stat_cols: list[str]) -> UpdateResult:
        run = Run(run_id=rid, provenance_hash=phash, rule_name=rule.name, rule=rule_json,
                  short_years=list(table.attrs.get("short_horizon", [])),
                  long_years=list(table.attrs.get("long_horizon", [])),
                  source=source, n_buildings=len(table))
        s.add(run)
        s.flush()

        ids = table["building_id"].tolist()
        known = {
            r.building_id: {"x_rd": r.x_rd, "y_rd": r.y_rd, "municipality": r.municipality,
                            "connected_group": r.connected_group}
            for r in s.execute(select(Building.building_id, Building.x_rd, Building.y_rd, Building.municipality,
                                      Building.connected_group))
        }
        has_mun = "municipality" in table.columns
        has_grp = "connected_group" in table.columns
        new_rows, changed = [], []
        for rec in table.itertuples(index=False):
            bid = rec.building_id
            attrs: dict[str, Any] = {"x_rd": _py(getattr(rec, "x_rd", None)), "y_rd": _py(getattr(rec, "y_rd", None))}
            if has_mun:
                attrs["municipality"] = _clean_str(rec.municipality)
            if has_grp:
                attrs["connected_group"] = _clean_str(rec.connected_group)
            if bid not in known:
                new_rows.append({"building_id": bid, "first_run_seq": run.seq, **attrs})
            elif any(known[bid][k] != v for k, v in attrs.items()):
                changed.append({"building_id": bid, **attrs})
        for k in range(0, len(new_rows), _FLUSH_EVERY):
            s.execute(insert(Building), new_rows[k:k + _FLUSH_EVERY])
        for k in range(0, len(changed), _FLUSH_EVERY):
            s.execute(update(Building), changed[k:k + _FLUSH_EVERY])

        previous = self._latest_applied(s)
        adjustments = self._adjustments(s)
        rows: list[dict[str, Any]] = []
        computed_counts = dict.fromkeys(PROFILE_ORDER, 0)
        applied_counts = dict.fromkeys(PROFILE_ORDER, 0)
        n_ratchet = n_adjusted = 0
        for rec in table.to_dict("records"):
            bid = rec["building_id"]
            prev = previous.get(bid)
            row = _history_row(run.seq, rec, None if prev is None else prev[1], adjustments.get(bid, ()), stat_cols)
            computed_counts[row["computed_profile"]] += 1
            applied_counts[row["applied_profile"]] += 1
            n_ratchet += row["applied_reason"] == "ratchet"
            n_adjusted += row["applied_reason"] == "adjustment"
            rows.append(row)
            if len(rows) >= _FLUSH_EVERY:
                s.execute(insert(ProfileRecord), rows)
                rows = []
        if rows:
            s.execute(insert(ProfileRecord), rows)

        # Opt-outs withdrawn by the owner after a decision re-enter the plan now (art. 14).
        reentered = []
        for oo in s.scalars(select(OptOut).where(OptOut.status == "revoked")):
            oo.status = "reentered"
            oo.reentered_run_seq = run.seq
            reentered.append(oo.building_id)
        s.flush()
        in_run = set(ids)
        missing = tuple(sorted(b for b in known if b not in in_run))
        return UpdateResult(run_id=rid, provenance_hash=phash, status="applied", n_buildings=len(table),
                            n_new_buildings=len(new_rows), computed=computed_counts, applied=applied_counts,
                            n_ratchet=int(n_ratchet), n_adjusted=int(n_adjusted), missing=missing,
                            reentered=tuple(sorted(reentered)))

    # -- adjustments, inspections, attributes, parties, decisions ---------------------------

    def adjust(self, building_id: str, profile: str, *, reason: str, author: str, article: str = "4.4") -> int:
        """Record a profile adjustment (art. 4.4 or 4.8); it raises the applied profile at once.

        An adjustment is a floor: the applied profile becomes ``max(applied, profile)`` now and
        at every later update.

        Parameters
        ----------
        building_id
            Building in the register.
        profile
            Profile the building gets at least.
        reason, author
            Why and by whom (both required, non-empty).
        article
            ``"4.4"`` or ``"4.8"``.

        Returns
        -------
        int
            Id of the adjustment.

        Raises
        ------
        ProfileError
            Unknown building or profile, empty reason/author, unknown article, or a profile not
            above the current applied profile (a profile never drops, art. 4.5).
        """
        profile_rank(profile, where=f"adjustment of building {building_id!r}")
        if not str(reason or "").strip():
            raise ProfileError(f"adjustment of building {building_id!r}: a reason is required (art. 4.4/4.8)")
        if not str(author or "").strip():
            raise ProfileError(f"adjustment of building {building_id!r}: an author is required")
        if str(article) not in ADJUSTMENT_ARTICLES:
            raise ProfileError(f"adjustment of building {building_id!r}: article {article!r} unknown; use one of "
                               f"{', '.join(ADJUSTMENT_ARTICLES)}")
        with self.transaction() as s:
            self._require_building(s, building_id)
            current = self._current_applied(s, str(building_id))
            if current is not None and profile_rank(profile) <= profile_rank(current):
                raise ProfileError(
                    f"adjustment of building {building_id!r} to {profile!r} does not raise its applied profile "
                    f"{current!r}; a profile never drops (art. 4.5), so only a higher profile can be recorded"
                )
            adj = Adjustment(building_id=str(building_id), profile=profile, reason=str(reason).strip(),
                             author=str(author).strip(), article=str(article))
            s.add(adj)
            s.flush()
            return adj.id

    def _current_applied(self, s: Session, building_id: str) -> str | None:
        latest = self._latest_applied(s, [building_id]).get(building_id)
        adjs = list(s.scalars(select(Adjustment.profile).where(Adjustment.building_id == building_id)))
        candidates = ([latest[1]] if latest else []) + adjs
        return max_profile(*candidates) if candidates else None

    def request_inspection(self, building_id: str, *, requested_by: str, on: date | None = None,
                           reason: str = "") -> int:
        """Record a request for an inspection of the building (art. 4.6).

        Returns
        -------
        int
            Id of the request.
        """
        if not str(requested_by or "").strip():
            raise ProfileError(f"inspection request for building {building_id!r}: requested_by is required")
        with self.transaction() as s:
            self._require_building(s, building_id)
            req = InspectionRequest(building_id=str(building_id), requested_by=str(requested_by).strip(),
                                    requested_on=on or date.today(), reason=reason or "", status="open")
            s.add(req)
            s.flush()
            return req.id

    def resolve_inspection(self, request_id: int, *, on: date, status: str = "done", outcome: str = "") -> None:
        """Close an inspection request (``done`` or ``rejected``) with its outcome."""
        if status not in ("done", "rejected"):
            raise ProfileError(f"inspection request {request_id}: status {status!r} unknown; use 'done' or 'rejected'")
        with self.transaction() as s:
            req = s.get(InspectionRequest, int(request_id))
            if req is None:
                raise ProfileError(f"inspection request {request_id} is not in register {self.display_url}")
            if req.status != "open":
                raise ProfileError(f"inspection request {request_id} is already {req.status}")
            req.status, req.resolved_on, req.outcome = status, on, outcome

    def set_building_attributes(self, table: pd.DataFrame, *, where: str = "exposure table") -> int:
        """Set ``municipality`` and/or ``connected_group`` of known buildings from an exposure table.

        Parameters
        ----------
        table
            Columns ``building_id`` and one or both of ``municipality``, ``connected_group``
            (buildings sharing a group id are structurally connected).

        Returns
        -------
        int
            Number of buildings updated.

        Raises
        ------
        ProfileError
            Missing columns or unknown building ids.
        """
        if "building_id" not in table.columns:
            raise ProfileError(f"{where}: column 'building_id' is missing")
        cols = [c for c in ("municipality", "connected_group") if c in table.columns]
        if not cols:
            raise ProfileError(f"{where}: needs a 'municipality' or 'connected_group' column")
        rows = [{"building_id": str(r["building_id"]), **{c: _clean_str(r[c]) for c in cols}}
                for r in table.to_dict("records")]
        with self.transaction() as s:
            self._check_known(s, [r["building_id"] for r in rows], where)
            for k in range(0, len(rows), _FLUSH_EVERY):
                s.execute(update(Building), rows[k:k + _FLUSH_EVERY])
        return len(rows)

    def load_parties(self, table: pd.DataFrame, *, where: str = "parties table") -> int:
        """Add owners and residents of buildings (needed for opt-out notifications, art. 12).

        Parameters
        ----------
        table
            Columns ``building_id``, ``role`` (``owner`` or ``resident``), ``name`` and optional
            ``contact``. Rows already present are skipped.

        Returns
        -------
        int
            Number of parties added.
        """
        for c in ("building_id", "role", "name"):
            if c not in table.columns:
                raise ProfileError(f"{where}: column {c!r} is missing; need building_id, role, name")
        recs = []
        for i, r in enumerate(table.to_dict("records")):
            role = _clean_str(r["role"])
            name = _clean_str(r["name"])
            if role not in ("owner", "resident"):
                raise ProfileError(f"{where}: row {i + 1}, column 'role': {r['role']!r} is not 'owner' or 'resident'")
            if not name:
                raise ProfileError(f"{where}: row {i + 1}, column 'name' is empty")
            recs.append((str(r["building_id"]), role, name, _clean_str(r.get("contact"))))
        with self.transaction() as s:
            self._check_known(s, [r[0] for r in recs], where)
            have = set(s.execute(select(Party.building_id, Party.role, Party.name)).all())
            added = 0
            for b, role, name, contact in recs:
                if (b, role, name) in have:
                    continue
                s.add(Party(building_id=b, role=role, name=name, contact=contact))
                have.add((b, role, name))
                added += 1
        return added

    def record_decision(self, building_id: str, kind: str, taken_on: date) -> int:
        """Record a normbesluit or versterkingsbesluit on a building (withdrawn by an opt-out).

        Returns
        -------
        int
            Id of the decision.
        """
        if kind not in DECISION_KINDS:
            raise ProfileError(f"decision on building {building_id!r}: kind {kind!r} unknown; use one of "
                               f"{', '.join(DECISION_KINDS)}")
        with self.transaction() as s:
            self._require_building(s, building_id)
            d = Decision(building_id=str(building_id), kind=kind, taken_on=taken_on, status="active")
            s.add(d)
            s.flush()
            return d.id

    # -- reading --------------------------------------------------------------------------

    def runs(self) -> pd.DataFrame:
        """Registered runs in order (run id, provenance hash, rule, horizons, size, time)."""
        with self.transaction() as s:
            rows = [
                {"seq": r.seq, "run_id": r.run_id, "provenance_hash": r.provenance_hash, "rule": r.rule_name,
                 "short_years": r.short_years, "long_years": r.long_years, "n_buildings": r.n_buildings,
                 "source": r.source, "created_at": r.created_at}
                for r in s.scalars(select(Run).order_by(Run.seq))
            ]
        return pd.DataFrame(rows, columns=["seq", "run_id", "provenance_hash", "rule", "short_years", "long_years",
                                           "n_buildings", "source", "created_at"])

    def show(self, building_id: str) -> dict[str, Any]:
        """Everything the register holds about one building, as JSON-ready data.

        Returns
        -------
        dict
            Keys ``building_id``, ``computed`` (latest computed profile), ``applied`` (current
            applied profile, adjustments included), ``history`` (list of ``{"run", "computed",
            "applied", ...}`` in run order), plus ``municipality``, ``connected_group``,
            ``in_plan``, ``adjustments``, ``inspection_requests``, ``optouts``, ``decisions``.

        Raises
        ------
        ProfileError
            If the building is not in the register.
        """
        bid = str(building_id)
        with self.transaction() as s:
            b = self._require_building(s, bid)
            hist = s.execute(
                select(ProfileRecord, Run).join(Run, Run.seq == ProfileRecord.run_seq)
                .where(ProfileRecord.building_id == bid).order_by(Run.seq)
            ).all()
            history = [
                {"run": run.run_id, "computed": rec.computed_profile, "applied": rec.applied_profile,
                 "reason": rec.applied_reason, "previous_applied": rec.previous_applied,
                 "provenance_hash": run.provenance_hash, "rule": run.rule_name,
                 "decisive_statistic": rec.decisive_statistic, "decisive_year": rec.decisive_year,
                 "decisive_value": rec.decisive_value, "explanation": rec.explanation,
                 "statistics": rec.statistics, "recorded_at": _iso(run.created_at)}
                for rec, run in hist
            ]
            adjs = [
                {"id": a.id, "profile": a.profile, "reason": a.reason, "author": a.author, "article": a.article,
                 "created_at": _iso(a.created_at)}
                for a in s.scalars(select(Adjustment).where(Adjustment.building_id == bid).order_by(Adjustment.id))
            ]
            insp = [
                {"id": r.id, "requested_by": r.requested_by, "requested_on": _iso(r.requested_on),
                 "reason": r.reason, "status": r.status, "resolved_on": _iso(r.resolved_on), "outcome": r.outcome}
                for r in s.scalars(select(InspectionRequest).where(InspectionRequest.building_id == bid)
                                   .order_by(InspectionRequest.id))
            ]
            optouts = [
                {"id": o.id, "owner": o.owner, "requested_on": _iso(o.requested_on),
                 "window_end": _iso(o.window_end), "status": o.status, "withdrawn_on": _iso(o.withdrawn_on),
                 "decided_on": _iso(o.decided_on), "decided_by": o.decided_by, "revoked_on": _iso(o.revoked_on)}
                for o in s.scalars(select(OptOut).where(OptOut.building_id == bid).order_by(OptOut.id))
            ]
            decisions = [
                {"id": d.id, "kind": d.kind, "taken_on": _iso(d.taken_on), "status": d.status,
                 "withdrawn_on": _iso(d.withdrawn_on), "withdrawn_reason": d.withdrawn_reason}
                for d in s.scalars(select(Decision).where(Decision.building_id == bid).order_by(Decision.id))
            ]
            applied = max_profile(*([h["applied"] for h in history[-1:]] + [a["profile"] for a in adjs])) \
                if (history or adjs) else None
            return {
                "building_id": bid,
                "computed": history[-1]["computed"] if history else None,
                "applied": applied,
                "history": history,
                "municipality": b.municipality,
                "connected_group": b.connected_group,
                "in_plan": not any(o["status"] in OPTOUT_EXCLUDING_STATUSES for o in optouts),
                "adjustments": adjs,
                "inspection_requests": insp,
                "optouts": optouts,
                "decisions": decisions,
            }

    def export(self) -> pd.DataFrame:
        """Current state of every building: the profile table used by :mod:`hra.policy.planning`.

        Returns
        -------
        pandas.DataFrame
            One row per building (sorted by id) with ``building_id``, ``municipality``,
            ``connected_group``, ``x_rd``, ``y_rd`` [m], ``last_run``, ``computed_profile``,
            ``applied_profile`` (adjustments included), ``applied_reason``,
            ``decisive_statistic``, ``decisive_year``, ``decisive_value`` [yr⁻¹], the statistics
            of the latest run (``lpr_*_short_max``, ``lpr_*_long_max`` [yr⁻¹],
            ``time_unsafe_years``), ``opted_out`` (bool) and ``optout_status``.
        """
        with self.transaction() as s:
            buildings = s.scalars(select(Building).order_by(Building.building_id)).all()
            latest_q = (
                select(ProfileRecord.building_id, func.max(ProfileRecord.run_seq).label("m"))
                .group_by(ProfileRecord.building_id).subquery()
            )
            recs = {
                rec.building_id: (rec, run_id)
                for rec, run_id in s.execute(
                    select(ProfileRecord, Run.run_id)
                    .join(latest_q, (ProfileRecord.building_id == latest_q.c.building_id)
                          & (ProfileRecord.run_seq == latest_q.c.m))
                    .join(Run, Run.seq == ProfileRecord.run_seq)
                )
            }
            adjs = self._adjustments(s)
            optout: dict[str, str] = {}
            for bid, status in s.execute(select(OptOut.building_id, OptOut.status).order_by(OptOut.id)):
                optout[bid] = status  # latest request wins
            rows = []
            stat_keys: list[str] = []
            for b in buildings:
                rec, run_id = recs.get(b.building_id, (None, None))
                adj = adjs.get(b.building_id, [])
                cands = ([rec.applied_profile] if rec is not None else []) + adj
                applied = max_profile(*cands) if cands else None
                reason = None
                if rec is not None:
                    reason = rec.applied_reason
                    if applied is not None and profile_rank(applied) > profile_rank(rec.applied_profile):
                        reason = "adjustment"
                elif applied is not None:
                    reason = "adjustment"
                row = {
                    "building_id": b.building_id, "municipality": b.municipality,
                    "connected_group": b.connected_group, "x_rd": b.x_rd, "y_rd": b.y_rd, "last_run": run_id,
                    "computed_profile": rec.computed_profile if rec else None, "applied_profile": applied,
                    "applied_reason": reason,
                    "decisive_statistic": rec.decisive_statistic if rec else None,
                    "decisive_year": rec.decisive_year if rec else None,
                    "decisive_value": rec.decisive_value if rec else None,
                }
                if rec is not None:
                    for k, v in rec.statistics.items():
                        if k in ("decisive_horizon", "threshold"):
                            continue
                        row[k] = v
                        if k not in stat_keys:
                            stat_keys.append(k)
                status = optout.get(b.building_id)
                row["opted_out"] = status in OPTOUT_EXCLUDING_STATUSES
                row["optout_status"] = status
                rows.append(row)
        base = ["building_id", "municipality", "connected_group", "x_rd", "y_rd", "last_run", "computed_profile",
                "applied_profile", "applied_reason", "decisive_statistic", "decisive_year", "decisive_value"]
        df = pd.DataFrame(rows, columns=base + stat_keys + ["opted_out", "optout_status"])
        df["decisive_year"] = df["decisive_year"].astype("Int64")
        if "time_unsafe_years" in df.columns:
            df["time_unsafe_years"] = df["time_unsafe_years"].astype("Int64")
        df["opted_out"] = df["opted_out"].astype(bool)
        return df


class _Unchanged(Exception):
    """Internal: the run is already registered with the same hash (rolls back the lock)."""

    def __init__(self, run_id: str, phash: str, n: int) -> None:
        super().__init__(run_id)
        self.run_id, self.phash, self.n = run_id, phash, n


#: How long an SQLite register waits for another writer's lock before giving up [s]
#: (environment variable ``HRA_REGISTER_LOCK_TIMEOUT_S``).
SQLITE_LOCK_TIMEOUT_S = float(os.environ.get("HRA_REGISTER_LOCK_TIMEOUT_S", "120"))


def _db_error(shown: str, err: DBAPIError, action: str) -> ProfileError:
    """A database error as a ProfileError that says what happened and what to do."""
    text = str(getattr(err, "orig", err))
    low = text.lower()
    if "locked" in low or "busy" in low:
        return ProfileError(
            f"register {shown} is locked by another process (its write lock was held longer than "
            f"{SQLITE_LOCK_TIMEOUT_S:g} s); nothing was changed. Wait until the other `hra profiles` command has "
            "finished and run this one again (or raise HRA_REGISTER_LOCK_TIMEOUT_S)")
    if "readonly" in low or "read-only" in low or "read only" in low:
        return ProfileError(f"register {shown} is read-only ({text}); nothing was changed. Ask for write access to "
                            "the file and its folder, or work on a copy")
    if "not a database" in low:
        return ProfileError(f"register {shown}: cannot {action} the database: {text}. Fix: give the register's "
                            "SQLite file or SQLAlchemy URL (`hra profiles update RISK --register FILE` creates one)")
    return ProfileError(f"register {shown}: cannot {action} the database: {text}")


def _configure_sqlite(engine: Engine) -> None:
    """SQLite: real transactions (BEGIN on every transaction) and enforced foreign keys."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        dbapi_connection.isolation_level = None  # let SQLAlchemy emit BEGIN itself
        cur = dbapi_connection.cursor()
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")
