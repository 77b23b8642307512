"""`flybot shell`: a terminal chat. Each line is a `/fly …` command (the `/fly` is optional).

On a terminal it is an interactive prompt with history and colours (prompt_toolkit, rich);
otherwise it reads a script from stdin and echoes each line, so it can be driven by tests.
`as <user>` switches who is typing. A verb that declares secret input gets its values from
a no-echo prompt (scripted: the next lines, never echoed), before it runs.
"""

from __future__ import annotations

import asyncio
import getpass
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TextIO

from prompt_toolkit.history import FileHistory, History, InMemoryHistory
from rich.console import Console

from adapters.shell.conversation import CHANNEL, PLATFORM, WORKSPACE, ShellConversation
from bot.runtime import Runtime
from commands.dispatch import Dispatcher
from commands.port import Invocation

_USER = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class GuardedHistory(History):
    """A prompt history that never keeps a line whose verb takes sensitive input."""

    def __init__(self, inner: History, is_sensitive: Callable[[str], bool]) -> None:
        super().__init__()
        self.inner = inner
        self.is_sensitive = is_sensitive

    def load_history_strings(self) -> Iterable[str]:
        return self.inner.load_history_strings()

    def store_string(self, string: str) -> None:
        # History.append_string keeps the line for this session's recall, then stores it.
        if not self.is_sensitive(string):
            self.inner.store_string(string)


class ShellSession:
    def __init__(self, dispatcher: Dispatcher, user: str, console: Console) -> None:
        self.dispatcher = dispatcher
        self.jobs = dispatcher.services.jobs
        self.user = user
        self.console = console
        self._script: TextIO | None = None
        self.conversation = ShellConversation(console)

    async def _read_line(self) -> str:
        """The next script line, read off the event loop so deploys keep running meanwhile."""
        assert self._script is not None
        return await asyncio.get_running_loop().run_in_executor(None, self._script.readline)

    async def _read_secret(self, prompt: str) -> str | None:
        if self._script is None:  # interactive: no echo
            try:
                value = await asyncio.get_running_loop().run_in_executor(
                    None, getpass.getpass, f"{prompt} (hidden): "
                )
            except (EOFError, KeyboardInterrupt):
                return None
            return value or None
        # Scripted: the value is the next line, and it is never echoed.
        value = await self._read_line()
        self.console.print(f"  {prompt} (hidden): ********", highlight=False)
        return value.rstrip("\n") or None

    async def run_line(self, line: str) -> bool:
        """Handle one line; False when the session should end."""
        text = line.strip()
        if not text or text.startswith("#"):
            return True
        if text in ("quit", "exit"):
            return False
        if text == "wait":  # a shell-only word: let background work (deploys) finish
            await self.jobs.wait_all()
            return True
        if text == "as" or text.startswith("as "):
            name = text[3:].strip().lstrip("@")
            if not _USER.match(name):
                self.console.print("  ✗ Usage: as <user> (letters, digits, . _ -)", style="red")
            else:
                self.user = name
                self.console.print(f"  (now typing as {name})", style="dim")
            return True
        invocation = Invocation(
            platform=PLATFORM,
            workspace_id=WORKSPACE,
            channel_id=CHANNEL,
            user_id=self.user,
            display_name=self.user,
            text=text,
        )
        values: dict[str, str] = {}
        asked = self.dispatcher.secret_request(invocation)
        if asked is not None:
            for name in asked.names:
                value = await self._read_secret(f"value of {name}")
                if value is None:
                    self.console.print(f"  (cancelled: no value for {name})", style="dim")
                    return True
                values[name] = value
        await self.dispatcher.handle(invocation, self.conversation, values)
        return True

    async def run_script(self, stream: TextIO) -> None:
        self._script = stream
        while line := await self._read_line():
            if line.strip() and not line.strip().startswith("#"):
                shown = self.dispatcher.shown_line(line.strip())
                self.console.print(f"{self.user}> {shown}", style="bold", highlight=False)
            if not await self.run_line(line):
                break
        await self.jobs.wait_all()

    def history(self, history_file: Path | None) -> History:
        inner = FileHistory(str(history_file)) if history_file else InMemoryHistory()
        return GuardedHistory(inner, self.dispatcher.is_sensitive)

    async def run_interactive(self, history_file: Path | None) -> None:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.patch_stdout import patch_stdout

        prompt: PromptSession[str] = PromptSession(history=self.history(history_file))
        self.console.print(
            "flybot shell — type `help`, `as <user>` to switch user, `wait` to wait for "
            "deploys, `quit` to leave.",
            style="dim",
        )
        with patch_stdout(raw=True):  # background progress prints above the prompt
            while True:
                try:
                    line = await prompt.prompt_async(f"{self.user}> ")
                except (EOFError, KeyboardInterrupt):
                    break
                if not await self.run_line(line):
                    break
        if self.jobs.running:
            self.console.print("Waiting for running deploys to finish…", style="dim")
            await self.jobs.wait_all()


async def run_shell(
    runtime: Runtime,
    user: str,
    history_file: Path | None = None,
    stdin: TextIO | None = None,
    banner: str = "",
) -> None:
    stream = stdin or sys.stdin
    interactive = stream.isatty()
    console = (
        Console(highlight=False)
        if interactive
        else Console(no_color=True, width=200, soft_wrap=True, highlight=False)
    )
    session = ShellSession(runtime.dispatcher, user, console)
    runtime.attach(PLATFORM, session.conversation)
    if banner:
        console.print(banner, style="dim", highlight=False)
    await runtime.start()
    try:
        if interactive:
            await session.run_interactive(history_file)
        else:
            await session.run_script(stream)
    finally:
        await runtime.stop()
