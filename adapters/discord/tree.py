"""The `/fly` application command, generated from the command registry, and the way back from
an interaction's options to the command line the pipeline parses.

One subcommand per verb; a verb with sub-verbs is a subcommand group (`/fly certs add`), and
when it also runs bare (`/fly link [code]`) the bare form is the group's subcommand of the
verb's own name (`/fly link link`). Parameters and flags become typed options: required ones
first (Discord's rule), integers with their range, a user as a user picker, fixed words as
choices, and the kinds the command layer can complete (project, stage, process group, release
version, request id) with autocomplete. Descriptions are the registry's help, shortened to
Discord's 100 characters. Discord's limits (discord.com/developers/docs/interactions/
application-commands): names ^[-_a-z0-9]{1,32}$, 25 options per level, 25 choices, 8000
characters in one command.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

from commands.complete import completable
from commands.kinds import MAX_INT, Kind
from commands.registry import Command, Flag, Param, Registry
from commands.reply import shorten

ROOT = "fly"
ROOT_DESCRIPTION = "flybot: deploy, scale and watch your Fly.io apps"
DESCRIPTION_CHARS = 100
MAX_OPTIONS = 25
SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2
STRING, INTEGER, BOOLEAN, USER = 3, 4, 5, 6
_TYPES = {"string": STRING, "integer": INTEGER, "boolean": BOOLEAN, "user": USER}
_MINIMUM = {"version": 1, "request": 1}


class TreeError(ValueError):
    """The registry cannot be shown within Discord's limits (a test keeps this from shipping)."""


class OptionsError(ValueError):
    """An interaction's options do not make a command line: one line saying why."""


def _describe(text: str) -> str:
    return str(shorten(" ".join(text.split()) or "-", DESCRIPTION_CHARS))


def _option(name: str, kind: Kind, required: bool, help_text: str, many: bool) -> dict[str, Any]:
    option: dict[str, Any] = {
        "type": STRING if many else _TYPES[kind.value_type],
        "name": name,
        "description": _describe(
            help_text or kind.describe + ("; several, spaced" if many else "")
        ),
        "required": required,
    }
    if option["type"] == INTEGER:
        option["min_value"] = _MINIMUM.get(kind.name, 0)
        option["max_value"] = MAX_INT
    if kind.choices and not many:
        option["choices"] = [{"name": c, "value": c} for c in kind.choices[:25]]
    elif completable(kind) and option["type"] in (STRING, INTEGER):
        option["autocomplete"] = True
    return option


def _param_option(param: Param) -> dict[str, Any]:
    return _option(param.name, param.type, param.required, param.help, param.many)


def _flag_option(flag: Flag) -> dict[str, Any]:
    return _option(flag.key, flag.type, False, flag.help, False)  # apart from a parameter


def subcommand(command: Command, name: str | None = None) -> dict[str, Any]:
    options = [_param_option(p) for p in command.params] + [_flag_option(f) for f in command.flags]
    options.sort(key=lambda o: not o["required"])  # stable: the declared order otherwise
    if len(options) > MAX_OPTIONS:
        raise TreeError(f"{command.name}: {len(options)} options, Discord takes {MAX_OPTIONS}")
    return {
        "type": SUB_COMMAND,
        "name": name or command.path[-1],
        "description": _describe(command.summary),
        "options": options,
    }


def tree(registry: Registry) -> list[dict[str, Any]]:
    """The bulk-upsert body: the one `/fly` chat-input command, for guilds only."""
    nodes: list[dict[str, Any]] = []
    for verb in registry.verbs:
        family = registry.family(verb)
        subs = [c for c in family if len(c.path) == 2]
        if not subs:
            nodes.append(subcommand(family[0]))
            continue
        options = [subcommand(c) for c in subs]
        bare = next((c for c in family if len(c.path) == 1), None)
        if bare is not None:
            options.insert(0, subcommand(bare, name=verb))
        if len(options) > MAX_OPTIONS:
            raise TreeError(f"{verb}: {len(options)} sub-verbs, Discord takes {MAX_OPTIONS}")
        summary = bare.summary if bare else f"{verb}: " + ", ".join(c.path[1] for c in subs)
        nodes.append(
            {
                "type": SUB_COMMAND_GROUP,
                "name": verb,
                "description": _describe(summary),
                "options": options,
            }
        )
    if len(nodes) > MAX_OPTIONS:
        raise TreeError(f"{len(nodes)} verbs, Discord takes {MAX_OPTIONS} under /{ROOT}")
    return [
        {
            "type": 1,
            "name": ROOT,
            "description": ROOT_DESCRIPTION,
            "options": nodes,
            "contexts": [0],  # in servers only: an identity is discord:<guild>:<user>
            "integration_types": [0],
        }
    ]


@dataclass(frozen=True)
class Chosen:
    """What an interaction's data names: the command, its options by name, the focused one."""

    command: Command
    options: dict[str, Any]
    focused: str | None = None


def chosen(registry: Registry, data: dict[str, Any]) -> Chosen:
    nodes = data.get("options") or []
    if data.get("name") != ROOT or not nodes:
        raise OptionsError(f"Not a /{ROOT} command.")
    node = nodes[0]
    path: tuple[str, ...] = (str(node.get("name", "")),)
    if node.get("type") == SUB_COMMAND_GROUP:
        inner = (node.get("options") or [{}])[0]
        sub = str(inner.get("name", ""))
        path = path if sub == path[0] and path in registry.commands else (path[0], sub)
        node = inner
    command = registry.commands.get(path)
    if command is None:
        raise OptionsError(f"`/{ROOT} {' '.join(path)}` is not a command (any more).")
    options: dict[str, Any] = {}
    focused = None
    for option in node.get("options") or []:
        options[str(option["name"])] = option.get("value")
        if option.get("focused"):
            focused = str(option["name"])
    return Chosen(command, options, focused)


def _word(param: Param, value: Any) -> list[str]:
    if param.type.value_type == "user":
        return [f"<@{value}>"]
    text = str(value)
    if param.many:
        return text.split()
    return [text]


def line_of(found: Chosen) -> str:
    """The command line the options spell, quoted so that it parses back to those values."""
    command, options = found.command, found.options
    words: list[str] = list(command.path)
    missing: Param | None = None
    for param in command.params:
        value = options.get(param.name)
        if value is None or value == "":
            missing = missing or param
            continue
        if missing is not None:
            raise OptionsError(
                f"Give <{missing.name}> too: <{param.name}> comes after it in `{command.usage()}`."
            )
        words.extend(_word(param, value))
    flags: list[str] = []
    for flag in command.flags:
        value = options.get(flag.key)
        if value is None or value is False:
            continue
        flags.extend([f"--{flag.name}"] if flag.is_switch else [f"--{flag.name}", str(value)])
    path = [shlex.quote(w) for w in command.path]
    positional = [shlex.quote(w) for w in words[len(command.path) :]]
    options_words = [shlex.quote(w) for w in flags]
    if any(w.startswith("--") for w in words[len(command.path) :]):
        return " ".join([*path, *options_words, "--", *positional])  # `--` ends the flags
    return " ".join([*path, *positional, *options_words])
