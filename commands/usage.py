"""`/fly usage [project] [--month YYYY-MM]` and its subscriptions: the month's machine-hours,
volumes, outbound data and estimated bill against the org's free allowances, with a chart;
scheduled reports to a channel; alerts at the allowance thresholds with a forecast and,
where flybot knows one, a suggested action as a button.

The collector, the figures and the alert claims are in bot/usage/; this module words them
and posts them (through the router, to the platform each subscription lives on)."""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import TYPE_CHECKING

from bot.clock import utcnow
from bot.fly import FlyAPIError
from bot.instance import INSTANCE_ID
from bot.lazy import on_first_use
from bot.store.models import UsageSubscription
from bot.usage.config import UsageConfig
from bot.usage.regions import GROUPS, SHORT_NAMES
from commands.context import CommandContext, Services
from commands.errors import CommandError, UsageError
from commands.kinds import PROJECT, Binding, Kind
from commands.port import Attachment, Button, ChannelRef, Reply
from commands.registry import Flag, Param, command
from commands.reply import Text, markup
from commands.roles import Role

if TYPE_CHECKING:
    from bot.deploy import flytoml
    from bot.usage import alerts, collector, schedule
    from bot.usage import figures as usage_figures
else:
    flytoml = on_first_use("bot.deploy.flytoml")
    alerts = on_first_use("bot.usage.alerts")
    collector = on_first_use("bot.usage.collector")
    schedule = on_first_use("bot.usage.schedule")
    usage_figures = on_first_use("bot.usage.figures")

log = logging.getLogger(__name__)

BUTTONS = {"usage.action": "usage action"}
_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_CHANNEL = re.compile(r"^<#([A-Za-z0-9]+)(?:\|[^>]*)?>$|^#([A-Za-z0-9_.-]{1,80})$")


def _month(label: str, word: str, binding: Binding) -> str:
    match = _MONTH.match(word)
    if not match or not 1 <= int(match.group(2)) <= 12 or not int(match.group(1)) >= 2000:
        raise UsageError(f"{label} must be a month like 2026-11 (YYYY-MM), not '{word[:40]}'.")
    if word > f"{utcnow():%Y-%m}":
        raise UsageError(f"{label} {word} has not started yet.")
    return word


MONTH = Kind("month", "a month, YYYY-MM", _month)


@dataclass(frozen=True)
class Target:
    schedule: str
    channel: str | None  # a channel id or #name; None: where the command was typed

    def __str__(self) -> str:
        return self.schedule if self.channel is None else f"{self.schedule} {self.channel}"


def _target(label: str, text: str, binding: Binding) -> Target:
    words = text.split()
    channel: str | None = None
    if words and (words[-1].startswith("#") or words[-1].startswith("<#")):
        match = _CHANNEL.match(words[-1])
        if match is None:
            raise UsageError(f"'{words[-1][:80]}' is not a channel: give it as #channel.")
        if match.group(2) and binding.invocation.platform == "discord":
            raise UsageError("On Discord pick the channel from the list (#channel mention).")
        channel = match.group(1) or f"#{match.group(2)}"
        words = words[:-1]
    expr = " ".join(words)
    if not expr:
        raise UsageError("Give a schedule: daily, weekly, monthly or a cron expression.")
    try:
        schedule.trigger(expr)
    except schedule.ScheduleError as exc:
        raise UsageError(str(exc)) from None
    return Target(expr.lower() if expr.lower() in schedule.NAMED else expr, channel)


TARGET = Kind(
    "schedule",
    "daily, weekly, monthly or a cron expression (UTC), then optionally #channel",
    _target,
    word=str,
)


def _positive(label: str, word: str, binding: Binding) -> int:
    if not re.fullmatch(r"\d{1,9}", word) or int(word) < 1:
        raise UsageError(f"{label} must be a number like 3 (see `/fly usage subscriptions`).")
    return int(word)


SUB_ID = Kind("subscription", "a subscription number", _positive, value_type="integer")
ALERT_ID = Kind("alert", "an alert number", _positive, value_type="integer")


# --- the report --------------------------------------------------------------------------


def _apps_of(services: Services, project: str | None) -> set[str] | None:
    if project is None:
        return None
    return {s.app for s in services.catalog.projects[project].stages}


async def refresh(services: Services) -> collector.Collected | None:
    """Sample the days not sampled yet (claimed, so safe beside the scheduled job)."""
    if services.fly is None:
        return None
    try:
        return await collector.collect(
            services.engine, services.fly, services.settings.fly_org, INSTANCE_ID
        )
    except FlyAPIError as exc:
        log.warning("usage: collecting failed, the report uses what is stored: %s", exc)
        return None


def month_figures(
    services: Services, month: str, project: str | None = None
) -> usage_figures.MonthFigures:
    days = usage_figures.month_days(month)
    rows = collector.samples(services.engine, days[0], days[-1])
    statuses = collector.day_statuses(services.engine, days[0], days[-1])
    return usage_figures.compute_month(
        month, rows, statuses, services.catalog.usage, utcnow().date(), _apps_of(services, project)
    )


def _pct(used: float, allowance: float) -> str:
    if allowance <= 0:
        return "no allowance"
    return f"{100 * used / allowance:.0f}%"


def _day_list(days: list[str]) -> str:
    """'Nov 3, Nov 5–7'."""
    if not days:
        return ""
    parsed = [date.fromisoformat(d) for d in days]
    runs: list[tuple[date, date]] = []
    for day in parsed:
        if runs and day - runs[-1][1] == timedelta(days=1):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return ", ".join(f"{a:%b} {a.day}" if a == b else f"{a:%b} {a.day}–{b.day}" for a, b in runs)


def report_lines(
    figures: usage_figures.MonthFigures, config: UsageConfig
) -> tuple[list[str], list[str]]:
    """(lines, table) of a month's report."""
    lines: list[str] = []
    table = [f"{'machines':<26}{'running':>11}{'stopped':>11}"]
    for label in sorted(set(figures.running_hours) | set(figures.stopped_hours)):
        running = figures.running_hours.get(label, 0.0)
        stopped = figures.stopped_hours.get(label, 0.0)
        table.append(f"{label:<26}{running:>9.1f} h{stopped:>9.1f} h")
    if len(table) == 1:
        table.append("(no machines sampled)")
    free = figures.trend(usage_figures.MACHINE_HOURS)
    lines.append(
        f"Machine-hours of {config.free_size} {config.free_memory_mb} MB: {free.used:,.1f} h of "
        f"{config.machine_hours:,.0f} h free ({_pct(free.used, free.allowance)})"
    )
    volumes = figures.trend(usage_figures.VOLUME_GB_MONTHS)
    lines.append(
        f"Volumes: {volumes.used:.2f} GB-months of {config.volume_gb:g} free "
        f"({_pct(volumes.used, volumes.allowance)})"
    )
    out = []
    for group in GROUPS:
        trend = figures.trend(usage_figures.outbound_metric(group))
        out.append(
            f"{SHORT_NAMES[group]} {trend.used:.2f} GB of {trend.allowance:g} "
            f"({_pct(trend.used, trend.allowance)})"
        )
    lines.append("Outbound: " + " · ".join(out))
    if figures.unknown_regions:
        unknown = ", ".join(sorted(figures.unknown_regions))
        lines.append(f"(regions flybot does not know, counted as NA+EU: {unknown})")
    charged = [f"{name} ${value:.2f}" for name, value in figures.costs if value >= 0.005]
    total = figures.total
    waived = (
        f" — under ${config.waived_under:g}: not charged" if 0 < total < config.waived_under else ""
    )
    lines.append(
        f"Estimated bill: ${total:.2f}" + (f" ({', '.join(charged)})" if charged else "") + waived
    )
    for trend in figures.trends:
        ongoing = trend.allowance > 0 and 0 < trend.through < figures.days_in_month
        if ongoing and (trend.reaches_on() is not None or trend.percent >= 50):
            lines.append("Forecast: " + alerts.forecast_line(trend))
    sampled = figures.sampled
    past = len([d for d, s in figures.statuses.items() if s != "future"])
    lines.append(f"Days sampled: {sampled} of {past} so far")
    estimated = figures.days("estimated")
    if estimated:
        lines.append(f"Estimated (Prometheus did not answer): {_day_list(estimated)}")
    missing = figures.days("gap", "missing", "retry")
    if missing:
        lines.append(
            f"No data: {_day_list(missing)} (flybot was not running and Fly keeps metrics "
            "about 15 days)"
        )
    return lines, table


def _month_name(month: str) -> str:
    return f"{date.fromisoformat(month + '-01'):%B %Y}"


def build_report(
    services: Services, month: str, project: str | None = None, chart: bool = True
) -> Reply:
    figures = month_figures(services, month, project)
    config = services.catalog.usage
    lines, table = report_lines(figures, config)
    whose = project or f"the {services.settings.fly_org} org"
    title = f"📊 Usage of {whose}, {_month_name(month)}"
    files: tuple[Attachment, ...] = ()
    if chart:
        from bot.usage.chart import render_png

        files = (
            Attachment(
                f"usage-{project or 'org'}-{month}.png",
                render_png(figures, title.removeprefix("📊 ")),
                title=f"Usage {month}",
            ),
        )
    note = "" if project is None else "Allowances are the whole org's; figures are this project's."
    return Reply(text=note, title=title, lines=tuple(lines), code=tuple(table), files=files)


# --- verbs -------------------------------------------------------------------------------


@command(
    "usage",
    summary="The month's usage against the free allowances: machine-hours by size, volumes, "
    "outbound GB by region group, the estimated bill and a chart.",
    params=(Param("project", PROJECT, required=False, help="default: the whole org"),),
    flags=(Flag("month", MONTH, help="which month (default: this one)", metavar="YYYY-MM"),),
    role=Role.viewer,
    examples=("/fly usage", "/fly usage ping-go --month 2026-11"),
)
async def usage(ctx: CommandContext) -> None:
    month = ctx.flags.get("month") or f"{utcnow():%Y-%m}"
    await refresh(ctx.services)
    reply = await asyncio.to_thread(build_report, ctx.services, month, ctx.args.get("project"))
    await ctx.interaction.reply(reply)


def _where_to(ctx: CommandContext, target: Target) -> ChannelRef:
    inv = ctx.invocation
    return ChannelRef(inv.platform, inv.workspace_id, target.channel or inv.channel_id)


@command(
    "usage",
    "subscribe",
    summary="Post the usage report to a channel on a schedule (UTC); the channel also hears "
    "the allowance alerts.",
    params=(Param("schedule", TARGET, rest=True, help="daily, weekly, monthly or cron"),),
    flags=(Flag("project", PROJECT, help="report one project (default: the org)", metavar="P"),),
    role=Role.deployer,
    usage_text='/fly usage subscribe <daily|weekly|monthly|"cron expr"> [#channel] [--project P]',
    examples=("/fly usage subscribe weekly #ops", '/fly usage subscribe "0 8 * * mon-fri"'),
)
async def usage_subscribe(ctx: CommandContext) -> None:
    target: Target = ctx.args["schedule"]
    where = _where_to(ctx, target)
    row = await asyncio.to_thread(
        schedule.subscribe,
        ctx.engine,
        schedule=target.schedule,
        project=ctx.flags.get("project") or "",
        platform=where.platform,
        workspace_id=where.workspace_id,
        channel_id=where.channel_id,
        created_by=ctx.principal_id,
        created_by_name=ctx.invocation.display_name,
    )
    await ctx.say(
        markup(
            "Subscription #{id}: {what}; next report {next} UTC.",
            id=row.id,
            what=_describe(row),
            next=f"{row.next_at:%Y-%m-%d %H:%M}",
        ),
        tone="success",
    )
    ctx.audit_note = f"usage subscription #{row.id} ({row.schedule})"


def _describe(row: UsageSubscription) -> Text:
    """`org usage weekly to <#C123> (slack)`: the channel as the platform's own mention."""
    what = f"{row.project} usage" if row.project else "org usage"
    template = "{what} {schedule} to <#{channel}> ({platform})"
    if row.channel_id.startswith("#"):  # a #name typed on Slack: shown as typed
        template = "{what} {schedule} to {channel} ({platform})"
    return markup(
        template, what=what, schedule=row.schedule, channel=row.channel_id, platform=row.platform
    )


@command(
    "usage",
    "unsubscribe",
    summary="Stop a scheduled usage report.",
    params=(Param("id", SUB_ID),),
    role=Role.deployer,
    examples=("/fly usage unsubscribe 3",),
)
async def usage_unsubscribe(ctx: CommandContext) -> None:
    row = await asyncio.to_thread(schedule.unsubscribe, ctx.engine, ctx.args["id"])
    if row is None:
        raise CommandError(
            f"No usage subscription #{ctx.args['id']}; see `/fly usage subscriptions`."
        )
    await ctx.say(
        markup("Subscription #{id} stopped ({what}).", id=row.id, what=_describe(row)),
        tone="success",
    )
    ctx.audit_note = f"usage subscription #{row.id} stopped"


@command(
    "usage",
    "subscriptions",
    summary="List the scheduled usage reports.",
    role=Role.viewer,
    examples=("/fly usage subscriptions",),
)
async def usage_subscriptions(ctx: CommandContext) -> None:
    rows = await asyncio.to_thread(schedule.subscriptions, ctx.engine)
    lines = tuple(
        markup(
            "#{id} {what}, next {next} UTC, by {who}",
            id=r.id,
            what=_describe(r),
            next=f"{r.next_at:%Y-%m-%d %H:%M}",
            who=r.created_by_name,
        )
        for r in rows
    )
    await ctx.say(
        "" if rows else "No usage reports are scheduled. `/fly usage subscribe weekly`.",
        title="Usage subscriptions",
        lines=lines,
    )


@command(
    "usage",
    "action",
    summary="Run an alert's suggested command (its button), with your own permissions and "
    "the stage's approvals.",
    params=(Param("alert", ALERT_ID),),
    role=Role.viewer,
    examples=("/fly usage action 4",),
)
async def usage_action(ctx: CommandContext) -> None:
    from commands.dispatch import Dispatcher

    row = await asyncio.to_thread(alerts.alert_row, ctx.engine, ctx.args["alert"])
    if row is None or not row.action_line:
        raise CommandError(f"Alert #{ctx.args['alert']} has no suggested action.")
    ctx.audit_note = f"runs alert #{row.id}'s suggestion: {row.action_line}"
    invocation = replace(ctx.invocation, text=row.action_line, dedupe_key=None)
    await Dispatcher(ctx.services).handle(invocation, ctx.interaction)


# --- the scheduled jobs -------------------------------------------------------------------


async def collect_and_alert(services: Services) -> collector.Collected | None:
    """The collector's run: sample what is due, then check the thresholds."""
    collected = await refresh(services)
    await check_alerts(services)
    return collected


def _non_production(services: Services) -> dict[str, tuple[str, str, tuple[str, ...]]]:
    """Stages a suggestion may scale down (not a project's production end), with their
    process groups from fly.toml (`scale count` names each)."""
    out = {}
    for project in services.catalog.projects.values():
        for stage in project.stages[:-1]:
            try:
                groups = flytoml.load_stage_config(stage.config_file).groups
            except (flytoml.FlyTomlError, OSError):
                continue  # no suggestion for a stage whose fly.toml does not read
            out[stage.app] = (project.name, stage.name, tuple(groups))
    return out


async def _channels(services: Services) -> list[ChannelRef]:
    rows = await asyncio.to_thread(schedule.subscriptions, services.engine)
    seen: dict[tuple[str, str, str], ChannelRef] = {}
    for row in rows:
        key = (row.platform, row.workspace_id, row.channel_id)
        seen.setdefault(key, ChannelRef(*key))
    return list(seen.values())


async def check_alerts(services: Services) -> int:
    """Each allowance past a threshold this month: one alert, to every subscribed channel,
    once per month per metric and threshold across instances and restarts."""
    config = services.catalog.usage
    month = f"{utcnow():%Y-%m}"
    figures = await asyncio.to_thread(month_figures, services, month)
    sent = 0
    stages = await asyncio.to_thread(_non_production, services)
    for crossing in alerts.crossings(figures, config.thresholds):
        trend = crossing.trend
        suggestion = alerts.suggestion_for(figures, trend, stages)
        text = (
            f"⚠ {usage_figures.metric_name(trend.metric)} is at {trend.percent:.0f}% of its free "
            f"{alerts.amount(trend.allowance, trend.unit)} this month "
            f"({crossing.threshold}% threshold); {alerts.forecast_line(trend)}."
        )
        row = await asyncio.to_thread(
            alerts.claim_alert,
            services.engine,
            month,
            crossing,
            config.thresholds,
            text,
            suggestion.line if suggestion else "",
            INSTANCE_ID,
        )
        if row is None:
            continue
        sent += 1
        lines: tuple[str, ...] = ()
        buttons: tuple[Button, ...] = ()
        if suggestion is not None:
            lines = (f"Suggestion: {suggestion.text} `/fly {suggestion.line}`",)
            buttons = (
                Button(
                    suggestion.text.split(":", 1)[-1].strip().rstrip("?").capitalize()[:70],
                    "usage.action",
                    str(row.id),
                    f"usage action {row.id}",
                ),
            )
        reply = Reply(text=text, tone="warning", title="Free allowance", lines=lines,
                      buttons=buttons)  # fmt: skip
        for channel in await _channels(services):
            try:
                await services.router.post(channel, reply)
            except Exception:
                log.exception("usage alert: could not post to %s", channel)
    return sent


async def send_due_reports(services: Services) -> int:
    """Every subscription whose time has come: its report, once (claimed by moving
    `next_at` on), to its channel on its platform. A monthly report on the 1st covers the
    month just ended."""
    now = utcnow()
    rows = await asyncio.to_thread(schedule.due, services.engine, now)
    if not rows:
        return 0
    await refresh(services)
    sent = 0
    for row in rows:
        if not await asyncio.to_thread(schedule.claim_report, services.engine, row, now):
            continue
        month = f"{now:%Y-%m}"
        if row.schedule == "monthly" or now.day == 1:
            month = f"{now.date().replace(day=1) - timedelta(days=1):%Y-%m}"
        project = row.project if row.project in services.catalog.projects else None
        try:
            reply = await asyncio.to_thread(build_report, services, month, project)
            await services.router.post(
                ChannelRef(row.platform, row.workspace_id, row.channel_id), reply
            )
            sent += 1
        except Exception:
            log.exception("usage report #%s could not be posted", row.id)
    return sent
