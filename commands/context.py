"""What a command handler is given: who asked, where to answer, and the bot core."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine

from bot.deploy.timing import EngineTiming
from bot.fly.config import FlyConfig
from bot.jobs import JobRunner
from bot.projects import Catalog
from bot.settings import Settings
from commands.port import Interaction, Invocation, MessageRef, Reply, Router, Tone
from commands.registry import Command, Registry
from commands.secret_input import SecretValues

if TYPE_CHECKING:
    from bot.deploy.engine import Deployer
    from bot.fly import FlyClient
    from commands.guard import Approved, Plan

log = logging.getLogger(__name__)


@dataclass
class Services:
    """The bot core, as the command layer sees it. One per process, built by the runtime.

    Fly's client and the deploy engine are made on first use (`fly`, `deployer`): their
    modules (httpx's transport, the pydantic models, the engine, plans, fly.toml) are a
    good part of what a start would import, and a start calls no Fly API.
    """

    engine: Engine
    catalog: Catalog
    settings: Settings
    registry: Registry
    fly_config: FlyConfig | None = None  # None when no Fly token is configured
    deploy_timing: EngineTiming = field(default_factory=EngineTiming)
    jobs: JobRunner = field(default_factory=JobRunner)
    router: Router = field(default_factory=Router)  # platform -> its adapter's outbox
    # Secret values of requests waiting for approval, by request id: memory only, so a
    # restart drops them (the card says so) and they never reach the database.
    held_secrets: dict[int, SecretValues] = field(default_factory=dict)
    _fly: FlyClient | None = field(default=None, init=False, repr=False)
    _deployer: Deployer | None = field(default=None, init=False, repr=False)
    _making: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def has_fly(self) -> bool:
        """A Fly token is configured (or a client was given): asks nothing of Fly."""
        return self._fly is not None or self.fly_config is not None

    @property
    def fly(self) -> FlyClient | None:
        """Fly's client, made on first use; None when no Fly token is configured."""
        if self._fly is None and self.fly_config is not None:
            with self._making:
                if self._fly is None:
                    from bot.fly.client import FlyClient

                    self._fly = FlyClient(self.fly_config)
        return self._fly

    @fly.setter
    def fly(self, client: FlyClient | None) -> None:
        self._fly = client

    @property
    def deployer(self) -> Deployer | None:
        """The deploy engine, made on first use (with `fly`); None without Fly."""
        if self._deployer is None and self.has_fly:
            fly = self.fly
            with self._making:
                if self._deployer is None and fly is not None:
                    from bot.deploy.engine import Deployer

                    self._deployer = Deployer(self.engine, fly, self.deploy_timing)
        return self._deployer

    @deployer.setter
    def deployer(self, deployer: Deployer | None) -> None:
        self._deployer = deployer

    @property
    def made_fly(self) -> FlyClient | None:
        """Fly's client if it has been made, else None (and nothing is made)."""
        return self._fly

    @property
    def made_deployer(self) -> Deployer | None:
        """The deploy engine if it has been made, else None (and nothing is made)."""
        return self._deployer

    @property
    def timing(self) -> EngineTiming:
        """The deploy engine's timing, whether or not the engine has been made."""
        return self._deployer.timing if self._deployer is not None else self.deploy_timing


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
