"""The terminal's side of the port: messages printed in order, threads indented under their
parent. One instance is both the shell's `Interaction` (answers to the line being handled)
and its `Outbox` (durable posts: deploy progress, the scheduler's notices)."""

from __future__ import annotations

import itertools
import re
import tempfile
from pathlib import Path

from rich.console import Console
from rich.markup import escape as rich_escape

from commands.port import ChannelRef, MessageRef, Reply
from commands.reply import render

_STYLE = {"info": "", "success": "green", "warning": "yellow", "error": "bold red"}
_MARK = {"info": "", "success": "✓ ", "warning": "! ", "error": "✗ "}
PLATFORM = "shell"
WORKSPACE = "local"
CHANNEL = "terminal"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def escape(text: str) -> str:
    """Untrusted text for a terminal: no control characters (an escape sequence in a check's
    output could rewrite the screen)."""
    return _CONTROL.sub("�", text)


def show(value: str) -> str:
    """A reply's text as printed: untrusted parts cleaned, then rich markup escaped."""
    return rich_escape(render(value, escape))


class ShellConversation:
    """Renders `Reply`s on a rich Console. One instance serves the whole shell session."""

    def __init__(self, console: Console, files_dir: Path | None = None) -> None:
        self.console = console
        self._ids = itertools.count(1)
        self._files_dir = files_dir

    def _save(self, name: str, data: bytes) -> Path:
        """A file sent with a message (a chart) is saved; the terminal shows its path."""
        if self._files_dir is None:
            self._files_dir = Path(tempfile.mkdtemp(prefix="flybot-files-"))
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:100] or "file"
        path = self._files_dir / f"{next(self._ids)}-{safe}"
        path.write_bytes(data)
        return path

    def _ref(self, thread_id: str | None = None) -> MessageRef:
        return MessageRef(PLATFORM, WORKSPACE, CHANNEL, str(next(self._ids)), thread_id)

    def _print(self, reply: Reply, indent: str, prefix: str = "") -> None:
        style = _STYLE[reply.tone]
        head = f"{indent}{prefix}{_MARK[reply.tone]}"
        body = [reply.title] if reply.title else []
        if reply.text:
            body.append(reply.text)
        rows = (*reply.lines, *reply.code)
        if not body and not prefix:  # a bare list (e.g. thread progress): no empty head line
            inner = indent
        else:
            for i, line in enumerate(body or [""]):
                text = rich_escape(head if i == 0 else indent + "  ") + show(line)
                self.console.print(f"[{style}]{text}[/]" if style else text, highlight=False)
            inner = indent + "  "
        for name, value in reply.fields:
            self.console.print(
                f"{rich_escape(indent)}  {show(name)}: {show(value)}", highlight=False
            )
        for line in rows:
            self.console.print(rich_escape(inner) + show(line), highlight=False)
        for button in reply.buttons:
            self.console.print(
                rich_escape(f"{indent}  [{button.label}] → type: {button.command}"),
                style="cyan",
                highlight=False,
            )
        for attachment in reply.files:
            path = self._save(attachment.filename, attachment.data)
            self.console.print(
                rich_escape(f"{indent}  📎 {attachment.title or attachment.filename}: {path}"),
                highlight=False,
            )

    # --- Interaction ---------------------------------------------------------------------

    async def reply(self, reply: Reply) -> MessageRef:
        self._print(reply, "  ")
        return self._ref()

    async def reply_private(self, reply: Reply) -> None:
        self._print(reply, "  ", prefix="(only you) ")

    async def start_thread(self, reply: Reply) -> MessageRef:
        ref = self._ref()
        self._print(reply, "  ", prefix=f"#{ref.message_id} ")
        return MessageRef(PLATFORM, WORKSPACE, CHANNEL, ref.message_id, ref.message_id)

    # --- Outbox --------------------------------------------------------------------------

    async def post(self, where: ChannelRef, reply: Reply) -> MessageRef:
        return await self.reply(reply)

    async def post_in_thread(self, thread: MessageRef, reply: Reply) -> MessageRef:
        self._print(reply, "    │ ")
        return self._ref(thread.thread_id)

    async def update(self, message: MessageRef, reply: Reply) -> None:
        # A terminal cannot edit what it printed: show the new state in one line (the rest
        # of the message, such as a plan, was printed with the original).
        line = " — ".join(p for p in (reply.title, reply.text) if p)
        self._print(
            Reply(text=line, tone=reply.tone, buttons=reply.buttons),
            "  ",
            prefix=f"#{message.message_id} (updated) ",
        )
