"""The terminal's Conversation: messages printed in order, threads indented under their parent."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable

from rich.console import Console
from rich.markup import escape

from commands.port import MessageRef, Reply

_STYLE = {"info": "", "success": "green", "warning": "yellow", "error": "bold red"}
_MARK = {"info": "", "success": "✓ ", "warning": "! ", "error": "✗ "}
CHANNEL = "terminal"


class ShellConversation:
    """Renders `Reply`s on a rich Console. One instance serves the whole shell session."""

    def __init__(
        self, console: Console, read_secret: Callable[[str], Awaitable[str | None]]
    ) -> None:
        self.console = console
        self._read_secret = read_secret
        self._ids = itertools.count(1)

    def _print(self, reply: Reply, indent: str, prefix: str = "") -> None:
        style = _STYLE[reply.tone]
        head = f"{indent}{prefix}{_MARK[reply.tone]}"
        body = [reply.title] if reply.title else []
        if reply.text:
            body.append(reply.text)
        if not body and not prefix:  # a bare list (e.g. thread progress): no empty head line
            lines, inner = reply.lines, indent
        else:
            for i, line in enumerate(body or [""]):
                text = escape(f"{head if i == 0 else indent + '  '}{line}")
                self.console.print(f"[{style}]{text}[/]" if style else text, highlight=False)
            lines, inner = reply.lines, indent + "  "
        for name, value in reply.fields:
            self.console.print(escape(f"{indent}  {name}: {value}"), highlight=False)
        for line in lines:
            self.console.print(escape(f"{inner}{line}"), highlight=False)
        for button in reply.buttons:
            self.console.print(
                escape(f"{indent}  [{button.label}] → type: {button.command}"),
                style="cyan",
                highlight=False,
            )

    async def reply(self, reply: Reply) -> MessageRef:
        ref = MessageRef(CHANNEL, str(next(self._ids)))
        self._print(reply, "  ")
        return ref

    async def reply_private(self, reply: Reply) -> None:
        self._print(reply, "  ", prefix="(only you) ")

    async def start_thread(self, reply: Reply) -> MessageRef:
        message_id = str(next(self._ids))
        self._print(reply, "  ", prefix=f"#{message_id} ")
        return MessageRef(CHANNEL, message_id, thread_id=message_id)

    async def post_in_thread(self, thread: MessageRef, reply: Reply) -> MessageRef:
        ref = MessageRef(CHANNEL, str(next(self._ids)), thread_id=thread.thread_id)
        self._print(reply, "    │ ")
        return ref

    async def update(self, message: MessageRef, reply: Reply) -> None:
        # A terminal cannot edit what it printed: show the new state in one line (the rest
        # of the message, such as a plan, was printed with the original).
        line = " — ".join(p for p in (reply.title, reply.text) if p)
        self._print(
            Reply(text=line, tone=reply.tone, buttons=reply.buttons),
            "  ",
            prefix=f"#{message.message_id} (updated) ",
        )

    async def ask_secret(self, prompt: str) -> str | None:
        return await self._read_secret(prompt)
