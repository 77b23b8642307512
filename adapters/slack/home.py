"""The App Home tab, in Block Kit: the person's pending approvals with their buttons, then
every stage's current image and last release (commands/home.py says what is in it)."""

from __future__ import annotations

from typing import Any

from adapters.slack.render import blocks_of
from commands.home import Overview
from commands.reply import Reply

MAX_BLOCKS = 100  # a Home view's limit
MAX_CARDS = 8  # more pending requests than this are summed up, not shown


def view(shown: Overview) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": "Pending approvals"}}
    ]
    if not shown.pending:
        blocks.append(_note("Nothing is waiting for approval."))
    for card in shown.pending[:MAX_CARDS]:
        blocks.extend(blocks_of(card))
        blocks.append({"type": "divider"})
    if len(shown.pending) > MAX_CARDS:
        more = len(shown.pending) - MAX_CARDS
        blocks.append(_note(f"… and {more} more: `/fly pending` lists them all."))
    stages = blocks_of(shown.stages)
    room = MAX_BLOCKS - len(blocks)
    blocks.extend(stages[:room])
    return {"type": "home", "blocks": blocks[:MAX_BLOCKS]}


def _note(text: str) -> dict[str, Any]:
    return blocks_of(Reply(text=text))[0]
