"""The secrets tests' world: project `shop` (dev, staging, prod; 4 web + 2 worker machines
each) in the Fly simulator on 127.0.0.1 (tests/flyharness.py), prod guarding secrets; bob a
deployer, carol an approver; a shell typed at, and the texts of every exception raised."""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import FrameType
from typing import Any

from rich.console import Console

from adapters.shell.session import ShellSession
from bot.store.principals import IdentityKey, add_grant, ensure_identity
from commands.dispatch import Dispatcher
from tests.flyharness import World, world

GUARDED = '"deploy", "rollback", "secrets"'  # prod: secrets need an approval


@asynccontextmanager
async def secrets_world(tmp_path: Path, **kwargs: Any) -> AsyncIterator[World]:
    async with world(tmp_path, guarded=GUARDED, **kwargs) as w:
        grant(w, "bob", "deployer")
        grant(w, "carol", "approver")
        grant(w, "vic", "viewer")
        yield w


def grant(w: World, user: str, role: str) -> None:
    engine = w.services.engine
    identity = ensure_identity(engine, IdentityKey("shell", "local", user), user)
    add_grant(engine, identity.principal_id, role, "*", "*", granted_by=None)


class Shell:
    """A `flybot shell` session on the world's services: a script typed into it, its screen
    kept (the session's own conversation is the shell's outbox, as in `flybot shell`)."""

    def __init__(self, w: World, user: str = "bob") -> None:
        self.screen = io.StringIO()
        console = Console(file=self.screen, width=200, no_color=True, soft_wrap=True)
        self.session = ShellSession(Dispatcher(w.services), user, console)
        w.services.router.register("shell", self.session.conversation)

    async def type(self, script: str) -> str:
        await self.session.run_script(io.StringIO(script))
        return self.screen.getvalue()


# How a generator or coroutine hands back its return value (a request body read, a line
# typed): control flow, not an error anything reports.
CONTROL_FLOW = (StopIteration, StopAsyncIteration, GeneratorExit)
FLY_SIDE = "bot.fly.simulator"


class RaisedTexts:
    """The text of every exception raised in this process (any thread started meanwhile
    too) while it is active: its type, str, repr and args, as a log line would show them.
    `CONTROL_FLOW` is left out: it carries return values, never reaches a log or a reply;
    so are exceptions inside the Fly simulator's own code, which is Fly's side of the wire
    (it holds the values, as Fly does) and only runs in this process for the test."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def _call(self, frame: FrameType, event: str, arg: Any) -> Any:
        frame.f_trace_lines = False
        return self._local

    def _local(self, frame: FrameType, event: str, arg: Any) -> Any:
        if (
            event == "exception"
            and not isinstance(arg[1], CONTROL_FLOW)
            and not str(frame.f_globals.get("__name__", "")).startswith(FLY_SIDE)
        ):
            exc = arg[1]
            try:
                self.texts.append(f"{type(exc).__name__}: {exc!s} | {exc!r} | {exc.args!r}")
            except Exception as failed:  # a broken __str__ is a text too
                self.texts.append(f"{type(exc).__name__}: <unprintable: {failed!r}>")
        return self._local

    def __enter__(self) -> RaisedTexts:
        threading.settrace(self._call)
        sys.settrace(self._call)
        return self

    def __exit__(self, *exc: object) -> None:
        sys.settrace(None)
        threading.settrace(None)  # type: ignore[arg-type]
