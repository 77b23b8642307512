"""The secret-input modal: opened straight from the trigger_id of the delivery that asked
(it lives 3 s), one plain-text input per secret name; its submission carries the values.

The modal's `private_metadata` holds the command line, channel and thread (never a value):
Slack keeps it server-side and hands it back with the submission, signed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from adapters.slack.render import mrkdwn
from commands.reply import markup
from commands.secret_input import SecretRequest

CALLBACK_ID = "flybot.secrets"
VALUE_ACTION = "value"
BLOCK_PREFIX = "secret:"


@dataclass(frozen=True)
class Pending:
    """What the submission of a modal runs."""

    line: str
    channel_id: str
    thread_id: str | None
    user_id: str
    names: tuple[str, ...]
    delivery: str  # the dedupe key of the delivery that opened it


def view(asked: SecretRequest, pending: Pending) -> dict[str, Any]:
    metadata = json.dumps(
        {
            "line": pending.line,
            "channel": pending.channel_id,
            "thread": pending.thread_id,
            "user": pending.user_id,
            "names": list(pending.names),
            "delivery": pending.delivery,
        }
    )
    intro = markup(
        "`/fly {title}`: each value goes to Fly only. flybot never shows, stores or logs it.",
        title=asked.title,
    )
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": mrkdwn(intro)[:3000]}}
    ]
    for name in asked.names[:99]:
        blocks.append(
            {
                "type": "input",
                "block_id": f"{BLOCK_PREFIX}{name}"[:255],
                "label": {"type": "plain_text", "text": name[:2000]},
                "element": {
                    "type": "plain_text_input",
                    "action_id": VALUE_ACTION,
                    "placeholder": {"type": "plain_text", "text": "the value (hidden from logs)"},
                },
            }
        )
    return {
        "type": "modal",
        "callback_id": CALLBACK_ID,
        "notify_on_close": True,
        "title": {"type": "plain_text", "text": "flybot: secret values"},
        "submit": {"type": "plain_text", "text": "Set"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": metadata,
        "blocks": blocks,
    }


def pending_of(view_payload: dict[str, Any]) -> Pending:
    data = json.loads(view_payload.get("private_metadata") or "{}")
    return Pending(
        line=str(data.get("line", "")),
        channel_id=str(data.get("channel", "")),
        thread_id=data.get("thread") or None,
        user_id=str(data.get("user", "")),
        names=tuple(str(n) for n in data.get("names", [])),
        delivery=str(data.get("delivery", "")),
    )


def values_of(view_payload: dict[str, Any], names: tuple[str, ...]) -> dict[str, str]:
    state = (view_payload.get("state") or {}).get("values") or {}
    values = {}
    for name in names:
        field = (state.get(f"{BLOCK_PREFIX}{name}"[:255]) or {}).get(VALUE_ACTION) or {}
        value = field.get("value")
        if isinstance(value, str) and value:
            values[name] = value
    return values
