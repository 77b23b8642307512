"""From settings to the services the command layer stands on (database migrated, projects
loaded, first admins seeded; Fly's client and the deploy engine made on first use)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.deploy.timing import EngineTiming
from bot.fly.config import FlyConfig
from bot.projects import load_catalog, sync_catalog
from bot.settings import Settings
from bot.store import make_engine, upgrade
from commands import build_registry
from commands.context import Services
from commands.permissions import ensure_admins

if TYPE_CHECKING:
    from bot.fly import FlyClient


def build_services(settings: Settings, timing: EngineTiming | None = None) -> Services:
    """Migrate the database, load flybot.toml, seed the first admins; Fly is connected on
    the first call that needs it (`Services.fly`)."""
    catalog = load_catalog(settings.config_path)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    sync_catalog(engine, catalog)
    ensure_admins(engine, settings.admins + catalog.admins)
    return Services(
        engine=engine,
        catalog=catalog,
        settings=settings,
        registry=build_registry(),
        fly_config=fly_config(settings),
        deploy_timing=timing or EngineTiming.from_env(),
    )


def fly_config(settings: Settings) -> FlyConfig | None:
    if not settings.fly_api_token:
        return None
    return FlyConfig(
        token=settings.fly_api_token,
        org=settings.fly_org,
        flaps_base_url=settings.fly_flaps_base_url,
        api_base_url=settings.fly_api_base_url,
    )


def fly_client(settings: Settings) -> FlyClient | None:
    config = fly_config(settings)
    if config is None:
        return None
    from bot.fly.client import FlyClient

    return FlyClient(config)
