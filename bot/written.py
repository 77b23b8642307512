"""The ways a secret value is written down where it may be quoted back: as itself, inside a
JSON string (Fly's error texts quote the JSON they were sent), and inside a Python repr (a
log line of a dict or an exception's args). Masking one form leaves the others readable."""

from __future__ import annotations

import json


def written_forms(value: str) -> set[str]:
    return {
        value,
        json.dumps(value)[1:-1],
        json.dumps(value, ensure_ascii=False)[1:-1],
        repr(value)[1:-1],
    }
