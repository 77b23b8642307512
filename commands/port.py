"""What the command layer sees of a chat platform: an `Invocation` in, a `Conversation` out.

Adapters (Slack, Discord, the terminal) build these; commands never import a chat library.
The shapes map onto every platform without change:

- `MessageRef` is a Slack (channel, ts, thread_ts) or a Discord (channel, message id, thread
  channel id); a stored ref lets a restarted bot keep posting in the same thread.
- `Button.action` + `Button.value` become a Slack `action_id`/`value` pair or a Discord
  persistent-view `custom_id` (`action:value`): they carry only ids, so a click works after a
  restart and on any bot instance.
- `ask_secret` is a Slack modal, a Discord modal, or a terminal prompt without echo.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

Tone = Literal["info", "success", "warning", "error"]
ButtonStyle = Literal["primary", "danger", "default"]


@dataclass(frozen=True)
class Invocation:
    """One command typed (or clicked) by one person on one platform."""

    platform: str  # "slack", "discord", "shell"
    workspace_id: str  # Slack team id, Discord guild id, "local" for the shell
    channel_id: str
    user_id: str  # the platform's immutable user id, never a display name
    display_name: str
    text: str  # the command line without the leading "/fly"
    thread_id: str | None = None
    dedupe_key: str | None = None  # a platform delivery id: a retry of it is dropped

    @property
    def identity_key(self) -> str:
        return f"{self.platform}:{self.workspace_id}:{self.user_id}"


@dataclass(frozen=True)
class MessageRef:
    channel_id: str
    message_id: str
    thread_id: str | None = None


@dataclass(frozen=True)
class Button:
    label: str
    action: str  # stable id, e.g. "approval.approve"
    value: str  # the object it acts on, e.g. a request id
    command: str  # the same action typed out, e.g. "approve 12"
    style: ButtonStyle = "default"

    @property
    def custom_id(self) -> str:
        return f"{self.action}:{self.value}"


@dataclass(frozen=True)
class Reply:
    """A message, described once and rendered by each adapter in its own way."""

    text: str
    tone: Tone = "info"
    title: str | None = None
    fields: tuple[tuple[str, str], ...] = ()
    buttons: tuple[Button, ...] = ()
    lines: tuple[str, ...] = field(default=())  # a list or table body, one entry per line

    def plain(self) -> str:
        parts = [self.title] if self.title else []
        parts.append(self.text)
        parts.extend(f"{name}: {value}" for name, value in self.fields)
        parts.extend(self.lines)
        return "\n".join(p for p in parts if p)


class Conversation(Protocol):
    """Where a command speaks. Every method is safe to call from long-running work."""

    async def reply(self, reply: Reply) -> MessageRef:
        """Post where the invocation came from (inside its thread, if it came from one)."""
        ...

    async def reply_private(self, reply: Reply) -> None:
        """Show only to the person who typed the command (Slack/Discord ephemeral)."""
        ...

    async def start_thread(self, reply: Reply) -> MessageRef:
        """Post a parent message that progress and follow-ups will thread under."""
        ...

    async def post_in_thread(self, thread: MessageRef, reply: Reply) -> MessageRef: ...

    async def update(self, message: MessageRef, reply: Reply) -> None:
        """Edit a message in place (Slack chat.update, Discord message edit)."""
        ...

    async def ask_secret(self, prompt: str) -> str | None:
        """Ask the invoker privately for a value; None when they cancel."""
        ...
