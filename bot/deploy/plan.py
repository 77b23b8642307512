"""What a deploy will do, worked out before anything changes (and shown as the dry run).

Which image: the one given; else `[build] image`; else the image the previous stage runs
(promotion, dev → prod); else the image the stage already runs (a config-only redeploy).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from bot.deploy.flytoml import StageConfig, load_stage_config
from bot.deploy.images import ImageNotFound, pin, without_digest
from bot.fly import FlyClient, Machine
from bot.projects import Project, Stage

PLATFORM_VERSION_KEY = "fly_platform_version"
GROUP_KEY = "fly_process_group"
# Plans that update each machine with its own config (a restart): `/fly secrets` hands new
# secrets out with one, `/fly restart` is one.
RESTART_KINDS = ("secrets", "restart")
STRATEGIES = ("rolling", "immediate", "canary", "bluegreen")


class PlanError(Exception):
    """The deploy cannot be planned (no image anywhere, bad strategy, …)."""


@dataclass(frozen=True)
class GroupPlan:
    group: str
    config: dict[str, Any]  # the new machine config, before release metadata is added
    update: tuple[Machine, ...] = ()
    create_regions: tuple[str, ...] = ()  # new machines, when the group has none yet
    env_added: tuple[str, ...] = ()
    env_changed: tuple[str, ...] = ()
    env_removed: tuple[str, ...] = ()
    guest_change: str = ""
    # Scale plans (DeployPlan.kind "scale") only:
    remove: tuple[Machine, ...] = ()  # machines destroyed, in this order
    create_volumes: tuple[str, ...] = ()  # per create_regions entry, the volume it mounts
    guest: dict[str, Any] | None = None  # `update` machines keep their config, with this guest
    # A restart (kind "secrets"): each machine is updated with its own current config, not
    # the group's one (machines of a group can differ: a volume each, a size mid-change).
    machine_configs: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def has_checks(self) -> bool:
        services = self.config.get("services") or []
        return bool(self.config.get("checks")) or any(s.get("checks") for s in services)


@dataclass(frozen=True)
class DeployPlan:
    project: str
    stage: str
    app: str
    image: str
    image_source: str  # "given", "[build] image", "promoted from dev", "current"
    image_digest: str  # "" only when no look-up answered on a stage that allows that
    previous_image: str
    strategy: str
    max_unavailable: float
    wait_timeout: timedelta
    release_command: str | None
    primary_region: str
    groups: tuple[GroupPlan, ...]
    destroy: tuple[Machine, ...] = ()  # machines of process groups gone from fly.toml
    config_hash: str = ""
    rollback_on_failure: bool = True
    notes: tuple[str, ...] = field(default=())
    digest_source: str = ""  # where the digest came from (Fly's image look-up, …)
    stage_hash: str = ""  # StageConfig.config_hash(): fly.toml's effect, [deploy] included
    fail_fast: bool = False
    # deploy | rollback | secrets (a restart: same image, same config) | scale (machines
    # added, removed or resized; no new release)
    kind: str = "deploy"
    scale_lines: tuple[str, ...] = ()  # a scale plan's own summary
    # Sent as min_secrets_version on every machine update and create, so the machines get
    # at least that secrets version (Fly hands secrets out only then).
    min_secrets_version: int | None = None
    headline: tuple[str, ...] = ()  # lines the plan opens with (a secrets restart: the names)

    @property
    def image_name(self) -> str:
        """The image as people read it: the tag, without the digest it is pinned to."""
        return without_digest(self.image)

    @property
    def bound(self) -> dict[str, Any]:
        """Everything that changes what runs, which an approval is bound to: the pinned image,
        every group's machine config, and how the roll-out goes ([deploy] and the policy)."""
        return {
            "image": self.image,
            "digest": self.image_digest,
            "configs": self.config_hash,
            "deploy": {
                "strategy": self.strategy,
                "max_unavailable": self.max_unavailable,
                "wait_timeout": self.wait_timeout.total_seconds(),
                "release_command": self.release_command,
                "fail_fast": self.fail_fast,
            },
            "stage_config": self.stage_hash,
            "destroy": sorted(m.id for m in self.destroy),
            "create": {g.group: list(g.create_regions) for g in self.groups if g.create_regions},
            "rollback_on_failure": self.rollback_on_failure,
            **(
                {"kind": self.kind, "min_secrets_version": self.min_secrets_version}
                if self.kind in RESTART_KINDS
                else {}
            ),
        } | (self._scale_targets() if self.kind == "scale" else {})

    def _scale_targets(self) -> dict[str, Any]:
        """What a scale changes, machine by machine: an approval names exactly these."""
        return {
            "kind": self.kind,
            "targets": {
                g.group: {
                    "update": sorted(m.id for m in g.update),
                    "guest": g.guest,
                    "create": list(g.create_regions),
                    "volumes": list(g.create_volumes),
                    "remove": [m.id for m in g.remove],
                }
                for g in self.groups
            },
        }

    @property
    def fingerprint(self) -> str:
        text = json.dumps(self.bound, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    @property
    def machine_count(self) -> int:
        return sum(len(g.update) + len(g.create_regions) + len(g.remove) for g in self.groups)

    def summary_lines(self) -> list[str]:
        if self.kind == "scale":
            return [
                *self.scale_lines,
                *self.notes,
                f"Approval binds: plan {self.fingerprint[:12]} (the machines changed, the "
                "regions and volumes of new ones, the size); any change voids it",
            ]
        if self.kind in RESTART_KINDS:
            return self._restart_lines()
        previous = without_digest(self.previous_image) or "(none)"
        lines = [
            f"Image: {previous} → {self.image_name} ({self.image_source}), "
            + (
                f"pinned to {self.image_digest[:19]}… ({self.digest_source})"
                if self.image_digest
                else "not pinned to a digest"
            ),
            f"Strategy: {self.strategy}"
            + (
                f", max_unavailable {_fmt_unavailable(self.max_unavailable)}"
                if self.strategy == "rolling"
                else ""
            )
            + f", wait_timeout {int(self.wait_timeout.total_seconds())}s",
        ]
        if self.release_command:
            lines.append(f"Release command: {self.release_command}")
        for group in self.groups:
            parts = []
            if group.update:
                parts.append(f"update {len(group.update)}")
            if group.create_regions:
                parts.append(
                    f"create {len(group.create_regions)} in "
                    f"{', '.join(sorted(set(group.create_regions)))}"
                )
            lines.append(f"[{group.group}] " + (", ".join(parts) or "nothing to do"))
            env = (
                [f"+{k}" for k in group.env_added]
                + [f"~{k}" for k in group.env_changed]
                + [f"-{k}" for k in group.env_removed]
            )
            if env:
                lines.append(f"    env: {' '.join(env)}")
            if group.guest_change:
                lines.append(f"    size: {group.guest_change}")
        if self.destroy:
            gone = sorted({m.metadata.get(GROUP_KEY, "app") for m in self.destroy})
            lines.append(
                f"Destroy {len(self.destroy)} machine(s) of removed group(s): {', '.join(gone)}"
            )
        lines.extend(self.notes)
        lines.append(
            "Approval binds: "
            + (f"image {self.image_digest[:19]}…" if self.image_digest else f"image {self.image}")
            + f", plan {self.fingerprint[:12]} (machine configs and [deploy]: strategy, "
            "max_unavailable, wait_timeout, release_command); any change voids it"
        )
        return lines

    def _restart_lines(self) -> list[str]:
        lines = [
            *self.headline,
            (
                f"Restart with secrets version {self.min_secrets_version}: every machine keeps "
                if self.min_secrets_version is not None
                else "Restart: every machine keeps "
            )
            + f"its image ({self.image_name or '?'}) and its config",
            f"Strategy: {self.strategy}"
            + (
                f", max_unavailable {_fmt_unavailable(self.max_unavailable)}"
                if self.strategy == "rolling"
                else ""
            )
            + f", wait_timeout {int(self.wait_timeout.total_seconds())}s",
        ]
        lines.extend(f"[{g.group}] restart {len(g.update)}" for g in self.groups)
        lines.extend(self.notes)
        return lines


def _hash_configs(configs: dict[str, dict[str, Any]]) -> str:
    """The effective config, image left out: a changed fly.toml changes it, a new image not."""
    stripped = {g: {k: v for k, v in c.items() if k != "image"} for g, c in configs.items()}
    return hashlib.sha256(json.dumps(stripped, sort_keys=True).encode()).hexdigest()


def _fmt_unavailable(value: float) -> str:
    return str(int(value)) if value >= 1 else f"{value:g}"


def majority_image(machines: list[Machine]) -> tuple[str, str]:
    """The image most machines run, with its digest when Fly reported one."""
    images = Counter(m.config.image for m in machines if m.config and m.config.image)
    if not images:
        return "", ""
    image = images.most_common(1)[0][0]
    digest = next(
        (
            m.image_ref.digest or ""
            for m in machines
            if m.config and m.config.image == image and m.image_ref
        ),
        "",
    )
    return image or "", digest


def _guest_text(config: dict[str, Any]) -> str:
    guest = config.get("guest") or {}
    return (
        f"{guest.get('cpu_kind', 'shared')}-{guest.get('cpus', 1)}x/{guest.get('memory_mb', 256)}MB"
    )


def _group_plan(
    group: str, config: dict[str, Any], machines: list[Machine], stage_config: StageConfig
) -> GroupPlan:
    if not machines:
        count = 2 if stage_config.group_has_services(group) else 1
        return GroupPlan(
            group=group,
            config=config,
            create_regions=(stage_config.primary_region or "iad",) * count,
        )
    current = machines[0].config.to_json() if machines[0].config else {}
    old_env: dict[str, str] = current.get("env") or {}
    new_env: dict[str, str] = config.get("env") or {}
    old_guest, new_guest = _guest_text(current), _guest_text(config)
    return GroupPlan(
        group=group,
        config=config,
        update=tuple(machines),
        env_added=tuple(sorted(set(new_env) - set(old_env))),
        env_changed=tuple(
            sorted(k for k in set(new_env) & set(old_env) if new_env[k] != old_env[k])
        ),
        env_removed=tuple(sorted(set(old_env) - set(new_env))),
        guest_change="" if old_guest == new_guest else f"{old_guest} → {new_guest}",
    )


async def managed_machines(fly: FlyClient, app: str) -> list[Machine]:
    """The app's machines that flyctl would manage (platform v2), live ones only."""
    machines = await fly.list_machines(app)
    return [
        m
        for m in machines
        if m.metadata.get(PLATFORM_VERSION_KEY) == "v2"
        and m.state not in ("destroying", "destroyed")
    ]


async def make_plan(
    fly: FlyClient,
    project: Project,
    stage: Stage,
    *,
    image: str | None = None,
    strategy: str | None = None,
    configs: dict[str, dict[str, Any]] | None = None,
    image_digest: str = "",
    verb: str = "deploy",
) -> DeployPlan:
    """Work out the deploy. `configs` (a past release's per-group machine configs) replaces
    what fly.toml says, for a rollback; `image_digest` is the digest `image` is known to be
    (a past release's). `verb` is what the stage's policy is asked about: a stage that
    guards it refuses an image that cannot be pinned to a digest."""
    stage_config = load_stage_config(stage.config_file)
    if stage_config.app != stage.app:
        # Grants, locks and approvals are keyed on project/stage, and the catalog says which
        # app a stage is: a fly.toml pointing elsewhere must not move the deploy there.
        raise PlanError(
            f'{stage.config_file.name} says app = "{stage_config.app}", but '
            f"{project.name}/{stage.name} is {stage.app} in flybot's catalog; nothing was "
            f'deployed. Put app = "{stage.app}" back, or change the stage\'s app and restart '
            "flybot so the catalog (and its grants) are read again."
        )
    machines = await managed_machines(fly, stage.app)
    current_image, current_digest = majority_image(machines)

    digest = image_digest
    if image:
        source = "given"
    elif stage_config.build_image:
        image, source = stage_config.build_image, "[build] image"
    elif stage.position > 0:
        previous = project.stages[stage.position - 1]
        image, digest = majority_image(await managed_machines(fly, previous.app))
        source = f"promoted from {previous.name}"
        if not image:
            raise PlanError(
                f"Nothing to promote: {previous.app} ({previous.name}) runs no "
                "image yet. Give an image: /fly deploy <project> <stage> <image>."
            )
    else:
        image, digest, source = current_image, current_digest, "current"
    if not image:
        raise PlanError(
            f"No image for {project.name}/{stage.name}: give one on the command "
            f"line or set [build] image in {stage.config_file.name}."
        )
    notes: list[str] = []
    try:
        pin_ = await pin(fly, stage.app, image, digest)
    except ImageNotFound as exc:
        raise PlanError(f"{exc}; nothing was deployed.") from None
    if not pin_.digest:
        policy = stage.policy
        if verb in policy.guarded and policy.approvals > 0:
            raise PlanError(
                f"{image} could not be pinned to a digest: {pin_.problem}. {verb} on "
                f"{project.name}/{stage.name} needs approval, and an approval must name exact "
                "bits, so nothing was deployed: try again, or give the image by digest "
                "(repo@sha256:…)."
            )
        notes.append(
            f"⚠ {image} is deployed by tag, not pinned: {pin_.problem}. A push of that tag "
            "meanwhile would change what runs."
        )
    image, digest = pin_.image, pin_.digest

    chosen = strategy or stage_config.deploy.strategy
    if chosen not in STRATEGIES:
        raise PlanError(f"Unknown strategy '{chosen}'. Strategies: {', '.join(STRATEGIES)}.")

    by_group: dict[str, list[Machine]] = {}
    for machine in machines:
        by_group.setdefault(machine.metadata.get(GROUP_KEY, "app"), []).append(machine)
    wanted = {g: stage_config.machine_config(g, image) for g in stage_config.groups}
    if configs:
        wanted = {g: {**config, "image": image} for g, config in configs.items()}
    groups = tuple(
        _group_plan(
            group, config, sorted(by_group.get(group, []), key=lambda m: m.id), stage_config
        )
        for group, config in wanted.items()
    )
    destroy = tuple(m for g, ms in sorted(by_group.items()) if g not in wanted for m in ms)
    judged_by_state = [
        g.group for g in groups if (g.update or g.create_regions) and not g.has_checks
    ]
    if chosen == "bluegreen" and not any(g.has_checks for g in groups if g.update):
        raise PlanError(
            "bluegreen needs a health check in at least one process group it updates (the "
            "greens take traffic only once healthy); add one in fly.toml or use --strategy "
            "rolling."
        )
    if judged_by_state:
        notes.append(
            f"⚠ No health checks in [{', '.join(judged_by_state)}]: those machines count as "
            "healthy once started (judged by state alone)."
        )
    if chosen == "canary" and any(g.config.get("mounts") for g in groups):
        raise PlanError("canary cannot be used with volumes (mounts); use rolling.")
    return DeployPlan(
        project=project.name,
        stage=stage.name,
        app=stage.app,
        image=image,
        image_source=source,
        image_digest=digest,
        digest_source=pin_.source,
        previous_image=current_image,
        strategy=chosen,
        max_unavailable=stage_config.deploy.max_unavailable,
        wait_timeout=stage_config.deploy.wait_timeout,
        release_command=stage_config.deploy.release_command,
        primary_region=stage_config.primary_region or "iad",
        groups=groups,
        destroy=destroy,
        config_hash=_hash_configs(wanted),
        stage_hash=stage_config.config_hash(),
        rollback_on_failure=stage.policy.rollback_on_failure,
        fail_fast=stage.policy.fail_fast,
        notes=tuple(notes),
    )
