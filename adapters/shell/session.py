"""`flybot shell`: a terminal chat. Each line is a `/fly …` command (the `/fly` is optional).

On a terminal it is an interactive prompt with history and colours (prompt_toolkit, rich);
otherwise it reads a script from stdin and echoes each line, so it can be driven by tests.
`as <user>` switches who is typing.
"""

from __future__ import annotations

import asyncio
import getpass
import re
import sys
from pathlib import Path
from typing import TextIO

from rich.console import Console

from adapters.shell.conversation import CHANNEL, ShellConversation
from bot.app import recover_interrupted, start_scheduler
from commands.context import Services
from commands.dispatch import Dispatcher
from commands.port import Invocation

PLATFORM = "shell"
WORKSPACE = "local"
_USER = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class ShellSession:
    def __init__(self, dispatcher: Dispatcher, user: str, console: Console) -> None:
        self.dispatcher = dispatcher
        self.jobs = dispatcher.services.jobs
        self.user = user
        self.console = console
        self._script: TextIO | None = None
        self.conversation = ShellConversation(console, self._read_secret)

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
        await self.dispatcher.handle(invocation, self.conversation)
        return True

    async def run_script(self, stream: TextIO) -> None:
        self._script = stream
        while line := await self._read_line():
            if line.strip() and not line.strip().startswith("#"):
                self.console.print(f"{self.user}> {line.strip()}", style="bold", highlight=False)
            if not await self.run_line(line):
                break
        await self.jobs.wait_all()

    async def run_interactive(self, history_file: Path | None) -> None:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory, InMemoryHistory
        from prompt_toolkit.patch_stdout import patch_stdout

        history = FileHistory(str(history_file)) if history_file else InMemoryHistory()
        prompt: PromptSession[str] = PromptSession(history=history)
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
    services: Services,
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
    session = ShellSession(Dispatcher(services), user, console)
    if banner:
        console.print(banner, style="dim", highlight=False)
    await recover_interrupted(services, session.conversation)
    scheduler = start_scheduler(services, session.conversation)
    try:
        if interactive:
            await session.run_interactive(history_file)
        else:
            await session.run_script(stream)
    finally:
        scheduler.shutdown(wait=False)
