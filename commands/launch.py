"""`/fly launch <project> <stage> [secret names…]`: the first step of the seed article's
`fly launch`, for a stage whose Fly app does not exist yet — create the app in the org, give
it a shared IPv4 and an IPv6 when its fly.toml has services (as flyctl's first deploy does),
set the secrets the stage lists as required (their values asked privately, never typed),
and run the first deploy: machines per process group in primary_region.

It is planned first (`--dry-run` shows the plan), needs an admin, and is guarded wherever the
stage guards `deploy`. An app that already exists is one line, and nothing changes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.deploy.images import ImageNotFound, pin, without_digest
from bot.fly import FlyAPIError, NotFoundError
from bot.lazy import on_first_use
from bot.projects import Project, Stage
from commands.context import CommandContext
from commands.deploy import start_deploy
from commands.errors import CommandError
from commands.guard import Plan
from commands.kinds import PROJECT, SECRET_NAME, STAGE
from commands.registry import Param, command
from commands.roles import Role
from commands.status import fly_of

if TYPE_CHECKING:
    from bot.deploy import flytoml
    from bot.deploy import plan as plans
    from bot.fly import FlyClient
else:
    flytoml = on_first_use("bot.deploy.flytoml")
    plans = on_first_use("bot.deploy.plan")

IP_KINDS = (("v6", "IPv6"), ("shared_v4", "shared IPv4"))  # flyctl's order


@dataclass(frozen=True)
class LaunchPlan:
    project: str
    stage: str
    app: str
    org: str
    image: str  # pinned when a look-up answered
    image_source: str
    groups: tuple[tuple[str, int, bool], ...]  # (group, machines, has services)
    region: str
    secrets: tuple[str, ...]
    stage_hash: str

    @property
    def needs_ips(self) -> bool:
        return any(services for _, _, services in self.groups)

    @property
    def fingerprint(self) -> str:
        bound = {
            "launch": [self.org, self.app, self.region],
            "image": self.image,
            "stage_config": self.stage_hash,
            "secrets": sorted(self.secrets),
        }
        return hashlib.sha256(json.dumps(bound, sort_keys=True).encode()).hexdigest()

    def lines(self) -> tuple[str, ...]:
        out = [f"Create app {self.app} in org {self.org}"]
        out.append(
            "Allocate a shared IPv4 and an IPv6 (the config has services)"
            if self.needs_ips
            else "No public IPs (no services in the config)"
        )
        if self.secrets:
            out.append(f"Set secrets {', '.join(self.secrets)} (values asked privately)")
        out.append(f"Image: {without_digest(self.image)} ({self.image_source})")
        for group, count, _ in self.groups:
            out.append(f"[{group}] create {count} in {self.region}")
        out.append(
            f"Approval binds: app, image, plan {self.fingerprint[:12]} (fly.toml, secret names)"
        )
        return tuple(out)


def _stage(ctx: CommandContext) -> tuple[Project, Stage]:
    project = ctx.catalog.projects[ctx.args["project"]]
    stage = project.stage(ctx.args["stage"])
    assert stage is not None
    return project, stage


async def _image(
    fly: FlyClient, project: Project, stage: Stage, config: flytoml.StageConfig
) -> tuple[str, str]:
    if config.build_image:
        return config.build_image, "[build] image"
    if stage.position > 0:
        previous = project.stages[stage.position - 1]
        try:
            image, _ = plans.majority_image(await plans.managed_machines(fly, previous.app))
        except NotFoundError:
            image = ""
        if image:
            return without_digest(image), f"promoted from {previous.name}"
    raise CommandError(
        f"No image for {project.name}/{stage.name}: set [build] image in "
        f"{stage.config_file.name} (or deploy {project.stage_names[0]} first); nothing was "
        "changed."
    )


async def plan_launch(ctx: CommandContext) -> Plan:
    project, stage = _stage(ctx)
    fly = fly_of(ctx)
    org = ctx.services.settings.fly_org
    try:
        config = flytoml.load_stage_config(stage.config_file)
    except flytoml.FlyTomlError as exc:
        raise CommandError(f"{exc}; nothing was changed.") from None
    if config.app != stage.app:
        raise CommandError(
            f'{stage.config_file.name} says app = "{config.app}", but {project.name}/'
            f"{stage.name} is {stage.app} in flybot's catalog; nothing was changed."
        )
    try:
        existing = await fly.get_app(stage.app)
    except NotFoundError:
        existing = None
    if existing is not None:
        raise CommandError(
            f"{stage.app} already exists on Fly, so there is nothing to launch; nothing was "
            f"changed. Deploy to it with `/fly deploy {project.name} {stage.name}`."
        )
    given = tuple(ctx.args.get("names") or ())
    wanted = stage.policy.secrets
    if set(given) != set(wanted):
        if wanted:
            raise CommandError(
                f"{project.name}/{stage.name} needs secrets {', '.join(wanted)} set at launch: "
                f"type `/fly launch {project.name} {stage.name} {' '.join(wanted)}` and give "
                "each value in the private form; nothing was changed."
            )
        raise CommandError(
            f"{project.name}/{stage.name} lists no secrets to set at launch (its `secrets` "
            f"in flybot.toml is empty), so {', '.join(given)} cannot be given here; nothing "
            "was changed. Set them with /fly secrets after the launch."
        )
    image, source = await _image(fly, project, stage, config)
    try:
        pinned = await pin(fly, stage.app, image)
    except ImageNotFound as exc:
        raise CommandError(f"{exc}; nothing was changed.") from None
    plan = LaunchPlan(
        project=project.name,
        stage=stage.name,
        app=stage.app,
        org=org,
        image=pinned.image,
        image_source=source,
        groups=tuple(
            (g, 2 if config.group_has_services(g) else 1, config.group_has_services(g))
            for g in config.groups
        ),
        region=config.primary_region or "iad",
        secrets=wanted,
        stage_hash=config.config_hash(),
    )
    return Plan(
        project.name,
        stage.name,
        f"Launch plan for {project.name}/{stage.name} ({stage.app})",
        plan.lines(),
        plan.fingerprint,
        detail=plan,
    )


def _failed(done: list[str], step: str, exc: FlyAPIError, app: str) -> CommandError:
    so_far = "; ".join(done) or "nothing was changed"
    return CommandError(
        f"Launch of {app} stopped: {step} failed ({exc.status or 'no answer'}: {exc.message}). "
        f"Done so far: {so_far}. Finish with flyctl (`fly ips allocate-v6 -a {app}`, "
        f"`fly ips allocate-v4 --shared -a {app}`, `fly deploy`), or delete the app and launch "
        "again."
    )


@command(
    "launch",
    summary="Create a new stage's Fly app: the app, shared IPv4 + IPv6, its required "
    "secrets, and the first deploy.",
    params=(
        Param("project", PROJECT),
        Param("stage", STAGE),
        Param(
            "names",
            SECRET_NAME,
            required=False,
            many=True,
            asks_value=True,
            help="the secrets the stage requires (flybot.toml `secrets`); values asked privately",
        ),
    ),
    role=Role.admin,
    planner=plan_launch,
    guarded_as="deploy",
    examples=("/fly launch ping-go staging", "/fly launch ping-go prod DATABASE_URL --dry-run"),
)
async def launch(ctx: CommandContext) -> None:
    assert ctx.plan is not None and isinstance(ctx.plan.detail, LaunchPlan)
    plan: LaunchPlan = ctx.plan.detail
    project, stage = _stage(ctx)
    fly = fly_of(ctx)
    done: list[str] = []
    try:
        await fly.create_app(plan.app, plan.org)
    except FlyAPIError as exc:
        if exc.status == 422:
            raise CommandError(
                f"{plan.app} already exists on Fly (created meanwhile); nothing was changed."
            ) from None
        raise _failed(done, "creating the app", exc, plan.app) from None
    done.append(f"app {plan.app} created in {plan.org}")
    if plan.needs_ips:
        for kind, label in IP_KINDS:
            try:
                ip = await fly.assign_ip(plan.app, kind, org=plan.org)
            except FlyAPIError as exc:
                raise _failed(done, f"allocating the {label}", exc, plan.app) from None
            done.append(f"{label} {ip.ip}")
    else:
        done.append("No public IPs (no services in the config)")
    if plan.secrets:
        try:
            await fly.set_secrets(plan.app, {name: ctx.secrets[name] for name in plan.secrets})
        except FlyAPIError as exc:
            raise _failed(done, "setting the secrets", exc, plan.app) from None
        done.append(f"secrets {', '.join(plan.secrets)} set")
    try:
        deploy_plan = await plans.make_plan(fly, project, stage, image=plan.image)
    except (plans.PlanError, FlyAPIError) as exc:
        raise CommandError(
            f"Launch of {plan.app}: {'; '.join(done)}; the first deploy could not be planned: "
            f"{exc}. Run `/fly deploy {project.name} {stage.name}` to finish."
        ) from None
    await ctx.say(
        f"✓ {plan.app} launched: the first deploy follows in its thread.",
        tone="success",
        title=f"Launch of {project.name}/{stage.name}",
        lines=tuple(f"✓ {step}" for step in done),
    )
    release = await start_deploy(ctx, deploy_plan, kind="launch")
    ctx.audit_note = f"app {plan.app} created; first deploy v{release.version}"
