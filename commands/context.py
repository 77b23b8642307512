"""What a command handler is given: who asked, where to answer, and the bot core."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from bot.projects import Catalog
from bot.settings import Settings
from commands.port import Conversation, Invocation, Reply, Tone
from commands.registry import Command, Registry


@dataclass
class Services:
    """The bot core, as the command layer sees it."""

    engine: Engine
    catalog: Catalog
    settings: Settings
    registry: Registry


@dataclass
class CommandContext:
    invocation: Invocation
    conversation: Conversation
    command: Command
    args: dict[str, Any]
    flags: dict[str, Any]
    principal_id: int
    services: Services
    audit_note: str = ""  # added to the audit entry's reason, e.g. "force-unlock of bob's lock"

    @property
    def engine(self) -> Engine:
        return self.services.engine

    @property
    def catalog(self) -> Catalog:
        return self.services.catalog

    async def say(self, text: str, tone: Tone = "info", **kwargs: Any) -> None:
        await self.conversation.reply(Reply(text=text, tone=tone, **kwargs))

    async def say_private(self, text: str, tone: Tone = "info", **kwargs: Any) -> None:
        await self.conversation.reply_private(Reply(text=text, tone=tone, **kwargs))
