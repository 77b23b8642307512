"""Secret values never reach a log line.

Two layers, one filter:
- A record that carries a modal submission (bolt and slack_sdk log raw payloads at debug
  level: the Socket Mode client logs every frame it receives, before anyone has parsed it)
  is cut down to its first words and a note: its payload is never written anywhere.
- Values taken from a submission are held (in memory only) while the process runs, and any
  later record that contains one, exceptions included, has it replaced by •••.

`SCRUBBER` is installed on the loggers the adapter hands to bolt and slack_sdk and, by
`flybot run`, on every handler of the root logger.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Iterable

MASK = "•••"
_MARKERS = ("view_submission", "plain_text_input")
MIN_HELD = 3  # shorter values would mask half of every line; the payload rule still hides them


class SecretScrubber(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self._held: deque[str] = deque(maxlen=1024)

    def hold(self, values: Iterable[str]) -> None:
        for value in values:
            if len(value) < MIN_HELD:
                continue
            for form in {value, json.dumps(value)[1:-1], repr(value)[1:-1]}:
                if form not in self._held:
                    self._held.append(form)

    def redact(self, text: str) -> str:
        if any(marker in text for marker in _MARKERS):
            text = text[:60].split("{", 1)[0] + (
                f" {MASK} (a modal submission: its payload is never logged, it carries "
                "secret values)"
            )
        for value in sorted(self._held, key=len, reverse=True):
            if value in text:
                text = text.replace(value, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        clean = self.redact(message)
        if clean != message:
            record.msg, record.args = clean, ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


SCRUBBER = SecretScrubber()


def scrubbed_logger(name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    if SCRUBBER not in logger.filters:
        logger.addFilter(SCRUBBER)
    return logger


def install_on_handlers(logger: logging.Logger | None = None) -> None:
    """Every handler of `logger` (the root by default) scrubs what passes through it."""
    for handler in (logger or logging.getLogger()).handlers:
        if SCRUBBER not in handler.filters:
            handler.addFilter(SCRUBBER)
