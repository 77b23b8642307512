"""`/fly metrics <project> <stage> [--since 1h|6h|24h|7d]`: a chart of the stage's requests
per second by status class, p50/p95 response time and machines up, from Fly's Prometheus,
with the newest numbers in its caption and a link to Fly's managed Grafana for the app."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from bot.lazy import on_first_use
from commands.context import CommandContext
from commands.kinds import PROJECT, STAGE, choice
from commands.port import Attachment
from commands.registry import Flag, Param, command
from commands.roles import Role
from commands.status import fly_of

if TYPE_CHECKING:
    from bot.ops import metrics as ops
else:
    ops = on_first_use("bot.ops.metrics")

# bot/ops/metrics.py's WINDOWS, named here so the verb's spec loads without it (a test
# holds the two equal).
SINCE = choice("since", ("1h", "6h", "24h", "7d"), "a window: 1h, 6h, 24h or 7d")


@command(
    "metrics",
    summary="Chart a stage's requests/s by status, p50/p95 response time and machines up.",
    params=(Param("project", PROJECT), Param("stage", STAGE)),
    flags=(Flag("since", SINCE, help="the window (default 1h)", metavar="1h|6h|24h|7d"),),
    role=Role.viewer,
    examples=("/fly metrics ping-go prod", "/fly metrics ping-go prod --since 24h"),
)
async def metrics(ctx: CommandContext) -> None:
    project, stage_name = ctx.args["project"], ctx.args["stage"]
    stage = ctx.catalog.projects[project].stage(stage_name)
    assert stage is not None
    since = ctx.flags.get("since", "1h")
    figures = await ops.read(fly_of(ctx), stage.app, since, end=time.time())
    title = f"{project}/{stage_name} ({stage.app}), last {since}"
    link = ops.grafana_link(stage.app)
    if not figures.has_data:
        await ctx.say(
            f"Fly's Prometheus has no series for {stage.app} in the last {since}.",
            title=f"Metrics of {title}",
            fields=(("Grafana", link),),
        )
        return
    png = ops.render_png(figures, title)
    await ctx.say(
        figures.caption(),
        title=f"Metrics of {title}",
        fields=(("Grafana", link),),
        files=(Attachment(f"metrics-{stage.app}-{since}.png", png, title=title),),
    )
