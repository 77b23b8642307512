"""Discord's side of the port.

- `DiscordOutbox` posts with the bot token (the bot's own channel messages: POST, PATCH
  /channels/{id}/messages, threads from a message): deploy progress, approval cards' edits,
  the scheduler's notices. It never uses an interaction's webhook, whose token dies after 15
  minutes. A `MessageRef` is (guild, channel, message, thread): a message in a thread has the
  thread as its channel; a thread started from a message has that message's id.
- `DiscordInteraction` answers one slash command, click or modal submission, all acknowledged
  (deferred) before the pipeline runs: the first public answer replaces the deferred
  "thinking…" response (the message a thread then starts from), private answers are
  ephemeral follow-ups (flags 64). Past the token's life, answers go through the outbox (a
  private one as a direct message).

discord.py's client lives on the loop that serves the gateway; these are called from the
work loop too, so every call hops onto the client's loop (`ClientLoop`).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
from collections.abc import Coroutine, Sequence
from datetime import timedelta
from typing import Any, TypeVar

import discord
from discord.http import Route, handle_message_parameters

from adapters.discord import render
from adapters.discord.buttons import view_of
from bot.clock import utcnow
from commands.port import ChannelRef, Invocation, MessageRef, Reply
from commands.reply import Attachment

log = logging.getLogger(__name__)

PLATFORM = "discord"
TOKEN_LIFE = timedelta(minutes=14)  # Discord's is 15: leave a margin
THREAD_EXISTS = 160004  # "A thread has already been created for this message"
THREAD_ARCHIVE_MINUTES = 1440
T = TypeVar("T")


class ClientLoop:
    """Runs a coroutine on the loop discord.py's client (and its HTTP session) belongs to."""

    def __init__(self) -> None:
        self.loop: asyncio.AbstractEventLoop | None = None

    async def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self.loop is None or asyncio.get_running_loop() is self.loop:
            return await coroutine
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self.loop))


def thread_name(reply: Reply) -> str:
    name = " ".join((reply.title or reply.text or "flybot").split())
    return name[:100] or "flybot"


def _for_edit(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "components": payload.get("components", [])}  # none: buttons removed


class DiscordOutbox:
    """Durable posts with the bot token, in any guild the bot is in."""

    def __init__(self, client: discord.Client, hop: ClientLoop) -> None:
        self.client = client
        self.hop = hop

    async def _request(self, route: Route, payload: dict[str, Any] | None = None) -> Any:
        return await self.hop.run(self.client.http.request(route, json=payload))

    async def _send(
        self, channel: str, payload: dict[str, Any], attachments: Sequence[Attachment] = ()
    ) -> str:
        route = Route("POST", "/channels/{channel_id}/messages", channel_id=channel)
        if not attachments:
            answer = await self._request(route, payload)
        else:  # discord.py builds the multipart body: payload_json beside files[n]
            with handle_message_parameters(
                embeds=_embeds(payload),
                view=view_of(payload),
                files=_files(attachments),
                allowed_mentions=discord.AllowedMentions.none(),
            ) as params:
                answer = await self.hop.run(
                    self.client.http.request(route, form=params.multipart, files=params.files)
                )
        return str(answer["id"])

    async def _post_all(self, channel: str, reply: Reply) -> str:
        first, *more = render.messages(reply)
        message_id = await self._send(channel, first, reply.files)
        for extra in more:  # a long code block continues below
            await self._send(channel, extra)
        return message_id

    async def post(self, where: ChannelRef, reply: Reply) -> MessageRef:
        channel = where.thread_id or where.channel_id
        message_id = await self._post_all(channel, reply)
        return MessageRef(PLATFORM, where.workspace_id, channel, message_id, where.thread_id)

    async def thread_from(self, message: MessageRef, name: str) -> str:
        """The thread started from `message` (a new one, or the one it already has)."""
        if message.thread_id:
            return message.thread_id
        route = Route(
            "POST",
            "/channels/{channel_id}/messages/{message_id}/threads",
            channel_id=message.channel_id,
            message_id=message.message_id,
        )
        try:
            thread = await self._request(
                route, {"name": name, "auto_archive_duration": THREAD_ARCHIVE_MINUTES}
            )
        except discord.HTTPException as exc:
            if exc.code != THREAD_EXISTS:
                raise
            return message.message_id  # a thread from a message has the message's id
        return str(thread["id"])

    async def post_in_thread(self, thread: MessageRef, reply: Reply) -> MessageRef:
        thread_id = await self.thread_from(thread, thread_name(reply))
        message_id = await self._post_all(thread_id, reply)
        return MessageRef(PLATFORM, thread.workspace_id, thread_id, message_id, thread_id)

    async def update(self, message: MessageRef, reply: Reply) -> None:
        first, *more = render.messages(reply)
        route = Route(
            "PATCH",
            "/channels/{channel_id}/messages/{message_id}",
            channel_id=message.channel_id,
            message_id=message.message_id,
        )
        await self._request(route, _for_edit(first))
        if more:
            thread_id = await self.thread_from(message, thread_name(reply))
            for extra in more:
                await self._send(thread_id, extra)

    async def direct(self, user_id: str, reply: Reply) -> None:
        """A direct message: where a private answer goes once its interaction has expired."""
        dm = await self._request(Route("POST", "/users/@me/channels"), {"recipient_id": user_id})
        await self._post_all(str(dm["id"]), reply)


def _files(attachments: Sequence[Attachment]) -> list[discord.File]:
    return [
        discord.File(io.BytesIO(a.data), filename=a.filename, description=a.title or None)
        for a in attachments
    ]


def _embeds(payload: dict[str, Any]) -> list[discord.Embed]:
    return [discord.Embed.from_dict(e) for e in payload.get("embeds", [])]


class DiscordInteraction:
    """The answers to one acknowledged interaction (see the module docstring)."""

    def __init__(
        self,
        outbox: DiscordOutbox,
        invocation: Invocation,
        interaction: discord.Interaction[Any],
        thinking: bool,
    ) -> None:
        self.outbox = outbox
        self.invocation = invocation
        self.interaction = interaction
        self.hop = outbox.hop
        self._thinking = thinking  # a deferred response waits to be replaced
        self._born = utcnow()

    @property
    def place(self) -> ChannelRef:
        return self.invocation.place

    @property
    def _token_alive(self) -> bool:
        return utcnow() - self._born < TOKEN_LIFE

    async def reply(self, reply: Reply) -> MessageRef:
        if not (self._thinking and self._token_alive):
            return await self.outbox.post(self.place, reply)
        self._thinking = False
        first, *more = render.messages(reply)
        message = await self.hop.run(self._edit_original(first, reply.files))
        channel = str(message.channel.id) if message.channel else self.invocation.channel_id
        posted = MessageRef(
            PLATFORM,
            self.invocation.workspace_id,
            channel,
            str(message.id),
            self.invocation.thread_id,
        )
        for extra in more:
            await self.outbox._send(channel, extra)
        return posted

    async def _edit_original(
        self, payload: dict[str, Any], attachments: Sequence[Attachment] = ()
    ) -> discord.InteractionMessage:
        view = view_of(payload)
        extra: dict[str, Any] = {"view": view} if view is not None else {}
        if attachments:
            extra["attachments"] = _files(attachments)
        return await self.interaction.edit_original_response(
            embeds=_embeds(payload), allowed_mentions=discord.AllowedMentions.none(), **extra
        )

    async def reply_private(self, reply: Reply) -> None:
        if not self._token_alive:
            await self.outbox.direct(self.invocation.user_id, reply)
            return
        await self.hop.run(self._private(reply))

    async def _private(self, reply: Reply) -> None:
        if self._thinking:
            # a deferred response is public: a private answer replaces it by going away
            self._thinking = False
            with contextlib.suppress(discord.NotFound):
                await self.interaction.delete_original_response()
        for payload in render.messages(reply):
            await self.interaction.followup.send(
                embeds=_embeds(payload),
                ephemeral=True,
                allowed_mentions=discord.AllowedMentions.none(),
                wait=True,
            )

    async def start_thread(self, reply: Reply) -> MessageRef:
        """The answer, and the thread started from it; typed inside a thread (Discord has no
        threads in threads), the work reports in that thread."""
        posted = await self.reply(reply)
        if self.invocation.thread_id:
            return MessageRef(
                PLATFORM,
                posted.workspace_id,
                posted.channel_id,
                posted.message_id,
                self.invocation.thread_id,
            )
        thread = await self.outbox.thread_from(posted, thread_name(reply))
        return MessageRef(
            PLATFORM, posted.workspace_id, posted.channel_id, posted.message_id, thread
        )
