"""A `Reply` as Slack Block Kit: escaped for mrkdwn, shrunk to Slack's limits.

Limits (api.slack.com/reference/block-kit): 50 blocks a message, 3000 characters in a
section's text, 10 fields of 2000 a section, 150 in a header, 75 in a button's label. Slack
documents 40 000 characters for a message's text, but rejects blocks well before that
(msg_blocks_too_long near 13 000 characters, slackapi/bolt-js#2509): a message keeps to
12 000 and the rest goes into continuation messages.
"""

from __future__ import annotations

import re
from typing import Any

from commands.reply import Fitted, Limits, Reply, fit_reply, render

_SPECIAL = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}
_BROADCAST = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)
_TONE = {"info": "", "success": ":white_check_mark: ", "warning": ":warning: ", "error": ":x: "}


def escape(text: str) -> str:
    """Untrusted text for mrkdwn: `<!channel>`, `<@U…>` and `<url|label>` become plain text;
    a bare @channel gets a zero-width joiner so no client setting turns it into a ping."""
    text = "".join(_SPECIAL.get(c, c) for c in text)
    return _BROADCAST.sub(lambda m: "@\u2060" + m.group(1), text)


def mrkdwn(value: str) -> str:
    return render(value, escape)


LIMITS = Limits(
    title_chars=150,
    text_chars=3000,
    field_name_chars=100,
    field_value_chars=1800,
    fields=10,
    blocks=45,  # besides the header, the fields section and the actions block
    message_chars=12_000,
    button_label_chars=75,
    buttons=5,
    escape=escape,
    escape_code=escape,
)


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _blocks(part: Fitted) -> list[dict[str, Any]]:
    reply = part.reply
    blocks: list[dict[str, Any]] = []
    if reply.title:
        title = reply.title.replace("\n", " ")  # plain_text: shown as is, never parsed
        blocks.append({"type": "header", "text": {"type": "plain_text", "text": title}})
    if reply.text:
        blocks.append(_section(_TONE[reply.tone] + mrkdwn(reply.text)))
    if reply.fields:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{mrkdwn(name)}*\n{mrkdwn(value)}"}
                    for name, value in reply.fields
                ],
            }
        )
    if reply.lines:
        blocks.append(_section("\n".join(mrkdwn(line) for line in reply.lines)))
    for block in part.code_blocks:
        blocks.append(_section("```\n" + "\n".join(escape(line) for line in block) + "\n```"))
    if reply.buttons:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": b.label},
                        "action_id": b.action,
                        "value": b.value,
                        **({"style": b.style} if b.style != "default" else {}),
                    }
                    for b in reply.buttons
                ],
            }
        )
        typed = " or ".join(f"`/fly {b.command}`" for b in reply.buttons)
        blocks.append(_context(f"Or type {typed}"))
    return blocks


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:3000]}]}


def blocks_of(reply: Reply) -> list[dict[str, Any]]:
    """The blocks of the reply's first message, shrunk to Slack's limits (for views)."""
    return _blocks(fit_reply(reply, LIMITS)[0])


def messages(reply: Reply) -> list[dict[str, Any]]:
    """The chat.postMessage (or chat.update) bodies for `reply`: `text` is the notification
    fallback, `blocks` what is shown. More than one when a long code block continues."""
    payloads = []
    for part in fit_reply(reply, LIMITS):
        lines = (*part.reply.lines, *(line for block in part.code_blocks for line in block))
        head = part.reply.title or part.reply.text or next(iter(lines), "") or "(continued)"
        payloads.append({"text": mrkdwn(head)[:150], "blocks": _blocks(part)})
    return payloads
