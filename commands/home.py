"""A person's overview: the requests waiting for them (with the buttons they may press) and
every stage's current image and last release. Slack shows it as the App Home tab; any
adapter can render it (it is made of `Reply`s)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass

from sqlmodel import col, select

from bot.store.engine import session_scope
from bot.store.models import ApprovalRequest, Release
from bot.store.principals import IdentityKey, ensure_identity
from commands.approvals import approver_refusal
from commands.context import Services
from commands.reply import Reply, markup
from commands.requests import card, votes_of

log = logging.getLogger(__name__)

FLY_READ_TIMEOUT = 3.0  # seconds for all the stages' machine listings together


@dataclass(frozen=True)
class Overview:
    pending: tuple[Reply, ...]  # one card per pending request; buttons where they may act
    stages: Reply  # one line per stage: app, current image, last release


async def overview(services: Services, who: IdentityKey, name: str) -> Overview:
    engine = services.engine
    identity = ensure_identity(engine, who, name)
    identity_key = (who.platform, who.workspace_id, who.user_id)
    with session_scope(engine) as session:
        waiting = list(
            session.exec(
                select(ApprovalRequest)
                .where(ApprovalRequest.state == "pending")
                .order_by(col(ApprovalRequest.id))
            )
        )
    cards = []
    for request in waiting:
        refusal = approver_refusal(engine, request, identity.principal_id, identity_key)
        votes = votes_of(engine, request.id or 0)
        if any(v.principal_id == identity.principal_id for v in votes):
            refusal = "you approved it"
        status = "waiting for your approval" if not refusal else f"waiting ({refusal})"
        cards.append(card(engine, request, status, votes, live=not refusal))
    return Overview(tuple(cards), await _stages(services))


async def _stages(services: Services) -> Reply:
    stages = [s for p in services.catalog.projects.values() for s in p.stages]
    images = await _running_images(services, [s.app for s in stages])
    lines = []
    with session_scope(services.engine) as session:
        for stage in stages:
            last = session.exec(
                select(Release)
                .where(Release.project == stage.project, Release.stage == stage.name)
                .order_by(col(Release.version).desc())
            ).first()
            release = (
                f"v{last.version} {last.state.replace('_', ' ')} by {last.requester_name}, "
                f"{last.created_at:%Y-%m-%d %H:%M} UTC"
                if last
                else "no release yet"
            )
            lines.append(
                markup(
                    "*{where}* ({app}): `{image}` — last release {release}",
                    where=f"{stage.project}/{stage.name}",
                    app=stage.app,
                    image=images.get(stage.app, "?"),
                    release=release,
                )
            )
    return Reply(
        text="" if lines else "No projects in flybot.toml yet.",
        title="Stages",
        lines=tuple(lines),
    )


async def _running_images(services: Services, apps: list[str]) -> dict[str, str]:
    """Each app's image as Fly runs it now (the most common one among its machines)."""
    fly = services.fly
    if fly is None or not apps:
        return {}

    async def one(app: str) -> tuple[str, str]:
        machines = await fly.list_machines(app)
        counted = Counter(
            m.config.image
            for m in machines
            if m.config and m.config.image and m.state not in ("destroying", "destroyed")
        )
        if not counted:
            return app, "no machines"
        image, _ = counted.most_common(1)[0]
        return app, image + (f" (+{len(counted) - 1} other)" if len(counted) > 1 else "")

    try:
        found = await asyncio.wait_for(
            asyncio.gather(*(one(app) for app in apps), return_exceptions=True),
            FLY_READ_TIMEOUT,
        )
    except TimeoutError:
        log.warning("home: Fly did not list the stages' machines in time")
        return {}
    return dict(item for item in found if isinstance(item, tuple))
