"""What a command handler is given: who asked, where to answer, and the bot core."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import Engine

from bot.deploy.engine import Deployer
from bot.fly import FlyClient
from bot.jobs import JobRunner
from bot.projects import Catalog
from bot.settings import Settings
from commands.guard import Approved
from commands.port import Conversation, Invocation, MessageRef, Reply, Tone
from commands.registry import Command, Registry


@dataclass
class Services:
    """The bot core, as the command layer sees it."""

    engine: Engine
    catalog: Catalog
    settings: Settings
    registry: Registry
    fly: FlyClient | None = None  # None when no Fly token is configured
    deployer: Deployer | None = None
    jobs: JobRunner = field(default_factory=JobRunner)


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
    scope: tuple[str, str] | None = None  # the (project, stage) acted on, when no argument says
    approved: Approved | None = None  # set when running an approved request
    thread: MessageRef | None = None  # the thread to report in, when there already is one

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
