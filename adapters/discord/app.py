"""The Discord adapter: a discord.py client (gateway for interactions, REST for everything
said) whose interactions become Invocations for the one command pipeline.

- At start: log in, connect to the gateway with no privileged intent, register the persistent
  view's dynamic button (a click on a card sent before a restart still works), and put the
  `/fly` command generated from the registry (adapters/discord/tree.py) to DISCORD_GUILD_ID
  (instant) or globally.
- `/fly …`: identity `discord:<guild>:<user>`. Deferred at once (Discord gives 3 s), the
  pipeline runs after; a verb that declares secret input answers with a modal instead (a
  modal must be the first response), and its submission runs the command with the values
  beside it.
- a button: deferred as an update of its message, then the line the registry declares for
  its action (`approve 12`), run as the person who clicked.
- autocomplete: answered from the command layer's suggestions (commands/complete.py).

Exactly once: an interaction is acknowledged by one instance only (Discord answers 40060 to
the others, which then drop it), and its id is claimed in the database by the pipeline.

Stopping (`stop_intake`), nothing new runs. A command or a click is left HANDOFF_WAIT for
another instance to acknowledge (every session hears it); if none has, the person is told
privately that flybot is restarting and nothing was run, rather than Discord's "The
application did not respond". A modal's submission reaches only the process that opened
the modal, so it is told at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Coroutine
from contextlib import AbstractContextManager
from typing import Any, Protocol

import aiohttp
import discord
import yarl
from discord.gateway import DiscordWebSocket
from discord.http import Route

from adapters.discord import tree
from adapters.discord.buttons import CardButton
from adapters.discord.conversation import (
    PLATFORM,
    ClientLoop,
    DiscordInteraction,
    DiscordOutbox,
)
from adapters.discord.errors import DiscordSetupError
from adapters.slack.redact import SCRUBBER, scrubbed_logger
from bot.runtime import Runtime
from bot.settings import Settings
from commands.complete import suggestions
from commands.port import RESTARTING, RESTARTING_FORM, Invocation, Reply
from commands.secret_input import SecretRequest

log = logging.getLogger(__name__)

ALREADY_ACKNOWLEDGED = 40060
UNKNOWN_INTERACTION = 10062
READY_TIMEOUT = 30.0  # seconds for login, the gateway handshake and the guilds
MODAL_PREFIX = "flybot.secrets:"  # SCRUBBER hides any log record that carries one
MODAL_FIELDS = 5  # Discord's limit of inputs in one modal
# Guilds only: no members, presences or message content (privileged), no messages at all.
INTENTS = discord.Intents(guilds=True)
HANDOFF_WAIT = 1.5  # seconds a stopping instance leaves an interaction to another (of 3)


class Worker(Protocol):
    def spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> object: ...

    def answering(self) -> AbstractContextManager[None]: ...


class _SameLoop:
    def __init__(self, runtime: Runtime) -> None:
        self.jobs = runtime.services.jobs

    def spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> object:
        return self.jobs.spawn(coroutine, name)

    def answering(self) -> AbstractContextManager[None]:
        return contextlib.nullcontext()


class _Client(discord.Client):
    def __init__(self, adapter: DiscordAdapter) -> None:
        super().__init__(
            intents=INTENTS,
            allowed_mentions=discord.AllowedMentions.none(),
            guild_ready_timeout=adapter.settings.discord_ready_timeout,
        )
        self.adapter = adapter
        self.ready = asyncio.Event()

    async def setup_hook(self) -> None:
        self.add_dynamic_items(CardButton)  # the persistent view, before any click can come

    async def on_ready(self) -> None:
        self.ready.set()

    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        await self.adapter.on_interaction(interaction)

    async def on_click(
        self, interaction: discord.Interaction[Any], action: str, value: str
    ) -> None:
        await self.adapter.on_click(interaction, action, value)


class SecretsModal(discord.ui.Modal):
    """One text input per secret name; the values go to the command and nowhere else."""

    def __init__(
        self, adapter: DiscordAdapter, invocation: Invocation, asked: SecretRequest
    ) -> None:
        title = f"flybot: {asked.title}"
        super().__init__(
            title=title[:45], timeout=600, custom_id=MODAL_PREFIX + secrets.token_hex(8)
        )
        self.adapter = adapter
        self.invocation = invocation
        self.inputs: dict[str, discord.ui.TextInput[Any]] = {}
        for index, name in enumerate(asked.names):
            field: discord.ui.TextInput[Any] = discord.ui.TextInput(
                label=name[:45],
                custom_id=f"value:{index}",
                placeholder="the value (flybot never shows, stores or logs it)",
                max_length=4000,
            )
            self.inputs[name] = field
            self.add_item(field)

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        values = {name: str(field.value) for name, field in self.inputs.items() if field.value}
        SCRUBBER.hold(values.values())
        await self.adapter.on_submit(interaction, self.invocation, values)


class DiscordAdapter:
    def __init__(self, runtime: Runtime, settings: Settings, worker: Worker | None = None) -> None:
        if not settings.discord_token:
            raise DiscordSetupError("DISCORD_TOKEN is not set (Developer Portal → Bot → Token).")
        self.runtime = runtime
        self.services = runtime.services
        self.dispatcher = runtime.dispatcher
        self.settings = settings
        self.worker: Worker = worker or _SameLoop(runtime)
        self.hop = ClientLoop()
        self.client: _Client | None = None
        self.outbox: DiscordOutbox | None = None
        self._gateway: asyncio.Task[None] | None = None
        self._intake = True
        scrubbed_logger("discord")  # discord.py logs every gateway frame at debug level

    # --- start and stop --------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        client = self.client
        return client is not None and client.ready.is_set() and not client.is_closed()

    async def connect(self) -> None:
        """Log in, open the gateway, put the /fly command. Raises DiscordSetupError with one
        clear line on a refused token or an unreachable Discord."""
        Route.BASE = self.settings.discord_api_url
        if self.settings.discord_gateway_url:
            DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(self.settings.discord_gateway_url)
        self.hop.loop = asyncio.get_running_loop()
        client = self.client = _Client(self)
        token = self.settings.discord_token or ""
        try:
            await client.login(token)
        except discord.LoginFailure:
            await client.close()
            raise DiscordSetupError(
                "Discord refused DISCORD_TOKEN: copy it again from the Developer Portal "
                "(your application → Bot → Reset Token)."
            ) from None
        except (aiohttp.ClientError, OSError, discord.HTTPException) as exc:
            await client.close()
            raise DiscordSetupError(
                f"Discord's API at {self.settings.discord_api_url} did not answer: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        self._gateway = asyncio.create_task(client.connect(reconnect=True), name="discord")
        ready = asyncio.create_task(client.ready.wait())
        done, _ = await asyncio.wait(
            {self._gateway, ready}, timeout=READY_TIMEOUT, return_when=asyncio.FIRST_COMPLETED
        )
        if ready not in done:
            ready.cancel()
            failure = self._gateway.exception() if self._gateway in done else None
            await self.close()
            raise DiscordSetupError(
                f"Discord's gateway did not get ready: {failure or 'timed out'}"
            ) from None
        await self._sync_commands()
        self.outbox = DiscordOutbox(client, self.hop)
        self.runtime.attach(PLATFORM, self.outbox)

    async def _sync_commands(self) -> None:
        assert self.client is not None
        body = tree.tree(self.services.registry)
        app_id = self.client.application_id
        guild = self.settings.discord_guild_id
        try:
            if guild:
                await self.client.http.bulk_upsert_guild_commands(app_id, guild, body)  # type: ignore[arg-type]
            else:
                await self.client.http.bulk_upsert_global_commands(app_id, body)  # type: ignore[arg-type]
        except discord.HTTPException as exc:
            await self.close()
            raise DiscordSetupError(
                f"Discord refused the /fly command ({exc.status} {exc.text}); "
                f"{'is the bot in guild ' + guild + '?' if guild else ''}"
            ) from None

    async def stop_intake(self) -> None:
        """No new interactions (left a moment to another instance, then answered as
        stopping); posts still work, so running work can finish and tell its threads."""
        self._intake = False

    async def close(self) -> None:
        self._intake = False
        self.runtime.services.router.unregister(PLATFORM)
        if self.client is not None:
            await self.client.close()
        if self._gateway is not None:
            self._gateway.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._gateway
            self._gateway = None

    # --- interactions ----------------------------------------------------------------------

    def _invocation(self, interaction: discord.Interaction[Any], text: str) -> Invocation:
        user = interaction.user
        channel = str(interaction.channel_id or "")
        in_thread = isinstance(interaction.channel, discord.Thread)
        return Invocation(
            platform=PLATFORM,
            workspace_id=str(interaction.guild_id or ""),
            channel_id=channel,
            user_id=str(user.id),
            display_name=str(getattr(user, "display_name", None) or user.name),
            text=text,
            thread_id=channel if in_thread else None,
            dedupe_key=f"discord:{interaction.guild_id}:interaction:{interaction.id}",
        )

    async def _acknowledge(self, interaction: discord.Interaction[Any], **defer: Any) -> bool:
        """Defer now; False when another instance acknowledged it first, or it is stale."""
        try:
            await interaction.response.defer(**defer)
            return True
        except discord.InteractionResponded:
            return False
        except discord.HTTPException as exc:
            if exc.code in (ALREADY_ACKNOWLEDGED, UNKNOWN_INTERACTION):
                log.info(
                    "interaction %s answered elsewhere or expired: %s", interaction.id, exc.code
                )
                return False
            raise

    async def _refuse(self, interaction: discord.Interaction[Any], text: str) -> None:
        with contextlib.suppress(discord.HTTPException):
            await interaction.response.send_message(
                embeds=[discord.Embed(description=text, color=0xED4245)], ephemeral=True
            )

    async def _closing(self, interaction: discord.Interaction[Any], text: str = RESTARTING) -> None:
        """Stopping: said privately, unless another instance acknowledged it meanwhile."""
        if interaction.type is not discord.InteractionType.modal_submit:
            await asyncio.sleep(HANDOFF_WAIT)
        try:
            await interaction.response.send_message(
                embeds=[discord.Embed(description=text, color=0xFEE75C)], ephemeral=True
            )
        except discord.HTTPException as exc:
            if exc.code == ALREADY_ACKNOWLEDGED:
                log.info(
                    "interaction %s answered by another instance while stopping", interaction.id
                )
            else:  # expired, or Discord failed: nothing ran either way
                log.warning(
                    "interaction %s not told flybot is restarting: %s %s",
                    interaction.id,
                    exc.status,
                    exc.code or exc.text,
                )

    def _run(
        self,
        invocation: Invocation,
        interaction: discord.Interaction[Any],
        thinking: bool,
        values: dict[str, str] | None = None,
    ) -> None:
        assert self.outbox is not None
        answers = DiscordInteraction(self.outbox, invocation, interaction, thinking)
        self.worker.spawn(
            self.dispatcher.handle(invocation, answers, values),
            name=f"discord {invocation.dedupe_key}",
        )

    async def on_interaction(self, interaction: discord.Interaction[Any]) -> None:
        if not self._intake:
            if interaction.type is discord.InteractionType.application_command:
                await self._closing(interaction)
            return
        with self.worker.answering():
            if interaction.type is discord.InteractionType.application_command:
                await self._on_command(interaction)
            elif interaction.type is discord.InteractionType.autocomplete:
                await self._on_autocomplete(interaction)

    async def _on_command(self, interaction: discord.Interaction[Any]) -> None:
        if interaction.guild_id is None:
            await self._refuse(interaction, "Use /fly in a server: flybot works in guilds only.")
            return
        try:
            line = tree.line_of(tree.chosen(self.services.registry, dict(interaction.data or {})))
        except tree.OptionsError as exc:
            await self._refuse(interaction, str(exc))
            return
        invocation = self._invocation(interaction, line)
        asked = self.dispatcher.secret_request(invocation)
        if asked is not None:
            await self._open_form(interaction, invocation, asked)
            return
        if await self._acknowledge(interaction, thinking=True):
            self._run(invocation, interaction, thinking=True)

    async def _open_form(
        self, interaction: discord.Interaction[Any], invocation: Invocation, asked: SecretRequest
    ) -> None:
        """The modal, as the first response: no deferral before it."""
        if len(asked.names) > MODAL_FIELDS:
            await self._refuse(
                interaction,
                f"One form takes {MODAL_FIELDS} values at most; you named {len(asked.names)}. "
                "Nothing was changed: split them over two commands.",
            )
            return
        try:
            await interaction.response.send_modal(SecretsModal(self, invocation, asked))
        except discord.HTTPException as exc:
            if exc.code not in (ALREADY_ACKNOWLEDGED, UNKNOWN_INTERACTION):
                log.warning("could not open the secrets form: %s", exc.status)

    async def on_submit(
        self, interaction: discord.Interaction[Any], invocation: Invocation, values: dict[str, str]
    ) -> None:
        if not self._intake:
            await self._closing(interaction, RESTARTING_FORM)
            return
        with self.worker.answering():
            if str(interaction.user.id) != invocation.user_id:
                log.warning("a secrets form submitted by someone else than who opened it")
                return
            if not await self._acknowledge(interaction, thinking=True):
                return
            submitted = Invocation(
                **{
                    **invocation.__dict__,
                    "dedupe_key": f"discord:{interaction.guild_id}:interaction:{interaction.id}",
                }
            )
            self._run(submitted, interaction, thinking=True, values=values)

    async def on_click(
        self, interaction: discord.Interaction[Any], action: str, value: str
    ) -> None:
        if not self._intake:
            await self._closing(interaction)
            return
        with self.worker.answering():
            if not await self._acknowledge(interaction):  # a component: a deferred update
                return
            line = self.services.registry.click_line(action, value)
            message = interaction.message
            invocation = self._invocation(interaction, line or "")
            if message is not None and invocation.thread_id is None:
                # the card heads a thread of the same id: the click's answers go there
                invocation = Invocation(**{**invocation.__dict__, "thread_id": str(message.id)})
            if line is None:
                assert self.outbox is not None
                answers = DiscordInteraction(self.outbox, invocation, interaction, False)
                note = Reply("That button does nothing any more.", tone="error")
                self.worker.spawn(answers.reply_private(note), name="discord stale button")
                return
            self._run(invocation, interaction, thinking=False)

    async def _on_autocomplete(self, interaction: discord.Interaction[Any]) -> None:
        try:
            found = tree.chosen(self.services.registry, dict(interaction.data or {}))
        except tree.OptionsError:
            return
        if found.focused is None:
            return
        invocation = self._invocation(interaction, "")
        given = {k: str(v) for k, v in found.options.items() if v is not None}
        offered = await asyncio.to_thread(
            suggestions,
            self.services,
            invocation,
            found.command,
            found.focused,
            given.pop(found.focused, ""),
            given,
        )
        integer = found.focused in {
            p.name for p in found.command.params if p.type.value_type == "integer"
        }
        choices = [
            discord.app_commands.Choice(name=s.label, value=int(s.value) if integer else s.value)
            for s in offered
        ]
        with contextlib.suppress(discord.HTTPException):
            await interaction.response.autocomplete(choices)
