"""What a command handler is given: who asked, where to answer, and the bot core."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine

from bot.deploy.engine import Deployer
from bot.fly import FlyClient
from bot.jobs import JobRunner
from bot.projects import Catalog
from bot.settings import Settings
from commands.port import Interaction, Invocation, MessageRef, Reply, Router, Tone
from commands.registry import Command, Registry
from commands.secret_input import SecretValues

if TYPE_CHECKING:
    from commands.guard import Approved, Plan

log = logging.getLogger(__name__)


@dataclass
class Services:
    """The bot core, as the command layer sees it. One per process, built by the runtime."""

    engine: Engine
    catalog: Catalog
    settings: Settings
    registry: Registry
    fly: FlyClient | None = None  # None when no Fly token is configured
    deployer: Deployer | None = None
    jobs: JobRunner = field(default_factory=JobRunner)
    router: Router = field(default_factory=Router)  # platform -> its adapter's outbox
    # Secret values of requests waiting for approval, by request id: memory only, so a
    # restart drops them (the card says so) and they never reach the database.
    held_secrets: dict[int, SecretValues] = field(default_factory=dict)


@dataclass
class CommandContext:
    invocation: Invocation
    interaction: Interaction
    command: Command
    args: dict[str, Any]
    flags: dict[str, Any]
    principal_id: int
    services: Services
    secrets: SecretValues = field(default_factory=SecretValues)
    audit_note: str = ""  # added to the audit entry's reason, e.g. "force-unlock of bob's lock"
    scope: tuple[str, str] | None = None  # the (project, stage) acted on, when no argument says
    plan: Plan | None = None  # a guardable command's plan, checked by the guard
    approved: Approved | None = None  # set when running an approved request
    thread: MessageRef | None = None  # the thread to report in, when there already is one

    @property
    def engine(self) -> Engine:
        return self.services.engine

    @property
    def catalog(self) -> Catalog:
        return self.services.catalog

    @property
    def outbox(self) -> Router:
        """Durable posts, to whichever platform a message ref names."""
        return self.services.router

    @property
    def approvers(self) -> str:
        return ", ".join(self.approved.approvers) if self.approved else ""

    async def say(self, text: str, tone: Tone = "info", **kwargs: Any) -> None:
        await self.interaction.reply(Reply(text=text, tone=tone, **kwargs))

    async def say_private(self, text: str, tone: Tone = "info", **kwargs: Any) -> None:
        await self.interaction.reply_private(Reply(text=text, tone=tone, **kwargs))

    async def open_thread(self, reply: Reply) -> MessageRef:
        """The thread this command reports in: an approved request's own thread (its card
        edited to `reply`), else a new thread started from this interaction."""
        if self.thread is not None:
            try:  # the request is already claimed: a chat failure must not stop it now
                await self.outbox.update(self.thread, reply)
            except Exception:
                log.exception("could not edit the card of thread %s", self.thread.message_id)
            return self.thread
        return await self.interaction.start_thread(reply)
