"""Report schedules: daily, weekly, monthly, or a five-field cron expression (UTC), and
the subscription rows that hold them. Sending a due report moves its `next_at` on by a
compare-and-set, so N instances post each report once."""

from __future__ import annotations

from datetime import datetime, timedelta

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.clock import utcnow
from bot.store.engine import session_scope
from bot.store.models import UsageSubscription

NAMED = {
    "daily": "0 9 * * *",  # 09:00 UTC
    "weekly": "0 9 * * mon",
    "monthly": "0 9 1 * *",  # the 1st: the month just ended
}


class ScheduleError(ValueError):
    """Not a schedule; the message says what is allowed."""


def trigger(schedule: str) -> CronTrigger:
    expr = NAMED.get(schedule, schedule)
    fields = expr.split()
    if len(fields) != 5:
        raise ScheduleError(
            f"'{schedule[:80]}' is not a schedule: use daily, weekly, monthly or a cron "
            'expression of five fields in quotes, e.g. "0 9 * * mon-fri" (UTC).'
        )
    try:
        return CronTrigger.from_crontab(expr, timezone="UTC")
    except ValueError as exc:
        raise ScheduleError(f"'{schedule[:80]}' is not a valid cron expression: {exc}.") from None


def next_fire(schedule: str, after: datetime) -> datetime:
    """The first time strictly after `after` that the schedule fires."""
    fire = trigger(schedule).get_next_fire_time(None, after + timedelta(seconds=1))
    if fire is None:
        raise ScheduleError(f"'{schedule[:80]}' never fires.")
    return fire


def subscribe(
    engine: Engine,
    *,
    schedule: str,
    project: str,
    platform: str,
    workspace_id: str,
    channel_id: str,
    created_by: int | None,
    created_by_name: str,
) -> UsageSubscription:
    row = UsageSubscription(
        schedule=schedule,
        project=project,
        platform=platform,
        workspace_id=workspace_id,
        channel_id=channel_id,
        created_by=created_by,
        created_by_name=created_by_name[:200],
        next_at=next_fire(schedule, utcnow()),
    )
    with session_scope(engine) as session:
        session.add(row)
        session.flush()
        session.refresh(row)
    return row


def subscriptions(engine: Engine) -> list[UsageSubscription]:
    with session_scope(engine) as session:
        return list(session.exec(select(UsageSubscription).order_by(col(UsageSubscription.id))))


def unsubscribe(engine: Engine, sub_id: int) -> UsageSubscription | None:
    with session_scope(engine) as session:
        row = session.get(UsageSubscription, sub_id)
        if row is None:
            return None
        session.delete(row)
        return row


def due(engine: Engine, now: datetime | None = None) -> list[UsageSubscription]:
    now = now or utcnow()
    with session_scope(engine) as session:
        return list(
            session.exec(
                select(UsageSubscription)
                .where(col(UsageSubscription.next_at) <= now)
                .order_by(col(UsageSubscription.id))
            )
        )


def claim_report(engine: Engine, row: UsageSubscription, now: datetime | None = None) -> bool:
    """True for exactly one caller: this report (the one due at `row.next_at`) is ours to
    send; the row moves on to the next time its schedule fires after now (a bot down for a
    week sends one report, not seven)."""
    now = now or utcnow()
    with session_scope(engine) as session:
        moved = session.execute(
            update(UsageSubscription)
            .where(
                col(UsageSubscription.id) == row.id,
                col(UsageSubscription.next_at) == row.next_at,
            )
            .values(next_at=next_fire(row.schedule, now), last_sent_at=now)
        )
        return bool(moved.rowcount)  # type: ignore[attr-defined]
