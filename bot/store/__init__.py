"""Storage: SQLModel tables, the engine, and Alembic migrations."""

from bot.store.engine import make_engine, session_scope
from bot.store.migrate import upgrade

__all__ = ["make_engine", "session_scope", "upgrade"]
