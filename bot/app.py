"""Wiring: from settings to a ready command layer (database migrated, projects loaded)."""

from __future__ import annotations

import logging

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.deploy.engine import Deployer, EngineTiming
from bot.fly import FlyClient, FlyConfig
from bot.projects import load_catalog, sync_catalog
from bot.settings import Settings
from bot.store import make_engine, upgrade
from bot.store.models import Release
from commands import build_registry
from commands.approvals import fail_stuck, sweep
from commands.context import Services
from commands.dispatch import Dispatcher
from commands.permissions import ensure_admins
from commands.port import Conversation, MessageRef, Reply

log = logging.getLogger(__name__)


def build_services(settings: Settings, timing: EngineTiming | None = None) -> Services:
    """Migrate the database, load flybot.toml, seed the first admins, connect to Fly."""
    catalog = load_catalog(settings.config_path)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    sync_catalog(engine, catalog)
    ensure_admins(engine, settings.admins + catalog.admins)
    fly = fly_client(settings)
    return Services(
        engine=engine,
        catalog=catalog,
        settings=settings,
        registry=build_registry(),
        fly=fly,
        deployer=Deployer(engine, fly, timing) if fly is not None else None,
    )


def fly_client(settings: Settings) -> FlyClient | None:
    if not settings.fly_api_token:
        return None
    return FlyClient(
        FlyConfig(
            token=settings.fly_api_token,
            org=settings.fly_org,
            flaps_base_url=settings.fly_flaps_base_url,
            api_base_url=settings.fly_api_base_url,
        )
    )


APPROVAL_EXPIRY_EVERY = 30.0  # seconds between sweeps for expired approval requests


def start_scheduler(
    services: Services, conversation: Conversation, every: float = APPROVAL_EXPIRY_EVERY
) -> AsyncIOScheduler:
    """Periodic work in this process. Each job is safe on any number of instances: what it
    changes is claimed by a compare-and-set in the database."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    scheduler.add_job(
        sweep,
        "interval",
        seconds=every,
        args=(services.engine, conversation),
        id="approval-expiry",
        max_instances=1,
        coalesce=True,
    )
    scheduler.start()
    return scheduler


def build_dispatcher(settings: Settings) -> Dispatcher:
    return Dispatcher(build_services(settings))


async def recover_interrupted(services: Services, conversation: Conversation) -> list[Release]:
    """At start: deploys a dead process left running are marked interrupted, their leases
    freed, and their threads told; approved requests it was starting are marked failed."""
    await fail_stuck(services.engine, conversation)
    if services.deployer is None:
        return []

    async def notify(release: Release) -> None:
        thread = MessageRef(release.channel_id, release.message_id, release.thread_id or None)
        title = f"🚀 {release.project}/{release.stage} v{release.version}"
        await conversation.update(thread, Reply(text="interrupted", title=title, tone="error"))
        await conversation.post_in_thread(
            thread,
            Reply(
                text=f"⚠ flybot restarted in the middle of this deploy: v{release.version} is "
                "marked interrupted and its machine leases were released. Machines may run "
                f"a mix of {release.previous_image or 'the old image'} and {release.image}: "
                f"check `/fly status {release.project} {release.stage}` and deploy again.",
                tone="error",
            ),
        )

    recovered = await services.deployer.recover(notify)
    for release in recovered:
        log.warning("deploy %s v%s was interrupted", release.app, release.version)
    return recovered
