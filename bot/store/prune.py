"""Letting old rows go: platform delivery ids and spent link codes, on a schedule, once per
period whichever instance gets there first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from bot.clock import utcnow
from bot.store import dedupe
from bot.store.engine import session_scope
from bot.store.models import LinkRequest, PeriodicRun

PRUNE_EVERY = timedelta(hours=1)
DELIVERIES_KEPT = timedelta(days=2)  # platforms retry within minutes; two days is plenty
LINK_CODES_KEPT = timedelta(days=1)  # past their expiry, for anyone asking "what happened"


def claim_run(engine: Engine, name: str, every: timedelta, by: str) -> bool:
    """True for exactly one caller per `every` across every instance on this database."""
    now = utcnow()
    try:
        with session_scope(engine) as session:
            session.add(PeriodicRun(name=name, last_run_at=now, run_by=by))
        return True
    except IntegrityError:
        pass  # it has run before (or another instance inserted it just now)
    with session_scope(engine) as session:
        moved = session.execute(
            update(PeriodicRun)
            .where(col(PeriodicRun.name) == name, col(PeriodicRun.last_run_at) <= now - every)
            .values(last_run_at=now, run_by=by)
        )
        return bool(moved.rowcount)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Pruned:
    deliveries: int
    link_codes: int


def prune_link_codes(engine: Engine, older_than: timedelta = LINK_CODES_KEPT) -> int:
    """Link codes never claimed, or confirmed (the two identities share a principal now),
    that expired more than `older_than` ago. A claimed code is kept: both accounts typed it,
    so it proves they are one person, and the self-approval check reads it."""
    with session_scope(engine) as session:
        result = session.execute(
            delete(LinkRequest).where(
                col(LinkRequest.state).in_(("started", "done")),
                col(LinkRequest.expires_at) < utcnow() - older_than,
            )
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


def prune_if_due(engine: Engine, by: str, every: timedelta = PRUNE_EVERY) -> Pruned | None:
    """Prune when this period's run is not claimed yet; None when another instance (or an
    earlier call) already ran it."""
    if not claim_run(engine, "prune", every, by):
        return None
    return Pruned(
        deliveries=dedupe.prune(engine, DELIVERIES_KEPT),
        link_codes=prune_link_codes(engine),
    )
