"""Secrets of a stage's app, as flyctl's `fly secrets` handles them: what a change is (new,
replaced, removed), Fly's secrets version after it, which changes are staged (set, but not
yet on the machines), and the restart that hands them out (same image, same config, with
`min_secrets_version`).

Values pass through here on their way to Fly and nowhere else: the rows keep names and
versions (and the client masks a value should Fly's error text quote one).
"""

from __future__ import annotations

import secrets as _random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy.engine import Engine
from sqlmodel import col, func, select

from bot.deploy.flytoml import DeploySettings, FlyTomlError, load_stage_config
from bot.deploy.plan import GROUP_KEY, DeployPlan, GroupPlan, majority_image, managed_machines
from bot.fly import FlyClient, Secret
from bot.projects import Project, Stage
from bot.store.engine import session_scope
from bot.store.models import Release, SecretsChange

SYNC_PREFIX = "FLYBOT_SYNC_"  # a name nobody has: unsetting it tells Fly's current version
VERSION_TRIES = 3


class SecretsError(Exception):
    """A secrets change that cannot go ahead; the text says why (names only, never values)."""


@dataclass(frozen=True)
class Change:
    name: str
    kind: str  # new | replaced | removed

    def line(self) -> str:
        return f"{self.name} ({self.kind})"


def changes_for_set(current: Iterable[Secret], names: Iterable[str]) -> tuple[Change, ...]:
    have = {s.name for s in current}
    return tuple(Change(n, "replaced" if n in have else "new") for n in dict.fromkeys(names))


def changes_for_unset(
    current: Iterable[Secret], names: Iterable[str], where: str
) -> tuple[Change, ...]:
    """Each name must be one of the app's secrets: an unknown one (a typo) is refused."""
    have = sorted(s.name for s in current)
    unknown = [n for n in dict.fromkeys(names) if n not in have]
    if unknown:
        from difflib import get_close_matches

        close = get_close_matches(unknown[0], have, n=1, cutoff=0.6)
        hint = f" Did you mean {close[0]}?" if close else ""
        listed = ", ".join(have) if have else "none"
        raise SecretsError(
            f"{where} has no secret {', '.join(unknown)}.{hint} Its secrets: {listed}. "
            "Nothing was changed."
        )
    return tuple(Change(n, "removed") for n in dict.fromkeys(names))


async def apply(fly: FlyClient, app: str, values: Mapping[str, str | None]) -> int:
    """Set (str) and unset (None) in one call, exactly once, and return Fly's new secrets
    version. The client resends after a lost answer only when Fly's state shows the change
    did not happen; when it did, the version the answer carried is learnt as flyctl's
    `secrets sync` does: unsetting a name nobody has (safe to repeat) answers with it."""
    version = (await fly.set_secrets(app, values)).version
    for _ in range(VERSION_TRIES):
        if version is not None:
            return version
        version = (await fly.set_secrets(app, {sync_name(): None})).version
    raise SecretsError(
        f"Fly took the secrets change on {app} but did not say its version; "
        "`/fly secrets deploy` hands it out."
    )


def sync_name() -> str:
    return f"{SYNC_PREFIX}{_random.token_hex(6).upper()}"


# --- the record of changes (names and versions only) -------------------------------------


def record(
    engine: Engine,
    *,
    project: str,
    stage: str,
    app: str,
    changes: Iterable[Change],
    version: int,
    requested_by: int | None,
    requester_name: str,
) -> None:
    with session_scope(engine) as session:
        for change in changes:
            session.add(
                SecretsChange(
                    project=project,
                    stage=stage,
                    app=app,
                    name=change.name,
                    change=change.kind,
                    version=version,
                    requested_by=requested_by,
                    requester_name=requester_name,
                )
            )


def applied_version(engine: Engine, app: str) -> int:
    """The newest secrets version a succeeded release of `app` handed to every machine."""
    with session_scope(engine) as session:
        found = session.exec(
            select(func.max(Release.secrets_version)).where(
                Release.app == app, Release.state == "succeeded"
            )
        ).one()
    return int(found or 0)


def latest_version(engine: Engine, app: str) -> int | None:
    """The newest secrets version flybot got from Fly for `app` (None: it never set any)."""
    with session_scope(engine) as session:
        found = session.exec(
            select(func.max(SecretsChange.version)).where(SecretsChange.app == app)
        ).one()
    return int(found) if found is not None else None


def last_changes(engine: Engine, app: str) -> dict[str, SecretsChange]:
    """Each name's newest change through flybot."""
    with session_scope(engine) as session:
        rows = session.exec(
            select(SecretsChange)
            .where(SecretsChange.app == app)
            .order_by(col(SecretsChange.version), col(SecretsChange.id))
        )
        return {row.name: row for row in rows}


def staged(engine: Engine, app: str) -> dict[str, SecretsChange]:
    """Each name changed since the last release that handed secrets out: not on the machines
    yet (its newest change only)."""
    done = applied_version(engine, app)
    return {n: c for n, c in last_changes(engine, app).items() if c.version > done}


# --- the restart -------------------------------------------------------------------------


async def restart_plan(
    fly: FlyClient,
    project: Project,
    stage: Stage,
    version: int | None,
    headline: tuple[str, ...] = (),
    *,
    only_groups: tuple[str, ...] | None = None,
    only_machine: str | None = None,
    kind: str = "secrets",
) -> DeployPlan | None:
    """Every machine updated with its own current config and `min_secrets_version`, as
    flyctl's restart-only deploy; None when the app has no machines yet (the first deploy
    hands the secrets out). [deploy]'s rolling settings apply; a canary or bluegreen
    strategy, which creates machines, restarts as rolling."""
    machines = await managed_machines(fly, stage.app)
    if only_groups is not None:  # `/fly restart --group`: only those process groups
        machines = [m for m in machines if m.metadata.get(GROUP_KEY, "app") in only_groups]
    if only_machine is not None:  # `/fly restart --machine`: only that one
        machines = [m for m in machines if only_machine in (m.id, m.name)]
    if not machines:
        return None
    notes: list[str] = []
    try:
        stage_config = load_stage_config(stage.config_file)
        settings, region = stage_config.deploy, stage_config.primary_region or "iad"
    except (FlyTomlError, OSError) as exc:
        settings, region = DeploySettings(), "iad"
        notes.append(f"⚠ {stage.config_file.name} could not be read ({exc}): default settings.")
    by_group: dict[str, list] = {}
    for machine in sorted(machines, key=lambda m: m.id):
        by_group.setdefault(machine.metadata.get(GROUP_KEY, "app"), []).append(machine)
    groups = tuple(
        GroupPlan(
            group=group,
            config=members[0].config.to_json() if members[0].config else {},
            update=tuple(members),
            machine_configs={m.id: m.config.to_json() for m in members if m.config},
        )
        for group, members in sorted(by_group.items())
    )
    image, digest = majority_image(machines)
    strategy = "immediate" if settings.strategy == "immediate" else "rolling"
    if settings.strategy not in ("rolling", "immediate"):
        notes.append(f"{settings.strategy} creates machines: a restart goes rolling instead.")
    return DeployPlan(
        project=project.name,
        stage=stage.name,
        app=stage.app,
        image=image,
        image_source="current",
        image_digest=digest,
        previous_image=image,
        strategy=strategy,
        max_unavailable=settings.max_unavailable,
        wait_timeout=settings.wait_timeout,
        release_command=None,  # flyctl runs no release command for a restart
        primary_region=region,
        groups=groups,
        config_hash=_configs_hash(groups),
        rollback_on_failure=stage.policy.rollback_on_failure,
        fail_fast=stage.policy.fail_fast,
        notes=tuple(notes),
        kind=kind,
        min_secrets_version=version,
        headline=headline,
    )


def _configs_hash(groups: tuple[GroupPlan, ...]) -> str:
    import hashlib
    import json

    every = {mid: cfg for g in groups for mid, cfg in sorted(g.machine_configs.items())}
    return hashlib.sha256(json.dumps(every, sort_keys=True).encode()).hexdigest()
