"""Machines of one batch report side by side: while one line is being posted (a chat call in
flight), another machine's line arrives. Each line is posted once, in order, and the deploy
never stops on it (seen first as `IndexError: pop from empty list` rolling back a 12-machine
deploy through Slack in bench/memory.py)."""

from __future__ import annotations

import asyncio

from bot.deploy.engine import _SafeReporter


class SlowChat:
    """A reporter whose every post takes a moment, as a chat API call does."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    async def step(self, text: str, tone: str = "info") -> None:
        await asyncio.sleep(0.01)
        self.lines.append(text)

    async def progress(self, done: int, total: int) -> None:
        await asyncio.sleep(0)

    async def flush(self, final: bool = False) -> None:
        await asyncio.sleep(0)


async def test_lines_of_machines_reporting_at_once_are_posted_once_each_in_order() -> None:
    chat = SlowChat()
    safe = _SafeReporter(chat)
    lines = [f"✓ machine {n} healthy" for n in range(12)]
    await asyncio.gather(*(safe.step(line) for line in lines))
    assert chat.lines == lines
    assert safe.backlog == []
