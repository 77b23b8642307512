"""`/fly deploy`, `/fly releases`, `/fly rollback`: roll images out, in a thread that tells
the team what is happening while it happens."""

from __future__ import annotations

import json
import time

from sqlmodel import col, select

from bot.clock import utcnow
from bot.deploy.engine import DeployBusy, Deployer
from bot.deploy.plan import DeployPlan, PlanError, make_plan
from bot.durations import format_elapsed
from bot.freeze import active_freeze
from bot.store import locks
from bot.store.engine import session_scope
from bot.store.models import Release
from commands.approvals import require_approval
from commands.context import CommandContext
from commands.errors import CommandError
from commands.port import Conversation, MessageRef, Reply, Tone
from commands.registry import Flag, Param, Registry
from commands.roles import Role

STEP_BATCH = 8  # thread lines per message: a 30-machine deploy posts a handful, not a hundred
POST_EVERY = 5.0  # at a batch's end, lines are posted if the last post is this old (seconds)
PROGRESS_EVERY = 2.0  # seconds between edits of the parent message


class ThreadReporter:
    """Turns the engine's steps into one parent message edited in place plus batched replies."""

    def __init__(
        self,
        conversation: Conversation,
        thread: MessageRef,
        title: str,
        plan_lines: tuple[str, ...],
    ) -> None:
        self.conversation = conversation
        self.thread = thread
        self.title = title
        self.plan_lines = plan_lines
        self.buffer: list[str] = []
        self.worst = "info"
        self._last_progress = 0.0
        self._last_post = time.monotonic()

    async def step(self, text: str, tone: str = "info") -> None:
        self.buffer.append(text)
        if tone == "error":
            self.worst = "error"
        if len(self.buffer) >= STEP_BATCH:
            await self.flush(final=True)

    async def flush(self, final: bool = False) -> None:
        recent = time.monotonic() - self._last_post < POST_EVERY
        if not self.buffer or (recent and not final):
            return
        lines, self.buffer = tuple(self.buffer), []
        self._last_post = time.monotonic()
        tone: Tone = "error" if any(line.startswith("✗") for line in lines) else "info"
        await self.conversation.post_in_thread(self.thread, Reply(text="", lines=lines, tone=tone))

    async def progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last_progress < PROGRESS_EVERY:
            return
        self._last_progress = now
        await self.conversation.update(
            self.thread,
            Reply(text=f"deploying {done}/{total}", title=self.title, lines=self.plan_lines),
        )

    async def finished(self, release: Release) -> None:
        took = ""
        if release.started_at and release.finished_at:
            seconds = (release.finished_at - release.started_at).total_seconds()
            took = f" in {format_elapsed(seconds)}"
        state = release.state.replace("_", " ")
        tone: Tone = "success" if release.state == "succeeded" else "error"
        text = f"{state}{took}" + (f": {release.error}" if release.error else "")
        await self.conversation.update(
            self.thread, Reply(text=text, title=self.title, tone=tone, lines=self.plan_lines)
        )


def deployer_of(ctx: CommandContext) -> Deployer:
    if ctx.services.deployer is None:
        raise CommandError("flybot has no Fly API token: set FLY_API_TOKEN and restart it.")
    return ctx.services.deployer


def refuse_if_held(ctx: CommandContext, project: str, stage: str) -> None:
    """Locks and freeze windows refuse a deploy, saying why."""
    held = locks.current_lock(ctx.engine, project, stage)
    if held is not None and held.owner_id != ctx.principal_id:
        reason = f": {held.reason}" if held.reason else ""
        raise CommandError(
            f"{project}/{stage} is locked by {held.owner_name} until "
            f"{held.expires_at:%H:%M} UTC{reason}."
        )
    stage_entry = ctx.catalog.projects[project].stage(stage)
    assert stage_entry is not None
    window = active_freeze(stage_entry.policy.freeze, utcnow())
    if window is not None:
        raise CommandError(f"{project}/{stage} is frozen now ({window}); no deploys until it ends.")


async def start_deploy(
    ctx: CommandContext, plan: DeployPlan, kind: str = "deploy", approvers: str = ""
) -> Release:
    """Claim the app, open the thread, and run the roll-out as a background job."""
    deployer = deployer_of(ctx)
    try:
        release = deployer.claim(
            plan,
            requested_by=ctx.principal_id,
            requester_name=ctx.invocation.display_name,
            kind=kind,
            approvers=approvers,
            platform=ctx.invocation.platform,
            channel_id=ctx.invocation.channel_id,
        )
    except DeployBusy as exc:
        raise CommandError(str(exc)) from None
    title = (
        f"🚀 {plan.project}/{plan.stage} v{release.version} by "
        f"{ctx.invocation.display_name}"
        + (" (rollback)" if kind == "rollback" else "")
        + (f", approved by {approvers}" if approvers else "")
    )
    lines = tuple(plan.summary_lines())
    if ctx.thread is not None:  # an approved request: report in its thread
        thread = ctx.thread
        await ctx.conversation.update(thread, Reply(text="queued", title=title, lines=lines))
    else:
        thread = await ctx.conversation.start_thread(Reply(text="queued", title=title, lines=lines))
    deployer.attach_thread(
        release.id or 0, thread.thread_id or thread.message_id, thread.message_id
    )
    reporter = ThreadReporter(ctx.conversation, thread, title, lines)

    async def job() -> None:
        finished = await deployer.run(release.id or 0, plan, reporter)
        await reporter.finished(finished)

    ctx.services.jobs.spawn(job(), name=f"deploy {plan.app} v{release.version}")
    return release


async def roll_out(
    ctx: CommandContext, plan: DeployPlan, verb: str, plan_title: str, headline: str = ""
) -> Release | None:
    """The common tail of deploy and rollback: a dry run shows the plan; otherwise locks and
    freezes are checked, the stage's policy may turn it into an approval request, and the
    roll-out starts. None for a dry run."""
    summary = ([headline] if headline else []) + plan.summary_lines()
    if ctx.flags.get("dry-run"):
        await ctx.say("Dry run: nothing was changed.", title=plan_title, lines=tuple(summary))
        return None
    refuse_if_held(ctx, plan.project, plan.stage)
    approved = await require_approval(
        ctx, verb, plan.project, plan.stage, plan.fingerprint, summary
    )
    approvers = ", ".join(approved.approvers) if approved else ""
    return await start_deploy(ctx, plan, kind=verb, approvers=approvers)


def register(registry: Registry) -> None:
    @registry.command(
        "deploy",
        summary="Roll an image out to a stage (default: [build] image, or promote the previous "
        "stage's image).",
        params=(
            Param("project", "project"),
            Param("stage", "stage"),
            Param("image", required=False, help="e.g. registry.fly.io/ping-go:v3"),
        ),
        flags=(
            Flag("strategy", help="rolling, immediate, canary or bluegreen", metavar="S"),
            Flag("dry-run", "switch", help="show the plan and change nothing"),
        ),
        role=Role.deployer,
        guardable=True,
        examples=(
            "/fly deploy ping-go dev registry.fly.io/ping-go:v3",
            "/fly deploy ping-go prod --dry-run",
        ),
    )
    async def deploy(ctx: CommandContext) -> None:
        project, stage = ctx.args["project"], ctx.args["stage"]
        entry = ctx.catalog.projects[project]
        stage_entry = entry.stage(stage)
        assert stage_entry is not None
        deployer = deployer_of(ctx)
        try:
            plan = await make_plan(
                deployer.fly,
                entry,
                stage_entry,
                image=ctx.args.get("image"),
                strategy=ctx.flags.get("strategy"),
            )
        except PlanError as exc:
            raise CommandError(str(exc)) from None
        release = await roll_out(ctx, plan, "deploy", f"Plan for {project}/{stage} ({plan.app})")
        if release is not None:
            ctx.audit_note = f"release v{release.version} of {plan.image}"

    @registry.command(
        "releases",
        summary="List a stage's releases: version, image, who, outcome.",
        params=(Param("project", "project"), Param("stage", "stage")),
        flags=(Flag("limit", "int", help="how many (default 10)", metavar="N"),),
        role=Role.viewer,
    )
    async def releases(ctx: CommandContext) -> None:
        project, stage = ctx.args["project"], ctx.args["stage"]
        limit = max(1, min(ctx.flags.get("limit", 10), 100))
        with session_scope(ctx.engine) as session:
            rows = list(
                session.exec(
                    select(Release)
                    .where(Release.project == project, Release.stage == stage)
                    .order_by(col(Release.version).desc())
                    .limit(limit)
                )
            )
        lines = tuple(
            f"v{r.version}  {r.state:<11} {r.image}  {r.strategy}  by {r.requester_name}"
            + (f", approved by {r.approvers}" if r.approvers else "")
            + f"  {r.created_at:%Y-%m-%d %H:%M}"
            + (f"  ({r.kind})" if r.kind != "deploy" else "")
            for r in rows
        )
        await ctx.say(
            "" if lines else "No releases yet.", title=f"Releases of {project}/{stage}", lines=lines
        )

    @registry.command(
        "rollback",
        summary="Deploy an earlier release's image and config again (default: the one before "
        "the current).",
        params=(
            Param("project", "project"),
            Param("stage", "stage"),
            Param("version", "int", required=False),
        ),
        flags=(Flag("dry-run", "switch", help="show the plan and change nothing"),),
        role=Role.deployer,
        guardable=True,
        examples=("/fly rollback ping-go prod", "/fly rollback ping-go prod 4"),
    )
    async def rollback(ctx: CommandContext) -> None:
        project, stage = ctx.args["project"], ctx.args["stage"]
        entry = ctx.catalog.projects[project]
        stage_entry = entry.stage(stage)
        assert stage_entry is not None
        deployer = deployer_of(ctx)
        target = _rollback_target(ctx, project, stage, ctx.args.get("version"))
        if not await image_exists(deployer, stage_entry.app, target.image):
            raise CommandError(
                f"v{target.version}'s image {target.image} no longer exists on "
                "Fly (pruned?); pick another version with /fly releases."
            )
        try:
            plan = await make_plan(
                deployer.fly,
                entry,
                stage_entry,
                image=target.image,
                strategy=target.strategy,
                configs=json.loads(target.config_json or "{}"),
            )
        except PlanError as exc:
            raise CommandError(str(exc)) from None
        title = f"Rollback plan for {project}/{stage} to v{target.version}"
        release = await roll_out(ctx, plan, "rollback", title, f"Roll back to v{target.version}")
        if release is not None:
            ctx.audit_note = f"rollback to v{target.version} as v{release.version}"


def _rollback_target(ctx: CommandContext, project: str, stage: str, version: int | None) -> Release:
    with session_scope(ctx.engine) as session:
        query = select(Release).where(
            Release.project == project, Release.stage == stage, Release.state == "succeeded"
        )
        succeeded = list(session.exec(query.order_by(col(Release.version).desc())))
    if version is not None:
        found = next((r for r in succeeded if r.version == version), None)
        if found is None:
            known = ", ".join(f"v{r.version}" for r in succeeded[:10]) or "none"
            raise CommandError(
                f"No succeeded release v{version} of {project}/{stage}. "
                f"Succeeded releases: {known}."
            )
        return found
    if len(succeeded) < 2:
        raise CommandError(f"{project}/{stage} has no earlier succeeded release to roll back to.")
    return succeeded[1]


_IMAGE_QUERY = (
    "query ($app: String!, $ref: String!) { app(name: $app) { image(ref: $ref) { digest } } }"
)


async def image_exists(deployer: Deployer, app: str, image: str) -> bool:
    data = await deployer.fly.graphql(_IMAGE_QUERY, {"app": app, "ref": image})
    return bool(((data.get("app") or {}).get("image") or {}).get("digest"))
