"""A `Reply` as Discord embeds and buttons: escaped for Discord markdown, shrunk to its
limits (discord.com/developers/docs/resources/message#embed-object-embed-limits): a title of
256, a description of 4096, 25 fields of 256/1024, 10 embeds and 6000 characters across a
message's embeds, 5 buttons a row with labels of 80.
"""

from __future__ import annotations

import re
from typing import Any

from commands.reply import Fitted, Limits, Reply, fit_reply, render

_MARKDOWN = re.compile(r"([\\*_~`|>\[\]()<])")
_LINE_START = re.compile(r"^(\s*)([#\-+]|\d+\.)", re.MULTILINE)  # headings and list items
_BROADCAST = re.compile(r"@(everyone|here)\b", re.IGNORECASE)
_COLOUR = {"info": 0x5865F2, "success": 0x57F287, "warning": 0xFEE75C, "error": 0xED4245}
_STYLE = {"primary": 1, "default": 2, "danger": 4}


def _no_broadcast(text: str) -> str:
    return _BROADCAST.sub(lambda m: "@\u200b" + m.group(1), text)


def escape(text: str) -> str:
    """Untrusted text for Discord markdown: no formatting, no `[label](url)` link, no
    `<@id>`/`<#id>`/`<@&role>` mention and no @everyone/@here."""
    text = _MARKDOWN.sub(r"\\\1", text)
    return _no_broadcast(_LINE_START.sub(lambda m: m.group(1) + "\\" + m.group(2), text))


def escape_code(text: str) -> str:
    """Untrusted text inside a code block: it cannot close the block early."""
    return _no_broadcast(text.replace("```", "`\u200b``"))


def markdown(value: str) -> str:
    return render(value, escape)


LIMITS = Limits(
    title_chars=256,
    text_chars=4096,
    field_name_chars=256,
    field_value_chars=1024,
    fields=25,
    blocks=9,  # embeds: the head's description, the list, each code block
    message_chars=5800,  # of 6000 across a message's embeds, leaving room for the title
    button_label_chars=80,
    buttons=5,
    escape=escape,
    escape_code=escape_code,
)


def _embeds(part: Fitted) -> list[dict[str, Any]]:
    reply = part.reply
    colour = _COLOUR[reply.tone]
    head: dict[str, Any] = {"color": colour}
    if reply.title:
        head["title"] = markdown(reply.title)
    if reply.text:
        head["description"] = markdown(reply.text)
    if reply.fields:
        head["fields"] = [
            {"name": markdown(name), "value": markdown(value) or "\u200b", "inline": False}
            for name, value in reply.fields
        ]
    embeds = [head] if len(head) > 1 else []
    if reply.lines:
        embeds.append({"color": colour, "description": "\n".join(map(markdown, reply.lines))})
    for block in part.code_blocks:
        code = "\n".join(escape_code(line) for line in block)
        embeds.append({"color": colour, "description": f"```\n{code}\n```"})
    return embeds


def messages(reply: Reply) -> list[dict[str, Any]]:
    """The message bodies (POST /channels/{id}/messages, or an interaction follow-up) for
    `reply`; more than one when a long code block continues. Mentions are never parsed."""
    payloads = []
    for part in fit_reply(reply, LIMITS):
        payload: dict[str, Any] = {
            "embeds": _embeds(part),
            "allowed_mentions": {"parse": []},
        }
        if part.reply.buttons:
            payload["components"] = [
                {
                    "type": 1,
                    "components": [
                        {
                            "type": 2,
                            "style": _STYLE[b.style],
                            "label": b.label,
                            "custom_id": b.custom_id,
                        }
                        for b in part.reply.buttons
                    ],
                }
            ]
        payloads.append(payload)
    return payloads
