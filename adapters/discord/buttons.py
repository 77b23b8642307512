"""Buttons as a persistent view: every button's custom_id is `action:value` (ids only, e.g.
`approval.approve:12`), the view never times out, and one dynamic item, registered when the
client starts, catches a click on any message carrying such a button, including messages
sent before a restart. The click runs the line the registry declares for the action.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import discord

ClickHandler = Callable[[discord.Interaction[Any], str, str], Awaitable[None]]
_STYLE = {
    1: discord.ButtonStyle.primary,
    2: discord.ButtonStyle.secondary,
    4: discord.ButtonStyle.danger,
}
TEMPLATE = r"(?P<action>[a-z][a-z0-9_.]{0,60}):(?P<value>[A-Za-z0-9_.:-]{1,90})"


class CardButton(
    discord.ui.DynamicItem[discord.ui.Button[Any]],
    template=TEMPLATE,
):
    """One button of a card; its click goes to the handler the client was given."""

    def __init__(
        self,
        action: str,
        value: str,
        label: str = "",
        style: discord.ButtonStyle = discord.ButtonStyle.secondary,
    ) -> None:
        super().__init__(
            discord.ui.Button(label=label or action, style=style, custom_id=f"{action}:{value}")
        )
        self.action = action
        self.value = value

    @classmethod
    async def from_custom_id(
        cls,
        interaction: discord.Interaction[Any],
        item: discord.ui.Item[Any],
        match: Any,
        /,
    ) -> CardButton:
        return cls(match["action"], match["value"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        handler: ClickHandler | None = getattr(interaction.client, "on_click", None)
        if handler is not None:
            await handler(interaction, self.action, self.value)


def view_of(payload: dict[str, Any]) -> discord.ui.View | None:
    """The rendered message's buttons as a view (timeout=None), or None when it has none."""
    buttons = [b for row in payload.get("components", []) for b in row.get("components", [])]
    if not buttons:
        return None
    view = discord.ui.View(timeout=None)
    for button in buttons:
        action, _, value = str(button["custom_id"]).partition(":")
        style = _STYLE.get(int(button.get("style", 2)), discord.ButtonStyle.secondary)
        view.add_item(CardButton(action, value, str(button.get("label", "")), style))
    return view
