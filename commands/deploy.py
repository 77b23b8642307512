"""`/fly deploy`, `/fly releases`, `/fly rollback`: roll images out, in a thread that tells
the team what is happening while it happens.

Deploy and rollback are guardable: each declares a planner (the deploy plan, with its
fingerprint), and the pipeline's guard does the dry run, locks, freezes and approvals
before the handler starts the roll-out."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable
from dataclasses import replace
from typing import TYPE_CHECKING

from sqlmodel import col, select

from bot.deploy.images import exists as image_exists
from bot.deploy.images import pinned, without_digest
from bot.durations import format_elapsed
from bot.store.engine import session_scope
from bot.store.models import Release
from commands.context import CommandContext
from commands.errors import CommandError
from commands.guard import Plan
from commands.kinds import IMAGE, INT, PROJECT, STAGE, STRATEGY, VERSION
from commands.port import MessageRef, Outbox, Reply, Tone
from commands.registry import Flag, Param, command
from commands.reply import markup
from commands.roles import Role

if TYPE_CHECKING:
    from bot.deploy.engine import Deployer
    from bot.deploy.plan import DeployPlan

log = logging.getLogger(__name__)

STEP_BATCH = 8  # thread lines per message: a 30-machine deploy posts a handful, not a hundred
POST_EVERY = 5.0  # at a batch's end, lines are posted if the last post is this old (seconds)
PROGRESS_EVERY = 2.0  # seconds between edits of the parent message
STATUS_EVERY = 3.0  # seconds between edits that say what a machine is waiting on
FINAL_TRIES = 4  # the last post and edit of a deploy are tried this often, a chat error apart
RETRY_PAUSE = 0.5  # seconds, times the attempt number


class ThreadReporter:
    """Turns the engine's steps into one parent message edited in place plus batched replies.

    It posts through the outbox (the router), so progress reaches the thread on its own
    platform whoever started the deploy; a chat failure is logged and never stops a deploy.
    """

    def __init__(
        self,
        outbox: Outbox,
        thread: MessageRef,
        title: str,
        plan_lines: tuple[str, ...],
        doing: str = "deploying",
    ) -> None:
        self.outbox = outbox
        self.doing = doing
        self.thread = thread
        self.title = title
        self.plan_lines = plan_lines
        self.buffer: list[str] = []
        self.worst = "info"
        self._last_progress = 0.0
        self._last_status = 0.0
        self._last_post = time.monotonic()
        self._done, self._total = 0, 0

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
        for attempt in range(FINAL_TRIES if final else 1):
            if attempt:
                await asyncio.sleep(RETRY_PAUSE * attempt)
            lines = tuple(self.buffer)
            self._last_post = time.monotonic()
            tone: Tone = "error" if any(line.startswith("✗") for line in lines) else "info"
            posting = self.outbox.post_in_thread(
                self.thread, Reply(text="", lines=lines, tone=tone)
            )
            if await self._say(posting):
                del self.buffer[: len(lines)]
                return
        # Kept: the next flush posts them with whatever came since.

    async def logs(self, head: str, lines: tuple[str, ...]) -> None:
        """A failing machine's log lines: the steps before them first, then one block of
        their own (cut from the top to fit the platform)."""
        await self.flush(final=True)
        reply = Reply(text=head, code=lines, code_tail=True, tone="error")
        for attempt in range(FINAL_TRIES):
            if attempt:
                await asyncio.sleep(RETRY_PAUSE * attempt)
            if await self._say(self.outbox.post_in_thread(self.thread, reply)):
                return

    async def progress(self, done: int, total: int) -> None:
        self._done, self._total = done, total
        now = time.monotonic()
        if done < total and now - self._last_progress < PROGRESS_EVERY:
            return
        self._last_progress = now
        await self._say(
            self.outbox.update(
                self.thread,
                Reply(text=f"{self.doing} {done}/{total}", title=self.title, lines=self.plan_lines),
            )
        )

    async def status(self, text: str) -> None:
        """What the deploy waits on now ("web 1/2: checks critical for 40s: HTTP 500 on
        /healthz"), shown on the parent message: at most one edit every STATUS_EVERY."""
        now = time.monotonic()
        if now - max(self._last_status, self._last_progress) < STATUS_EVERY:
            return
        self._last_status = now
        await self._say(
            self.outbox.update(
                self.thread,
                Reply(
                    text=f"{self.doing} {self._done}/{self._total} — {text}",
                    title=self.title,
                    lines=self.plan_lines,
                ),
            )
        )

    async def finished(self, release: Release) -> None:
        took = ""
        if release.started_at and release.finished_at:
            seconds = (release.finished_at - release.started_at).total_seconds()
            took = f" in {format_elapsed(seconds)}"
        state = release.state.replace("_", " ")
        tone: Tone = "success" if release.state == "succeeded" else "error"
        text = f"{state}{took}" + (f": {release.error}" if release.error else "")
        reply = Reply(text=text, title=self.title, tone=tone, lines=self.plan_lines)
        for attempt in range(FINAL_TRIES):
            if attempt:
                await asyncio.sleep(RETRY_PAUSE * attempt)
            if await self._say(self.outbox.update(self.thread, reply)):
                return

    async def _say(self, posting: Awaitable[object]) -> bool:
        try:
            await posting
        except Exception:
            log.exception("deploy thread %s: a post failed", self.thread.message_id)
            return False
        return True


def deployer_of(ctx: CommandContext) -> Deployer:
    if ctx.services.deployer is None:
        raise CommandError("flybot has no Fly API token: set FLY_API_TOKEN and restart it.")
    return ctx.services.deployer


def deploy_plan_of(ctx: CommandContext) -> DeployPlan:
    from bot.deploy.plan import DeployPlan

    assert ctx.plan is not None and isinstance(ctx.plan.detail, DeployPlan)
    return ctx.plan.detail


async def start_deploy(ctx: CommandContext, plan: DeployPlan, kind: str = "deploy") -> Release:
    """Claim the app, open the thread, and run the roll-out as a background job."""
    from bot.deploy.engine import DeployBusy
    from bot.ops import secrets as secrets_ops

    deployer = deployer_of(ctx)
    approvers = ctx.approvers
    if plan.min_secrets_version is None:
        # As flyctl: every machine a deploy touches gets at least the newest secrets version
        # flybot set, so secrets staged with --stage ride along with the next deploy.
        newest = await asyncio.to_thread(secrets_ops.latest_version, ctx.engine, plan.app)
        plan = replace(plan, min_secrets_version=newest)
    try:
        release = deployer.claim(
            plan,
            requested_by=ctx.principal_id,
            requester_name=ctx.invocation.display_name,
            kind=kind,
            approvers=approvers,
            platform=ctx.invocation.platform,
            workspace_id=ctx.invocation.workspace_id,
            channel_id=ctx.invocation.channel_id,
        )
    except DeployBusy as exc:
        raise CommandError(str(exc)) from None
    # The claim and the job's start are one unit: whatever fails between them (the thread
    # cannot be opened, the chat API is down) fails the queued release at once, so it never
    # blocks the app's next deploy.
    try:
        title = markup(
            "{icon} {where} {scale}v{version} by {who}{rollback}{approved}",
            icon="📏" if kind == "scale" else "🚀",
            where=f"{plan.project}/{plan.stage}",
            scale="scale " if kind == "scale" else "",
            version=release.version,
            who=ctx.invocation.display_name,
            rollback={
                "rollback": " (rollback)",
                "secrets": " (secrets restart)",
                "restart": " (restart)",
                "launch": " (launch)",
            }.get(kind, ""),
            approved=f", approved by {approvers}" if approvers else "",
        )
        lines = tuple(plan.summary_lines())
        thread = await ctx.open_thread(Reply(text="queued", title=title, lines=lines))
        deployer.attach_thread(
            release.id or 0, thread.thread_id or thread.message_id, thread.message_id
        )
        doing = "scaling" if kind == "scale" else "deploying"
        reporter = ThreadReporter(ctx.outbox, thread, title, lines, doing)

        async def job() -> None:
            try:
                finished = await deployer.run(release.id or 0, plan, reporter)
            except asyncio.CancelledError:  # shutdown ran out of time: the row says how
                await reporter.finished(await asyncio.to_thread(deployer.get, release.id or 0))
                raise
            await reporter.finished(finished)

        ctx.services.jobs.spawn(job(), name=f"deploy {plan.app} v{release.version}")
    except BaseException as exc:
        deployer.abandon(release.id or 0, f"could not be started: {type(exc).__name__}: {exc}")
        raise
    return release


def _plan(plan: DeployPlan, title: str, headline: str = "") -> Plan:
    lines = ([headline] if headline else []) + plan.summary_lines()
    return Plan(plan.project, plan.stage, title, tuple(lines), plan.fingerprint, detail=plan)


async def plan_deploy(ctx: CommandContext) -> Plan:
    from bot.deploy.plan import PlanError, make_plan

    project, stage = ctx.args["project"], ctx.args["stage"]
    entry = ctx.catalog.projects[project]
    stage_entry = entry.stage(stage)
    assert stage_entry is not None
    try:
        plan = await make_plan(
            deployer_of(ctx).fly,
            entry,
            stage_entry,
            image=ctx.args.get("image"),
            strategy=ctx.flags.get("strategy"),
        )
    except PlanError as exc:
        raise CommandError(str(exc)) from None
    return _plan(plan, f"Plan for {project}/{stage} ({plan.app})")


@command(
    "deploy",
    summary="Roll an image out to a stage (default: [build] image, or promote the previous "
    "stage's image).",
    params=(
        Param("project", PROJECT),
        Param("stage", STAGE),
        Param("image", IMAGE, required=False, help="e.g. registry.fly.io/ping-go:v3"),
    ),
    flags=(
        Flag("strategy", STRATEGY, help="rolling, immediate, canary or bluegreen", metavar="S"),
    ),
    role=Role.deployer,
    planner=plan_deploy,
    examples=(
        "/fly deploy ping-go dev registry.fly.io/ping-go:v3",
        "/fly deploy ping-go prod --dry-run",
    ),
)
async def deploy(ctx: CommandContext) -> None:
    plan = deploy_plan_of(ctx)
    release = await start_deploy(ctx, plan, kind="deploy")
    ctx.audit_note = f"release v{release.version} of {plan.image}"  # the pinned reference


@command(
    "releases",
    summary="List a stage's releases: version, image, who, outcome.",
    params=(Param("project", PROJECT), Param("stage", STAGE)),
    flags=(Flag("limit", INT, help="how many (default 10)", metavar="N"),),
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
        f"v{r.version}  {r.state:<11} {without_digest(r.image)}  {r.strategy}  "
        f"by {r.requester_name}"
        + (f", approved by {r.approvers}" if r.approvers else "")
        + f"  {r.created_at:%Y-%m-%d %H:%M}"
        + (f"  ({r.kind})" if r.kind != "deploy" else "")
        for r in rows
    )
    await ctx.say(
        "" if lines else "No releases yet.", title=f"Releases of {project}/{stage}", lines=lines
    )


async def plan_rollback(ctx: CommandContext) -> Plan:
    from bot.deploy.plan import PlanError, make_plan

    project, stage = ctx.args["project"], ctx.args["stage"]
    entry = ctx.catalog.projects[project]
    stage_entry = entry.stage(stage)
    assert stage_entry is not None
    deployer = deployer_of(ctx)
    target = _rollback_target(ctx, project, stage, ctx.args.get("version"))
    exact = pinned(target.image, target.image_digest) if target.image_digest else target.image
    found = await image_exists(deployer.fly, stage_entry.app, exact)
    if found is False:
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
            image_digest=target.image_digest,
            strategy=target.strategy,
            configs=json.loads(target.config_json or "{}"),
            verb="rollback",
        )
    except PlanError as exc:
        raise CommandError(str(exc)) from None
    if found is None:
        # The release table holds the image and its digest: a look-up that cannot answer
        # is no reason to refuse, only to say so.
        plan = replace(
            plan,
            notes=(
                *plan.notes,
                f"⚠ Could not check that {without_digest(exact)} still exists (Fly's image "
                "look-up and the registry did not answer); rolling back to the digest "
                f"v{target.version} ran.",
            ),
        )
    title = f"Rollback plan for {project}/{stage} to v{target.version}"
    return _plan(plan, title, f"Roll back to v{target.version}")


@command(
    "rollback",
    summary="Deploy an earlier release's image and config again (default: the one before "
    "the current).",
    params=(
        Param("project", PROJECT),
        Param("stage", STAGE),
        Param("version", VERSION, required=False),
    ),
    role=Role.deployer,
    planner=plan_rollback,
    examples=("/fly rollback ping-go prod", "/fly rollback ping-go prod 4"),
)
async def rollback(ctx: CommandContext) -> None:
    plan = deploy_plan_of(ctx)
    release = await start_deploy(ctx, plan, kind="rollback")
    assert ctx.plan is not None
    headline = ctx.plan.lines[0]  # "Roll back to v4"
    ctx.audit_note = f"rollback to {headline.rsplit(' ', 1)[-1]} as v{release.version}"


def _rollback_target(ctx: CommandContext, project: str, stage: str, version: int | None) -> Release:
    with session_scope(ctx.engine) as session:
        query = select(Release).where(
            Release.project == project,
            Release.stage == stage,
            Release.state == "succeeded",
            Release.kind != "scale",  # a scale is no release to roll back to
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
