"""Turn a command's words and flags into checked values, before anything is touched.

Every check here is pure: a line that fails binding changes nothing anywhere.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from bot.durations import parse_duration
from bot.projects import Catalog
from bot.store.principals import IdentityKey
from commands.errors import UsageError
from commands.port import Invocation
from commands.registry import Command, Param, suggest
from commands.roles import ANY, Role

_MENTION = re.compile(r"^<@!?([A-Za-z0-9_.-]+)(?:\|[^>]*)?>$")
_FULL_KEY = re.compile(r"^(slack|discord|shell):([^:\s]+):([^:\s]+)$")


def parse_user(word: str, invocation: Invocation) -> IdentityKey:
    """A user named by a mention (`<@U123>`, `<@!123>`, `@bob`) or a full key.

    Mentions resolve on the invoker's own platform and workspace, by immutable id. A display
    name is never looked up: two people may share one.
    """
    match = _MENTION.match(word)
    if match:
        return IdentityKey(invocation.platform, invocation.workspace_id, match.group(1))
    full = _FULL_KEY.match(word)
    if full:
        return IdentityKey(full.group(1), full.group(2), full.group(3))
    if word.startswith("@") and re.fullmatch(r"@[A-Za-z0-9_.-]+", word):
        return IdentityKey(invocation.platform, invocation.workspace_id, word[1:])
    raise UsageError(
        f"'{word}' is not a user. Mention them (@name) or give platform:workspace:user."
    )


def _project(word: str, catalog: Catalog, allow_all: bool) -> str:
    if allow_all and word == ANY:
        return ANY
    if catalog.project(word) is not None:
        return word
    known = sorted(catalog.projects)
    if not known:
        raise UsageError(f"Unknown project '{word}': no projects are configured (see flybot.toml).")
    star = " or *" if allow_all else ""
    raise UsageError(
        f"Unknown project '{word}'.{suggest(word, known)} Projects: {', '.join(known)}{star}."
    )


def _stage(word: str, project: str | None, catalog: Catalog, allow_all: bool) -> str:
    if allow_all and word == ANY:
        return ANY
    if project is None or project == ANY:
        if allow_all:
            raise UsageError(
                f"A stage ('{word}') needs a project; use * for every project's stages."
            )
        raise UsageError(f"Stage '{word}' needs a project before it.")
    entry = catalog.project(project)
    assert entry is not None
    if entry.stage(word) is not None:
        return word
    names = entry.stage_names
    star = " or *" if allow_all else ""
    raise UsageError(
        f"Unknown stage '{word}' of {project}.{suggest(word, names)} "
        f"Stages: {', '.join(names)}{star}."
    )


def _convert(
    param: Param, word: str, bound: dict[str, Any], catalog: Catalog, invocation: Invocation
) -> Any:
    kind = param.kind
    if kind in ("project", "project_or_all"):
        return _project(word, catalog, allow_all=kind == "project_or_all")
    if kind in ("stage", "stage_or_all"):
        return _stage(word, bound.get("project"), catalog, allow_all=kind == "stage_or_all")
    if kind == "role":
        return Role.parse(word)
    if kind == "user":
        return parse_user(word, invocation)
    if kind == "int":
        if not re.fullmatch(r"-?\d{1,9}", word):
            raise UsageError(f"<{param.name}> must be a whole number, not '{word}'.")
        return int(word)
    return word


def _flag_value(command: Command, name: str, raw: str | None) -> Any:
    spec = next((f for f in command.flags if f.name == name), None)
    if spec is None:
        names = [f.name for f in command.flags]
        allowed = ", ".join(f"--{n}" for n in names) if names else "none"
        hint = suggest(name, names).replace("'", "'--", 1) if names else ""
        raise UsageError(f"Unknown flag --{name} for '{command.name}'.{hint} Flags: {allowed}.")
    if spec.kind == "switch":
        return True
    assert raw is not None
    if spec.kind == "int":
        if not re.fullmatch(r"\d{1,9}", raw):
            raise UsageError(f"--{name} must be a whole number, not '{raw}'.")
        return int(raw)
    if spec.kind == "duration":
        try:
            value: timedelta = parse_duration(raw)
        except ValueError as exc:
            raise UsageError(f"--{name}: {exc}") from None
        return value
    return raw


def bind(
    command: Command,
    words: tuple[str, ...],
    flags: dict[str, str | None],
    catalog: Catalog,
    invocation: Invocation,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return (arguments, flags) as checked values, or raise UsageError naming the problem."""
    bound: dict[str, Any] = {}
    remaining = list(words)
    for param in command.params:
        if not remaining:
            if param.required:
                raise UsageError(f"Missing <{param.name}>. Usage: {command.usage()}")
            continue
        if param.rest:
            bound[param.name] = " ".join(remaining)
            remaining = []
            continue
        bound[param.name] = _convert(param, remaining.pop(0), bound, catalog, invocation)
    if remaining:
        raise UsageError(f"Too many arguments ('{remaining[0]}' …). Usage: {command.usage()}")
    values = {name: _flag_value(command, name, raw) for name, raw in flags.items()}
    return bound, values
