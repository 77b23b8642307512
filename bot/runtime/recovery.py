"""What a dead process left half done is closed and its threads told: at start, and from the
scheduler's sweep."""

from __future__ import annotations

import asyncio
import logging

from sqlmodel import col, select

from bot.store.engine import session_scope
from bot.store.models import ACTIVE_DEPLOY_STATES, Release
from commands.approvals import fail_stuck, stale_after
from commands.context import Services
from commands.port import MessageRef, NoRoute, Reply

log = logging.getLogger(__name__)


async def recover_interrupted(services: Services) -> list[Release]:
    """Deploys a dead process left running are marked interrupted, their leases freed, and
    their threads told (on the platform each thread lives on); approved requests it was
    starting are marked failed."""
    await fail_stuck(services.engine, services.router, stale_after(services))
    return await recover_deploys(services)


def _any_active_deploy(services: Services) -> bool:
    query = select(Release.id).where(col(Release.state).in_(ACTIVE_DEPLOY_STATES)).limit(1)
    with session_scope(services.engine) as session:
        return session.exec(query).first() is not None


async def recover_deploys(services: Services) -> list[Release]:
    """Deploys whose process died (a heartbeat silent for the engine's `stale_after`) are
    closed and their threads told: at start, and from the scheduler's periodic sweep, so an
    app is never blocked until a restart. Safe on any number of instances at once.

    With no deploy queued or running anywhere there is nothing to close: the engine is not
    even loaded (a start, and most sweeps)."""
    if not services.has_fly or not await asyncio.to_thread(_any_active_deploy, services):
        return []
    deployer = services.deployer
    assert deployer is not None
    router = services.router

    async def notify(release: Release) -> None:
        thread = MessageRef(
            release.platform,
            release.workspace_id,
            release.channel_id,
            release.message_id,
            release.thread_id or None,
        )
        title = f"🚀 {release.project}/{release.stage} v{release.version}"
        if release.state == "interrupted":
            notice = (
                f"⚠ flybot restarted in the middle of this deploy: v{release.version} "
                "is marked interrupted and its machine leases were released. Machines may "
                f"run a mix of {release.previous_image or 'the old image'} and "
                f"{release.image}: check `/fly status {release.project} {release.stage}` "
                "and deploy again."
            )
        else:
            notice = (
                f"⚠ flybot stopped before v{release.version} began: nothing was changed. "
                "Deploy again."
            )
        try:
            await router.update(thread, Reply(text=release.state, title=title, tone="error"))
            await router.post_in_thread(thread, Reply(text=notice, tone="error"))
        except NoRoute as exc:
            log.warning(
                "deploy %s v%s: cannot tell its thread: %s", release.app, release.version, exc
            )

    recovered = await deployer.recover(notify)
    for release in recovered:
        log.warning("deploy %s v%s was %s", release.app, release.version, release.state)
    return recovered
