"""From settings to the services the command layer stands on (database migrated, projects
loaded, first admins seeded, Fly connected)."""

from __future__ import annotations

from bot.deploy.engine import Deployer, EngineTiming
from bot.fly import FlyClient, FlyConfig
from bot.projects import load_catalog, sync_catalog
from bot.settings import Settings
from bot.store import make_engine, upgrade
from commands import build_registry
from commands.context import Services
from commands.permissions import ensure_admins


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
        deployer=Deployer(engine, fly, timing or EngineTiming.from_env()) if fly else None,
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
