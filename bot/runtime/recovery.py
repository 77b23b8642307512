"""At start: what a dead process left half done is closed and its threads told."""

from __future__ import annotations

import logging

from bot.store.models import Release
from commands.approvals import fail_stuck, stale_after
from commands.context import Services
from commands.dispatch import executor_id
from commands.port import MessageRef, NoRoute, Reply

log = logging.getLogger(__name__)


async def recover_interrupted(services: Services) -> list[Release]:
    """Deploys a dead process left running are marked interrupted, their leases freed, and
    their threads told (on the platform each thread lives on); approved requests it was
    starting are marked failed."""
    executor = executor_id(services)  # this process before it restarted, if ids are stable
    await fail_stuck(services.engine, services.router, stale_after(services), dead=executor)
    if services.deployer is None:
        return []
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
        try:
            await router.update(thread, Reply(text="interrupted", title=title, tone="error"))
            await router.post_in_thread(
                thread,
                Reply(
                    text=f"⚠ flybot restarted in the middle of this deploy: v{release.version} "
                    "is marked interrupted and its machine leases were released. Machines may "
                    f"run a mix of {release.previous_image or 'the old image'} and "
                    f"{release.image}: check `/fly status {release.project} {release.stage}` "
                    "and deploy again.",
                    tone="error",
                ),
            )
        except NoRoute as exc:
            log.warning(
                "deploy %s v%s: cannot tell its thread: %s", release.app, release.version, exc
            )

    recovered = await services.deployer.recover(notify)
    for release in recovered:
        log.warning("deploy %s v%s was interrupted", release.app, release.version)
    return recovered
