"""Logging for every `flybot` command, over the stdlib logging the code already uses.

- stderr a terminal: human lines. Otherwise (a Fly machine, a pipe, a test): one JSON object
  per line (python-json-logger), which Fly's log shipping and Grafana read as fields.
- Every line written while one invocation is being handled, and by the work it starts (a
  deploy's task inherits the context), carries `request_id`, `platform` and `identity`
  (the immutable key, `slack:T…:U…`): `invocation(...)` binds them.
- A line about a Fly failure carries `fly_request_id`, Fly's id for the exchange, taken from
  the `FlyAPIError` logged (as the exception or as an argument).
- Redaction is the last step of formatting: the configured tokens, anything shaped like a
  Slack, Fly or bearer token, and every secret value held by `REDACTOR.hold` (a command's
  secret input, for as long as the process runs) become •••, in the message, the exception
  and every field, whatever the handler.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import re
import secrets
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from pythonjsonlogger.json import JsonFormatter

from bot.fly.errors import FlyAPIError
from bot.written import written_forms

MASK = "•••"
MIN_HELD = 3  # shorter values would mask half of every line
_TOKEN_SHAPES = re.compile(
    r"xox[abeoprs]-[0-9A-Za-z-]{6,}"  # Slack bot/user tokens
    r"|xapp-[0-9A-Za-z-]{6,}"  # Slack app-level tokens
    r"|FlyV1 [^\s\"',\\]+"  # Fly tokens as sent
    r"|fm[12][a-z]?_[0-9A-Za-z_+/=-]{8,}"  # Fly macaroons
    r"|(?i:bearer) [0-9A-Za-z._~+/=-]{8,}"
)


@dataclass(frozen=True)
class LogContext:
    request_id: str
    platform: str
    identity: str


_CONTEXT: contextvars.ContextVar[LogContext | None] = contextvars.ContextVar(
    "flybot_log_context", default=None
)


def new_request_id() -> str:
    return secrets.token_hex(6)


@contextlib.contextmanager
def invocation(platform: str, identity: str, request_id: str | None = None) -> Iterator[str]:
    """Every line logged inside (and by tasks created inside) carries these fields."""
    rid = request_id or new_request_id()
    token = _CONTEXT.set(LogContext(rid, platform, identity))
    try:
        yield rid
    finally:
        _CONTEXT.reset(token)


def current() -> LogContext | None:
    return _CONTEXT.get()


class Redactor:
    """Tokens and secret values out of any text."""

    def __init__(self) -> None:
        self._held: deque[str] = deque(maxlen=2048)

    def hold(self, values: Iterable[str | None]) -> None:
        for value in values:
            if not value or len(value) < MIN_HELD:
                continue
            for form in written_forms(value):
                if form not in self._held:
                    self._held.append(form)

    def redact(self, text: str) -> str:
        for value in sorted(self._held, key=len, reverse=True):
            if value in text:
                text = text.replace(value, MASK)
        return _TOKEN_SHAPES.sub(MASK, text)


REDACTOR = Redactor()


class ContextFilter(logging.Filter):
    """Adds the invocation's fields and Fly's request id to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = _CONTEXT.get()
        if context is not None:
            record.request_id = context.request_id
            record.platform = context.platform
            record.identity = context.identity
        fly_error = _fly_error(record)
        if fly_error is not None and fly_error.request_id:
            record.fly_request_id = fly_error.request_id
        return True


def _fly_error(record: logging.LogRecord) -> FlyAPIError | None:
    if record.exc_info and isinstance(record.exc_info[1], FlyAPIError):
        return record.exc_info[1]
    args = record.args if isinstance(record.args, tuple) else ()
    return next((a for a in args if isinstance(a, FlyAPIError)), None)


_CHATTY = (
    "httpx",
    "apscheduler",
    "alembic",
    "aiohttp.access",
    "slack_sdk",
    "slack_bolt",
    "adapters.slack.bolt",
    "adapters.slack.socket_mode",
    "discord",
)
_FIELDS = ("request_id", "platform", "identity", "fly_request_id")


class HumanFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = " ".join(f"{k}={getattr(record, k)}" for k in _FIELDS if hasattr(record, k))
        if extra:
            head, sep, rest = line.partition("\n")
            line = f"{head} [{extra}]{sep}{rest}"
        return REDACTOR.redact(line)


class JsonLineFormatter(JsonFormatter):
    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            json_ensure_ascii=False,
        )

    def format(self, record: logging.LogRecord) -> str:
        return REDACTOR.redact(super().format(record))

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        super().add_fields(log_data, record, message_dict)
        for key in _FIELDS:
            log_data.setdefault(key, getattr(record, key, None))


def configure(level: int, stream: IO[str] | None = None, json_lines: bool | None = None) -> None:
    """The root logger writes to `stream` (stderr): JSON lines unless it is a terminal."""
    stream = stream or sys.stderr
    if json_lines is None:
        json_lines = not (hasattr(stream, "isatty") and stream.isatty())
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonLineFormatter() if json_lines else HumanFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Their info lines are one per HTTP request or job run: only -v (debug) shows them.
    chatty_level = logging.DEBUG if level <= logging.DEBUG else logging.WARNING
    for chatty in _CHATTY:
        logging.getLogger(chatty).setLevel(chatty_level)
