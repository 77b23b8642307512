"""A module imported the first time one of its names is read: how a command family names
the core modules that only its handlers use, so `flybot run` starts without them.

    if TYPE_CHECKING:
        from bot.ops import certs as ops    # what mypy reads
    else:
        ops = on_first_use("bot.ops.certs")  # what runs: imported by the first `ops.…`

The import itself is Python's, under its import lock: two threads reading a name at once
both get the one module, fully executed. It goes through `__import__`, as an import
statement does, so `-X importtime` reports it (importlib.import_module's path is not
reported, and tests/runtime/test_lean_start.py reads that report).
"""

from __future__ import annotations

from typing import Any


def import_now(name: str) -> Any:
    """The module `name` (a dotted path), imported as an import statement would."""
    return __import__(name, fromlist=["_"])


class on_first_use:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(import_now(self._name), attribute)

    def __repr__(self) -> str:
        return f"<{self._name}, imported on first use>"
