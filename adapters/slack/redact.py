"""Secret values never reach a log line.

Two layers, one filter:
- A record that carries a modal submission (bolt and slack_sdk log raw payloads at debug
  level: the Socket Mode client logs every frame it receives, before anyone has parsed it)
  is cut down to its first words and a note: its payload is never written anywhere.
- Values taken from a submission are held (in memory only) while the process runs, and any
  later record that contains one, exceptions included, has it replaced by •••.
- A record that carries a slash command naming a verb with sensitive input (`secrets set`,
  `link CODE`) is cut the same way: a value typed in its text (refused by the pipeline)
  must not survive in a raw payload logged before anyone parsed it.

`SCRUBBER` is installed on the loggers the adapter hands to bolt and slack_sdk and, by
`flybot run`, on every handler of the root logger.
"""

from __future__ import annotations

import logging
import re
from collections import deque
from collections.abc import Iterable

from bot.logs import REDACTOR
from bot.written import written_forms

MASK = "•••"
_MARKERS = ("view_submission", "plain_text_input", "flybot.secrets:")  # Slack, Discord
MIN_HELD = 3  # shorter values would mask half of every line; the payload rule still hides them


# How a slash command's payload shows in a raw record: JSON (Socket Mode frames, bolt's
# parsed body) or the form-encoded HTTP body.
_COMMAND_MARKERS = ('"command":', "'command':", "command=%2F")


class SecretScrubber(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self._held: deque[str] = deque(maxlen=1024)
        self._verbs: re.Pattern[str] | None = None

    def guard_verbs(self, phrases: Iterable[str]) -> None:
        """The verbs (e.g. "secrets set") whose slash command payloads are never logged."""
        words = sorted({p for p in phrases if p}, key=len, reverse=True)
        if not words:
            return
        # Words in a payload are separated by spaces, `+` or `%20` (form encoding).
        between = r"(?:\s|\+|%20)+"
        alternatives = "|".join(between.join(map(re.escape, p.split())) for p in words)
        self._verbs = re.compile(rf"(?i)(?<![A-Za-z0-9_])(?:{alternatives})(?![A-Za-z0-9_])")

    def hold(self, values: Iterable[str]) -> None:
        values = list(values)
        REDACTOR.hold(values)  # and out of every formatted line, whatever the handler
        for value in values:
            if len(value) < MIN_HELD:
                continue
            for form in written_forms(value):
                if form not in self._held:
                    self._held.append(form)

    def _sensitive_command(self, text: str) -> bool:
        return (
            self._verbs is not None
            and any(marker in text for marker in _COMMAND_MARKERS)
            and self._verbs.search(text) is not None
        )

    def redact(self, text: str) -> str:
        if self._sensitive_command(text):
            text = text[:60].split("{", 1)[0] + (
                f" {MASK} (a slash command for a verb with secret input: its payload is "
                "never logged)"
            )
        elif any(marker in text for marker in _MARKERS):
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
