"""Wiring: from settings to a ready command layer (database migrated, projects loaded)."""

from __future__ import annotations

from bot.projects import load_catalog, sync_catalog
from bot.settings import Settings
from bot.store import make_engine, upgrade
from commands import build_registry
from commands.context import Services
from commands.dispatch import Dispatcher
from commands.permissions import ensure_admins


def build_services(settings: Settings) -> Services:
    """Migrate the database, load flybot.toml, seed the first admins."""
    catalog = load_catalog(settings.config_path)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    sync_catalog(engine, catalog)
    ensure_admins(engine, settings.admins + catalog.admins)
    return Services(engine=engine, catalog=catalog, settings=settings, registry=build_registry())


def build_dispatcher(settings: Settings) -> Dispatcher:
    return Dispatcher(build_services(settings))
