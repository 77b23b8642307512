"""The daily usage collector: each completed UTC day's machines, volumes and outbound data,
stored as rows, since Fly keeps metrics only about 15 days.

A day is claimed in the database before anyone samples it (`claim_day`: an insert, or a
compare-and-set for a day to retry), so N instances sample each day once. Sampling:

- machines: Prometheus `fly_instance_up` over the day at 5-minute steps gives each machine's
  seconds started and stopped; its size (cpu kind, cpus, memory) comes from the Machines API
  (destroyed machines included), or from an earlier day's row when Fly no longer lists it;
- volumes: `fly_volume_size_bytes` over the day (size, and how long it existed);
- outbound: `sum by (app, region) (increase(fly_edge_data_out[1d]))` at the day's end.

A day missed while the bot was down is back-filled from Prometheus while it still holds the
day, and marked `gap` when it no longer does. When Prometheus does not answer (after the
client's own retries), the day is `estimated`: machines and volumes as the Machines API lists
them now, outbound as a typical day of the week before; it is sampled again every
`RETRY_EVERY` while Prometheus still holds it, and the report names the days still estimated.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import delete, or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from bot.clock import utcnow
from bot.fly import FlyAPIError, FlyClient, Machine
from bot.store.engine import session_scope
from bot.store.models import UsageDay, UsageSample

log = logging.getLogger(__name__)

DAY = timedelta(days=1)
DAY_S = 86_400.0
RETENTION = timedelta(days=15)  # how long Fly's Prometheus keeps samples
RETRY_EVERY = timedelta(hours=1)  # an estimated day is sampled again this often
STALE_CLAIM = timedelta(minutes=10)  # a claim this old was left by a process that died
STEP_S = 300  # the resolution of the machine and volume range queries
EGRESS_QUERY = "sum by (app, region) (increase(fly_edge_data_out[1d]))"
RETRYABLE = ("estimated", "retry")  # claimable again after RETRY_EVERY (inside the window)


def day_key(day: date) -> str:
    return day.isoformat()


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def in_window(day: date, now: datetime, retention: timedelta = RETENTION) -> bool:
    """Prometheus still holds the whole day."""
    return day_start(day) >= now - retention


def candidate_days(now: datetime, retention: timedelta = RETENTION) -> list[date]:
    """Every completed day from the first of the month Prometheus' window starts in."""
    today = now.date()
    first = (now - retention).date().replace(day=1)
    return [first + timedelta(days=n) for n in range((today - first).days)]


# --- claims -----------------------------------------------------------------------------


def claim_day(
    engine: Engine, day: date, by: str, *, now: datetime | None = None, retry: bool = True
) -> bool:
    """True for exactly one caller: this process samples `day` now. A day never claimed is
    taken by the insert; a day to sample again (`retry`: estimated, or failed, and
    RETRY_EVERY ago), or one whose claimer died (STALE_CLAIM), by a compare-and-set."""
    now = now or utcnow()
    key = day_key(day)
    try:
        with session_scope(engine) as session:
            session.add(UsageDay(day=key, status="collecting", claimed_by=by, claimed_at=now,
                                 attempts=1))  # fmt: skip
        return True
    except IntegrityError:
        pass
    again = [
        (col(UsageDay.status) == "collecting") & (col(UsageDay.claimed_at) <= now - STALE_CLAIM)
    ]
    if retry:
        again.append(
            col(UsageDay.status).in_(RETRYABLE) & (col(UsageDay.claimed_at) <= now - RETRY_EVERY)
        )
    with session_scope(engine) as session:
        moved = session.execute(
            update(UsageDay)
            .where(col(UsageDay.day) == key, or_(*again))
            .values(
                status="collecting",
                claimed_by=by,
                claimed_at=now,
                attempts=col(UsageDay.attempts) + 1,
            )
        )
        return bool(moved.rowcount)  # type: ignore[attr-defined]


class _Lost(Exception):
    """Our claim was taken over (we were too slow): write nothing."""


def finish_day(
    engine: Engine,
    day: date,
    by: str,
    status: str,
    rows: Iterable[UsageSample] | None,
    note: str = "",
) -> bool:
    """Store the day's rows and status, if this process still holds the claim; `rows` None
    keeps whatever rows the day had."""
    key = day_key(day)
    try:
        with session_scope(engine) as session:
            moved = session.execute(
                update(UsageDay)
                .where(
                    col(UsageDay.day) == key,
                    col(UsageDay.status) == "collecting",
                    col(UsageDay.claimed_by) == by,
                )
                .values(status=status, collected_at=utcnow(), note=note[:300])
            )
            if not moved.rowcount:  # type: ignore[attr-defined]
                raise _Lost
            if rows is not None:
                session.execute(delete(UsageSample).where(col(UsageSample.day) == key))
                for row in rows:
                    row.day = key
                    session.add(row)
        return True
    except _Lost:
        log.warning("usage %s: the claim was taken over; another instance stores it", key)
        return False


def day_statuses(engine: Engine, first: date, last: date) -> dict[str, str]:
    with session_scope(engine) as session:
        found = session.exec(
            select(UsageDay).where(
                col(UsageDay.day) >= day_key(first), col(UsageDay.day) <= day_key(last)
            )
        )
        return {row.day: row.status for row in found}


def samples(engine: Engine, first: date, last: date) -> list[UsageSample]:
    with session_scope(engine) as session:
        return list(
            session.exec(
                select(UsageSample)
                .where(
                    col(UsageSample.day) >= day_key(first), col(UsageSample.day) <= day_key(last)
                )
                .order_by(col(UsageSample.day), col(UsageSample.id))
            )
        )


def _last_known_sizes(engine: Engine, ids: set[str]) -> dict[str, UsageSample]:
    """Machines Fly no longer lists: their size as an earlier day recorded it."""
    if not ids:
        return {}
    with session_scope(engine) as session:
        found = session.exec(
            select(UsageSample).where(
                col(UsageSample.kind) == "machine", col(UsageSample.key).in_(sorted(ids))
            )
        )
        return {row.key: row for row in found}


def _typical_egress(engine: Engine, before: date) -> dict[tuple[str, str], float]:
    """Bytes out per (app, region) on a typical recent day: the median of the last seven
    sampled days on which the pair sent anything (a median, so a partial first day weighs
    nothing)."""
    first = before - timedelta(days=15)
    with session_scope(engine) as session:
        done = {
            d.day
            for d in session.exec(
                select(UsageDay).where(
                    col(UsageDay.status) == "done",
                    col(UsageDay.day) >= day_key(first),
                    col(UsageDay.day) < day_key(before),
                )
            )
        }
        rows = session.exec(
            select(UsageSample)
            .where(col(UsageSample.kind) == "egress", col(UsageSample.day).in_(sorted(done)))
            .order_by(col(UsageSample.day).desc())
        )
        recent: dict[tuple[str, str], list[float]] = {}
        for row in rows:
            values = recent.setdefault((row.app, row.key), [])
            if len(values) < 7 and row.bytes_out > 0:
                values.append(row.bytes_out)
    return {key: statistics.median(values) for key, values in recent.items() if values}


# --- sampling ----------------------------------------------------------------------------


@dataclass
class Inventory:
    """What the Machines API lists now: every machine (destroyed ones too) and volume."""

    machines: dict[str, tuple[str, Machine]] = field(default_factory=dict)  # id -> (app, m)
    volumes: list[tuple[str, str, str, float]] = field(default_factory=list)  # app,id,region,GB


async def read_inventory(fly: FlyClient, org: str) -> Inventory:
    inventory = Inventory()
    for app in await fly.list_apps(org):
        for machine in await fly.list_machines(app.name, include_deleted=True):
            inventory.machines[machine.id] = (app.name, machine)
        for volume in await fly.list_volumes(app.name):
            inventory.volumes.append(
                (app.name, volume.id, volume.region or "", float(volume.size_gb or 0))
            )
    return inventory


def _guest(machine: Machine) -> tuple[str, int, int]:
    guest = machine.config.guest if machine.config else None
    cpu_kind = (guest.cpu_kind if guest else None) or "shared"
    cpus = (guest.cpus if guest else None) or 1
    memory = (guest.memory_mb if guest else None) or (2048 if cpu_kind == "performance" else 256)
    return cpu_kind, cpus, memory


@dataclass(frozen=True)
class Sampled:
    status: str  # done | estimated
    rows: list[UsageSample]
    note: str = ""


async def sample_day(engine: Engine, fly: FlyClient, inventory: Inventory, day: date) -> Sampled:
    start = day_start(day)
    end = start + DAY
    try:
        up = await fly.prom_query_range(
            "fly_instance_up", start=start, end=end - timedelta(seconds=STEP_S), step=STEP_S
        )
        volumes = await fly.prom_query_range(
            "fly_volume_size_bytes", start=start, end=end - timedelta(seconds=STEP_S), step=STEP_S
        )
        egress = await fly.prom_query(EGRESS_QUERY, at=end)
    except FlyAPIError as exc:
        log.warning("usage %s: Prometheus did not answer, estimating the day: %s", day, exc)
        return _estimate(engine, inventory, day, f"Prometheus did not answer: {exc}"[:300])
    rows: list[UsageSample] = []
    unknown = {
        s.metric.get("instance", "")
        for s in up
        if s.metric.get("instance", "") not in inventory.machines
    }
    earlier = _last_known_sizes(engine, unknown)
    for series in up:
        machine_id = series.metric.get("instance", "")
        if not machine_id:
            continue
        running = sum(STEP_S for p in series.samples if p.value >= 1)
        stopped = sum(STEP_S for p in series.samples if p.value < 1)
        if machine_id in inventory.machines:
            app, machine = inventory.machines[machine_id]
            cpu_kind, cpus, memory = _guest(machine)
        elif machine_id in earlier:
            row = earlier[machine_id]
            app, cpu_kind, cpus, memory = row.app, row.cpu_kind, row.cpus, row.memory_mb
        else:  # never seen with a size: counted as the smallest, which is what most are
            app, cpu_kind, cpus, memory = series.metric.get("app", "?"), "shared", 1, 256
        rows.append(
            UsageSample(
                kind="machine",
                app=app,
                key=machine_id,
                region=series.metric.get("region", ""),
                cpu_kind=cpu_kind,
                cpus=cpus,
                memory_mb=memory,
                running_s=float(running),
                stopped_s=float(stopped),
            )
        )
    for series in volumes:
        size = max((p.value for p in series.samples), default=0.0) / 1024**3
        rows.append(
            UsageSample(
                kind="volume",
                app=series.metric.get("app", "?"),
                key=series.metric.get("volume", "?"),
                region=series.metric.get("region", ""),
                size_gb=size,
                running_s=float(STEP_S * len(series.samples)),
            )
        )
    for series in egress:
        region = series.metric.get("region", "")
        rows.append(
            UsageSample(
                kind="egress",
                app=series.metric.get("app", "?"),
                key=region,
                region=region,
                bytes_out=max(0.0, series.value or 0.0),
            )
        )
    return Sampled("done", rows)


def _estimate(engine: Engine, inventory: Inventory, day: date, note: str) -> Sampled:
    rows: list[UsageSample] = []
    for machine_id, (app, machine) in inventory.machines.items():
        if machine.state in ("destroyed", "destroying"):
            continue
        cpu_kind, cpus, memory = _guest(machine)
        running = machine.state == "started"
        rows.append(
            UsageSample(
                kind="machine",
                app=app,
                key=machine_id,
                region=machine.region or "",
                cpu_kind=cpu_kind,
                cpus=cpus,
                memory_mb=memory,
                running_s=DAY_S if running else 0.0,
                stopped_s=0.0 if running else DAY_S,
                estimated=True,
            )
        )
    for app, volume_id, region, size in inventory.volumes:
        rows.append(
            UsageSample(
                kind="volume",
                app=app,
                key=volume_id,
                region=region,
                size_gb=size,
                running_s=DAY_S,
                estimated=True,
            )
        )
    for (app, region), average in sorted(_typical_egress(engine, day).items()):
        rows.append(
            UsageSample(
                kind="egress",
                app=app,
                key=region,
                region=region,
                bytes_out=average,
                estimated=True,
            )
        )
    return Sampled("estimated", rows, note)


# --- the job -----------------------------------------------------------------------------


@dataclass
class Collected:
    done: list[str] = field(default_factory=list)
    estimated: list[str] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def _due(engine: Engine, days: list[date], now: datetime) -> list[date]:
    """The days worth trying to claim (a cheap read first: most runs find nothing to do)."""
    if not days:
        return []
    statuses = day_statuses(engine, days[0], days[-1])
    with session_scope(engine) as session:
        claims = {
            row.day: row.claimed_at
            for row in session.exec(select(UsageDay).where(col(UsageDay.day) >= day_key(days[0])))
        }
    due = []
    for day in days:
        status = statuses.get(day_key(day))
        claimed = claims.get(day_key(day))
        if (
            status is None
            or (
                status in RETRYABLE
                and (status == "retry" or in_window(day, now))
                and claimed is not None
                and claimed <= now - RETRY_EVERY
            )
            or (status == "collecting" and claimed is not None and claimed <= now - STALE_CLAIM)
        ):
            due.append(day)
    return due


async def collect(
    engine: Engine, fly: FlyClient, org: str, by: str, *, now: datetime | None = None
) -> Collected:
    """Sample every completed day not sampled yet (and retry the estimated ones) that this
    process manages to claim. Blocking database calls run in a worker thread."""
    now = now or utcnow()
    result = Collected()
    due = await asyncio.to_thread(_due, engine, candidate_days(now), now)
    inventory: Inventory | None = None
    for day in due:
        inside = in_window(day, now)
        if not await asyncio.to_thread(claim_day, engine, day, by, now=now, retry=True):
            continue
        key = day_key(day)
        if not inside:
            # An estimated day Prometheus no longer holds keeps its estimate for good.
            had_rows = await asyncio.to_thread(_had_rows, engine, day)
            status = "estimated" if had_rows else "gap"
            note = "" if had_rows else "Prometheus no longer holds this day"
            await asyncio.to_thread(finish_day, engine, day, by, status, None, note)
            (result.estimated if had_rows else result.gaps).append(key)
            continue
        try:
            if inventory is None:
                inventory = await read_inventory(fly, org)
            sampled = await sample_day(engine, fly, inventory, day)
        except FlyAPIError as exc:
            log.warning("usage %s: the Machines API did not answer, retrying later: %s", key, exc)
            await asyncio.to_thread(finish_day, engine, day, by, "retry", None, str(exc))
            result.failed.append(key)
            continue
        if await asyncio.to_thread(
            finish_day, engine, day, by, sampled.status, sampled.rows, sampled.note
        ):
            (result.done if sampled.status == "done" else result.estimated).append(key)
    return result


def _had_rows(engine: Engine, day: date) -> bool:
    with session_scope(engine) as session:
        return (
            session.exec(select(UsageSample).where(col(UsageSample.day) == day_key(day))).first()
            is not None
        )
