"""What the command layer sees of a chat platform. Adapters (Slack, Discord, the terminal)
build and implement these; commands never import a chat library.

- An `Invocation` is one command typed or clicked by one person. Secret values never travel
  in it: they come beside it, as `SecretValues` (see `commands.secret_input`).
- An `Interaction` answers that one invocation: a private (ephemeral) reply, a public answer,
  the parent message of a thread for its work. On Slack it is the ack and `response_url`,
  on Discord the interaction and its 15-minute token. (Acknowledging and opening forms are
  the adapter's, done before the pipeline runs; a verb's declared secret input tells the
  adapter which form to open.)
- An `Outbox` posts durable messages with the bot's own token, at any time, from any part of
  the process: a post in a channel, a thread reply, an edit. Deploy progress, the scheduler's
  expiry notices and the restart notice all go through one.
- A `MessageRef` names a message on one platform and workspace, so a stored ref lets a
  restarted bot keep posting in the same thread; the `Router` sends each post to the outbox
  of the ref's platform, so several adapters can share one process.
- `Button.action` + `Button.value` become a Slack `action_id`/`value` pair or a Discord
  persistent-view `custom_id` (`action:value`): ids only, so a click works after a restart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from commands.reply import Attachment, Button, ButtonStyle, Reply, Tone

__all__ = [
    "RESTARTING",
    "RESTARTING_FORM",
    "Attachment",
    "Button",
    "ButtonStyle",
    "ChannelRef",
    "Interaction",
    "Invocation",
    "MessageRef",
    "NoRoute",
    "Outbox",
    "Reply",
    "Router",
    "Tone",
]

log = logging.getLogger(__name__)

# What an adapter says, in the platform's own private way, to a delivery that arrives while
# the process stops taking commands (it is not run, and no other instance took it).
RESTARTING = "flybot is restarting: nothing was run. Try again in a minute."
RESTARTING_FORM = "flybot is restarting: nothing was set. Send the form again in a minute."


@dataclass(frozen=True)
class ChannelRef:
    """Where to post: a channel (and, optionally, a thread in it) on one platform."""

    platform: str  # "slack", "discord", "shell"
    workspace_id: str  # Slack team id, Discord guild id, "local" for the shell
    channel_id: str
    thread_id: str | None = None


@dataclass(frozen=True)
class MessageRef:
    """A posted message. `thread_id` is the thread it heads or sits in, if any."""

    platform: str
    workspace_id: str
    channel_id: str
    message_id: str
    thread_id: str | None = None

    @property
    def channel(self) -> ChannelRef:
        return ChannelRef(self.platform, self.workspace_id, self.channel_id, self.thread_id)


@dataclass(frozen=True)
class Invocation:
    """One command typed (or clicked) by one person on one platform."""

    platform: str
    workspace_id: str
    channel_id: str
    user_id: str  # the platform's immutable user id, never a display name
    display_name: str  # shown only; untrusted text
    text: str  # the command line without the leading "/fly"
    thread_id: str | None = None
    dedupe_key: str | None = None  # a platform delivery id: a retry of it is dropped

    @property
    def identity_key(self) -> str:
        return f"{self.platform}:{self.workspace_id}:{self.user_id}"

    @property
    def place(self) -> ChannelRef:
        return ChannelRef(self.platform, self.workspace_id, self.channel_id, self.thread_id)


class Interaction(Protocol):
    """The answers to one invocation, while it is being handled."""

    async def reply(self, reply: Reply) -> MessageRef:
        """Answer where the invocation came from, for everyone there to see."""
        ...

    async def reply_private(self, reply: Reply) -> None:
        """Show only to the person who typed the command (Slack/Discord ephemeral)."""
        ...

    async def start_thread(self, reply: Reply) -> MessageRef:
        """Post the parent message that this invocation's work will thread under."""
        ...


class Outbox(Protocol):
    """Durable posts with the bot's own token; safe from long-running work and schedulers."""

    async def post(self, where: ChannelRef, reply: Reply) -> MessageRef:
        """Post in a channel (in its thread, if `where` names one). Any posted message can
        head a thread: `post_in_thread` on its ref starts one where the platform needs it."""
        ...

    async def post_in_thread(self, thread: MessageRef, reply: Reply) -> MessageRef: ...

    async def update(self, message: MessageRef, reply: Reply) -> None:
        """Edit a message in place (Slack chat.update, Discord message edit)."""
        ...


class NoRoute(Exception):
    """No adapter for that platform runs in this process."""


class Router:
    """Platform -> the outbox of its adapter. It is itself an `Outbox` that sends each post
    to the platform named by its ref."""

    def __init__(self) -> None:
        self._outboxes: dict[str, Outbox] = {}

    def register(self, platform: str, outbox: Outbox) -> None:
        self._outboxes[platform] = outbox

    def unregister(self, platform: str) -> None:
        self._outboxes.pop(platform, None)

    @property
    def platforms(self) -> tuple[str, ...]:
        return tuple(self._outboxes)

    def outbox(self, platform: str) -> Outbox:
        try:
            return self._outboxes[platform]
        except KeyError:
            running = ", ".join(self._outboxes) or "none"
            raise NoRoute(f"no {platform or '?'} adapter runs here (running: {running})") from None

    async def post(self, where: ChannelRef, reply: Reply) -> MessageRef:
        return await self.outbox(where.platform).post(where, reply)

    async def post_in_thread(self, thread: MessageRef, reply: Reply) -> MessageRef:
        return await self.outbox(thread.platform).post_in_thread(thread, reply)

    async def update(self, message: MessageRef, reply: Reply) -> None:
        await self.outbox(message.platform).update(message, reply)


class ThreadInteraction:
    """The interaction of work that has no person waiting on it (a request run by the
    sweep): every answer, private ones included, goes into its thread."""

    def __init__(self, outbox: Outbox, thread: MessageRef) -> None:
        self.outbox = outbox
        self.thread = thread

    async def reply(self, reply: Reply) -> MessageRef:
        return await self.outbox.post_in_thread(self.thread, reply)

    async def reply_private(self, reply: Reply) -> None:
        await self.outbox.post_in_thread(self.thread, reply)

    async def start_thread(self, reply: Reply) -> MessageRef:
        await self.outbox.update(self.thread, reply)
        return self.thread
