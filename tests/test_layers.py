"""Arrows point down: adapters and the runtime may import commands and the core; commands
import the core and no chat library; the rest of the core imports neither."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support import REPO

CHAT_LIBRARIES = ("slack_bolt", "slack_sdk", "discord", "aiohttp")


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def top(name: str) -> str:
    return name.split(".")[0]


def test_commands_import_no_chat_library_and_no_adapter() -> None:
    for path in (REPO / "commands").rglob("*.py"):
        for name in imports_of(path):
            assert top(name) not in (*CHAT_LIBRARIES, "adapters"), (path, name)
            assert not name.startswith("bot.runtime"), (path, name)


def test_the_core_imports_neither_commands_nor_adapters() -> None:
    runtime = REPO / "bot" / "runtime"
    for path in (REPO / "bot").rglob("*.py"):
        if runtime in path.parents or path == REPO / "bot" / "cli.py":
            continue
        for name in imports_of(path):
            assert top(name) not in ("commands", "adapters"), (path, name)
