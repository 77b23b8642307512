"""The databases a stage's app leans on, as the seed article's apps do: Fly Postgres clusters
in the org (apps whose machines run the postgres-flex image or carry Postgres role metadata)
and the app's Upstash Redis databases (GraphQL `addOns`). Best effort: `status` shows what
Fly answered, and says so when it did not."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from bot.fly import FlyAPIError, FlyClient, Machine

LOOK_AT = 20  # other apps of the org looked into, at most, per status
ROLE_KEYS = ("role", "fly-managed-postgres")


def is_postgres(machine: Machine) -> bool:
    image = (machine.config.image if machine.config else "") or ""
    meta = machine.metadata
    return (
        "postgres-flex" in image
        or meta.get("role") in ("primary", "replica")
        or bool(meta.get("fly-managed-postgres"))
    )


@dataclass(frozen=True)
class Postgres:
    app: str
    members: tuple[tuple[str, str, str], ...]  # (role, state, region) per machine

    def line(self) -> str:
        parts = ", ".join(f"{role} {state} ({region})" for role, state, region in self.members)
        return f"Postgres {self.app}: {len(self.members)} machine(s): {parts}"


def redis_line(add_on: dict[str, object]) -> str:
    plan = add_on.get("addOnPlan")
    plan_name = plan.get("displayName") if isinstance(plan, dict) else None
    reads = add_on.get("readRegions") or []
    where = str(add_on.get("primaryRegion") or "?")
    if isinstance(reads, list) and reads:
        where += f" (replicas {', '.join(str(r) for r in reads)})"
    return (
        f"Redis {add_on.get('name') or '?'} (Upstash{', ' + str(plan_name) if plan_name else ''}):"
        f" {add_on.get('status') or '?'} in {where}"
    )


async def postgres_of_org(fly: FlyClient, org: str, skip: Iterable[str]) -> list[Postgres]:
    skipped = set(skip)
    apps = [a.name for a in await fly.list_apps(org) if a.name not in skipped][:LOOK_AT]

    async def look(app: str) -> Postgres | None:
        try:
            machines = await fly.list_machines(app)
        except FlyAPIError:
            return None
        members = tuple(
            (m.metadata.get("role") or "member", m.state or "?", m.region or "?")
            for m in sorted(machines, key=lambda m: m.id)
            if is_postgres(m) and m.state not in ("destroying", "destroyed")
        )
        return Postgres(app, members) if members else None

    found = await asyncio.gather(*(look(app) for app in apps))
    return [p for p in found if p is not None]


async def attached_lines(
    fly: FlyClient, org: str, app: str, catalog_apps: Iterable[str]
) -> tuple[str, ...]:
    lines: list[str] = []
    try:
        lines.extend(p.line() for p in await postgres_of_org(fly, org, catalog_apps))
    except FlyAPIError as exc:
        lines.append(f"Postgres: Fly did not answer ({exc.status or 'no answer'})")
    try:
        lines.extend(redis_line(a) for a in await fly.redis_add_ons(app))
    except FlyAPIError as exc:
        lines.append(f"Redis: Fly did not answer ({exc.status or 'no answer'})")
    return tuple(lines)
