"""Threshold alerts: each allowance's percentage against the configured thresholds, each
threshold at most once per month per metric (the unique key of `usage_alert`: the insert is
the claim), with the forecast from the month's trend and a suggested action where one
exists."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from bot.store.engine import session_scope
from bot.store.models import UsageAlert
from bot.usage.figures import MACHINE_HOURS, MonthFigures, Trend, metric_name


def ordinal(day: int) -> str:
    suffix = "th" if 10 <= day % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def amount(value: float, unit: str) -> str:
    if unit == "h":
        return f"{value:,.0f} h"
    if unit == "GB-months":
        return f"{value:.2f} GB-months"
    return f"{value:.1f} {unit}" if value < 100 else f"{value:,.0f} {unit}"


def forecast_line(trend: Trend) -> str:
    """ "at this rate outbound Asia-Pacific reaches 30 GB on the 23rd"."""
    name = metric_name(trend.metric)
    limit = amount(trend.allowance, trend.unit).replace(".0 ", " ")
    if trend.through == 0:
        return f"{name}: nothing sampled yet this month"
    if trend.used >= trend.allowance > 0:
        day = trend.reaches_on()
        return f"{name} reached its {limit} on the {ordinal(day or 1)}"
    day = trend.reaches_on()
    if day is None:
        return (
            f"at this rate {name} stays under {limit}: about "
            f"{amount(trend.projected, trend.unit)} by the {ordinal(trend.days_in_month)}"
        )
    return f"at this rate {name} reaches {limit} on the {ordinal(day)}"


@dataclass(frozen=True)
class Suggestion:
    text: str
    line: str  # the command it runs, as typed


def suggestion_for(
    figures: MonthFigures, trend: Trend, stages: dict[str, tuple[str, str, tuple[str, ...]]]
) -> Suggestion | None:
    """Where flybot knows an action: machine-hours run high and a non-production stage runs
    machines all month → scale it to 0 (a `/fly scale count` plan, through the normal
    permissions and approvals). `stages` maps an app to its (project, stage, process groups)
    for the stages that are not their project's production end."""
    if trend.metric != MACHINE_HOURS:
        return None
    candidates = [
        (running, app)
        for app, running in figures.apps_running.items()
        if app in stages and running >= 0.95
    ]
    if not candidates:
        return None
    running, app = max(candidates)
    project, stage, groups = stages[app]
    count = round(running)
    machines = "1 machine" if count == 1 else f"{count} machines"
    zero = " ".join(f"{group}=0" for group in groups or ("app",))
    return Suggestion(
        f"{project}/{stage} has run {machines} all month: scale {stage} to 0 at night?",
        f"scale count {project} {stage} {zero}",
    )


@dataclass(frozen=True)
class Crossing:
    trend: Trend
    threshold: int


def crossings(figures: MonthFigures, thresholds: tuple[int, ...]) -> list[Crossing]:
    """The highest threshold each allowance has reached (a jump from 70% to 105% alerts at
    100% only; the 80% one is recorded as passed)."""
    out = []
    for trend in figures.trends:
        if trend.allowance <= 0 or trend.through == 0:
            continue
        reached = [t for t in thresholds if trend.percent >= t]
        if reached:
            out.append(Crossing(trend, max(reached)))
    return out


def claim_alert(
    engine: Engine,
    month: str,
    crossing: Crossing,
    thresholds: tuple[int, ...],
    message: str,
    action_line: str,
    by: str,
) -> UsageAlert | None:
    """The alert's row, for exactly one caller; None when this threshold (or a higher one)
    was already sent this month. Lower thresholds passed on the way are recorded as sent."""
    metric = crossing.trend.metric
    with session_scope(engine) as session:
        sent = {
            a.threshold
            for a in session.exec(
                select(UsageAlert).where(
                    col(UsageAlert.month) == month, col(UsageAlert.metric) == metric
                )
            )
        }
    if any(t >= crossing.threshold for t in sent):
        return None
    try:
        with session_scope(engine) as session:
            row = UsageAlert(
                month=month,
                metric=metric,
                threshold=crossing.threshold,
                percent=crossing.trend.percent,
                message=message[:500],
                action_line=action_line[:300],
                sent_by=by,
            )
            session.add(row)
            for lower in thresholds:
                if lower < crossing.threshold and lower not in sent:
                    session.add(
                        UsageAlert(
                            month=month,
                            metric=metric,
                            threshold=lower,
                            message="(passed)",
                            sent_by=by,
                        )
                    )
            session.flush()
            session.expunge(row)
            return row
    except IntegrityError:
        return None  # another instance sent it first


def alert_row(engine: Engine, alert_id: int) -> UsageAlert | None:
    with session_scope(engine) as session:
        row = session.get(UsageAlert, alert_id)
        if row is not None:
            session.expunge(row)
        return row
