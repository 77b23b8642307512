"""A month's figures from the daily samples: machine-hours by size (a stopped machine pays
only for its root filesystem), volume GB-months, outbound GB by region group, the estimated
bill, and the trend each allowance is on."""

from __future__ import annotations

import calendar
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

from bot.store.models import UsageSample
from bot.usage.config import HOURS_PER_MONTH, UsageConfig
from bot.usage.regions import GROUP_NAMES, GROUPS, SHORT_NAMES, group_of, known

GB = 1e9  # outbound is billed per GB (10^9 bytes)
DAY_S = 86_400.0

MACHINE_HOURS = "machine_hours"
VOLUME_GB_MONTHS = "volume_gb_months"


def outbound_metric(group: str) -> str:
    return f"outbound_{group}"


def metric_name(metric: str) -> str:
    if metric == MACHINE_HOURS:
        return "machine-hours"
    if metric == VOLUME_GB_MONTHS:
        return "volume GB-months"
    return f"outbound {SHORT_NAMES.get(metric.removeprefix('outbound_'), metric)}"


def month_days(month: str) -> list[date]:
    year, number = (int(p) for p in month.split("-"))
    count = calendar.monthrange(year, number)[1]
    return [date(year, number, d) for d in range(1, count + 1)]


def size_label(cpu_kind: str, cpus: int, memory_mb: int) -> str:
    kind = "performance" if cpu_kind == "performance" else "shared-cpu"
    return f"{kind}-{cpus}x {memory_mb} MB"


@dataclass(frozen=True)
class Trend:
    """One allowance this month: used so far, the daily rate of the days sampled, and where
    that rate takes it."""

    metric: str
    used: float
    allowance: float
    unit: str
    daily: tuple[float | None, ...]  # per day of the month, cumulative; None: not sampled
    rate: float  # per day
    through: int  # the last day of the month sampled (1-based), 0 for none
    days_in_month: int

    @property
    def percent(self) -> float:
        if self.allowance <= 0:
            return math.inf if self.used > 0 else 0.0
        return 100.0 * self.used / self.allowance

    @property
    def projected(self) -> float:
        return self.used + self.rate * (self.days_in_month - self.through)

    def reaches_on(self, amount: float | None = None) -> int | None:
        """The day of the month the trend reaches `amount` (the allowance by default), or
        None when it stays under it this month."""
        target = self.allowance if amount is None else amount
        if self.used >= target:
            for day, value in enumerate(self.daily, start=1):
                if value is not None and value >= target:
                    return day
            return self.through or 1
        if self.rate <= 0:
            return None
        day = self.through + math.ceil((target - self.used) / self.rate - 1e-9)
        return day if day <= self.days_in_month else None


@dataclass
class MonthFigures:
    month: str
    days_in_month: int
    statuses: dict[str, str]  # day -> done | estimated | gap | retry | missing | future
    running_hours: dict[str, float] = field(default_factory=dict)  # size label -> hours
    stopped_hours: dict[str, float] = field(default_factory=dict)
    hours_by_app: dict[str, float] = field(default_factory=dict)
    free_hours: float = 0.0  # running hours of the size the allowance is of
    volume_gb_months: float = 0.0
    outbound_gb: dict[str, float] = field(default_factory=lambda: dict.fromkeys(GROUPS, 0.0))
    outbound_by_day: dict[str, list[float | None]] = field(default_factory=dict)
    costs: list[tuple[str, float]] = field(default_factory=list)
    trends: list[Trend] = field(default_factory=list)
    unknown_regions: set[str] = field(default_factory=set)
    apps_running: dict[str, float] = field(default_factory=dict)  # app -> machines on average

    @property
    def total(self) -> float:
        return sum(amount for _, amount in self.costs)

    def days(self, *statuses: str) -> list[str]:
        return [d for d, s in sorted(self.statuses.items()) if s in statuses]

    @property
    def sampled(self) -> int:
        return len(self.days("done", "estimated"))

    def trend(self, metric: str) -> Trend:
        return next(t for t in self.trends if t.metric == metric)


def compute_month(
    month: str,
    rows: Iterable[UsageSample],
    statuses: dict[str, str],
    config: UsageConfig,
    today: date,
    apps: set[str] | None = None,
) -> MonthFigures:
    """The month's figures from its rows (`apps`: only these apps', for a project's view;
    the allowances are the org's either way)."""
    days = month_days(month)
    figures = MonthFigures(
        month=month,
        days_in_month=len(days),
        statuses={
            d.isoformat(): ("future" if d >= today else statuses.get(d.isoformat(), "missing"))
            for d in days
        },
    )
    prices = config.prices
    per_day: dict[str, dict[str, float]] = {}  # metric -> day -> amount that day
    free_label = size_label(
        "performance" if config.free_size.startswith("performance") else "shared",
        int(config.free_size.rsplit("-", 1)[1].removesuffix("x")),
        config.free_memory_mb,
    )
    machine_cost = 0.0
    sized: dict[str, tuple[str, int, int]] = {}
    for row in rows:
        if apps is not None and row.app not in apps:
            continue
        if not row.day.startswith(month):
            continue
        if row.kind == "machine":
            label = size_label(row.cpu_kind, row.cpus, row.memory_mb)
            sized[label] = (row.cpu_kind, row.cpus, row.memory_mb)
            hours = row.running_s / 3600
            figures.running_hours[label] = figures.running_hours.get(label, 0.0) + hours
            figures.stopped_hours[label] = (
                figures.stopped_hours.get(label, 0.0) + row.stopped_s / 3600
            )
            figures.hours_by_app[row.app] = figures.hours_by_app.get(row.app, 0.0) + hours
            if label == free_label:
                bucket = per_day.setdefault(MACHINE_HOURS, {})
                bucket[row.day] = bucket.get(row.day, 0.0) + hours
        elif row.kind == "volume":
            gb_months = row.size_gb * (row.running_s / DAY_S) / len(days)
            figures.volume_gb_months += gb_months
            bucket = per_day.setdefault(VOLUME_GB_MONTHS, {})
            bucket[row.day] = bucket.get(row.day, 0.0) + gb_months
        elif row.kind == "egress":
            group = group_of(row.region)
            if not known(row.region):
                figures.unknown_regions.add(row.region)
            gb = row.bytes_out / GB
            figures.outbound_gb[group] += gb
            bucket = per_day.setdefault(outbound_metric(group), {})
            bucket[row.day] = bucket.get(row.day, 0.0) + gb
    figures.free_hours = figures.running_hours.get(free_label, 0.0)
    sampled_days = max(figures.sampled, 1)
    figures.apps_running = {
        app: hours / (24 * sampled_days) for app, hours in figures.hours_by_app.items()
    }

    # the estimate
    for label, hours in sorted(figures.running_hours.items()):
        billable = max(0.0, hours - config.machine_hours) if label == free_label else hours
        machine_cost += billable * prices.machine_hour(*sized[label])
    figures.costs.append(("machines", machine_cost))
    stopped = sum(figures.stopped_hours.values())
    figures.costs.append(
        (
            "stopped machines' root filesystems",
            stopped * config.stopped_rootfs_gb * prices.rootfs_gb_month / HOURS_PER_MONTH,
        )
    )
    figures.costs.append(
        (
            "volumes",
            max(0.0, figures.volume_gb_months - config.volume_gb) * prices.volume_gb_month,
        )
    )
    for group in GROUPS:
        over = max(0.0, figures.outbound_gb[group] - config.outbound_gb.get(group, 0.0))
        figures.costs.append(
            (f"outbound {GROUP_NAMES[group]}", over * prices.outbound_gb.get(group, 0.0))
        )

    # the trends
    sampled = set(figures.days("done", "estimated"))
    through = max((n for n, d in enumerate(days, start=1) if d.isoformat() in sampled), default=0)
    limits = [
        (MACHINE_HOURS, figures.free_hours, config.machine_hours, "h"),
        (VOLUME_GB_MONTHS, figures.volume_gb_months, config.volume_gb, "GB-months"),
    ] + [
        (outbound_metric(g), figures.outbound_gb[g], config.outbound_gb.get(g, 0.0), "GB")
        for g in GROUPS
    ]
    for metric, used, allowance, unit in limits:
        amounts = per_day.get(metric, {})
        running, cumulative = 0.0, list[float | None]()
        for day in days:
            key = day.isoformat()
            if key in sampled:
                running += amounts.get(key, 0.0)
                cumulative.append(running)
            else:
                cumulative.append(None)
        rate = used / len(sampled) if sampled else 0.0
        figures.trends.append(
            Trend(metric, used, allowance, unit, tuple(cumulative), rate, through, len(days))
        )
        if metric.startswith("outbound_"):
            group = metric.removeprefix("outbound_")
            figures.outbound_by_day[group] = [
                amounts.get(d.isoformat()) if d.isoformat() in sampled else None for d in days
            ]
    return figures


def previous_month(month: str) -> str:
    first = date.fromisoformat(f"{month}-01")
    last = first - timedelta(days=1)
    return f"{last:%Y-%m}"
