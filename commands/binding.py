"""Turn a command's words and flags into checked values, before anything is touched, and
write checked values back as a canonical command line.

Every check here is pure: a line that fails binding changes nothing anywhere. Any failure,
whatever raised it inside a conversion (an overflow, a bad value), is a `UsageError`.
"""

from __future__ import annotations

import shlex
from typing import Any

from bot.projects import Catalog
from commands.errors import UsageError
from commands.kinds import MASK, Binding, Kind, parse_user
from commands.port import Invocation
from commands.registry import Command, Param

__all__ = ["bind", "canonical_line", "parse_user"]


def _convert(kind: Kind, label: str, word: str, binding: Binding) -> Any:
    try:
        return kind.convert(label, word, binding)
    except UsageError:
        raise
    except (ValueError, OverflowError, ArithmeticError) as exc:
        raise UsageError(f"{label}: '{word[:40]}' is out of range ({exc}).") from None


def _flag_value(command: Command, name: str, raw: str | None, binding: Binding) -> Any:
    spec = next((f for f in command.flags if f.name == name), None)
    if spec is None:
        names = [f.name for f in command.flags]
        allowed = ", ".join(f"--{n}" for n in names) if names else "none"
        from commands.registry import suggest

        hint = suggest(name, names).replace("'", "'--", 1) if names else ""
        raise UsageError(f"Unknown flag --{name} for '{command.name}'.{hint} Flags: {allowed}.")
    if spec.is_switch:
        return True
    assert raw is not None
    return _convert(spec.type, f"--{name}", raw, binding)


def bind(
    command: Command,
    words: tuple[str, ...],
    flags: dict[str, str | None],
    catalog: Catalog,
    invocation: Invocation,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return (arguments, flags) as checked values, or raise UsageError naming the problem."""
    binding = Binding(catalog, invocation)
    remaining = list(words)
    for param in command.params:
        if not remaining:
            if param.required:
                raise UsageError(f"Missing <{param.name}>. Usage: {command.usage()}")
            continue
        label = f"<{param.name}>"
        if param.rest:
            binding.bound[param.name] = _convert(param.type, label, " ".join(remaining), binding)
            remaining = []
        elif param.many:
            binding.bound[param.name] = tuple(
                _convert(param.type, label, word, binding) for word in remaining
            )
            remaining = []
        else:
            binding.bound[param.name] = _convert(param.type, label, remaining.pop(0), binding)
    if remaining:
        raise UsageError(f"Too many arguments ('{remaining[0]}' …). Usage: {command.usage()}")
    values = {
        _flag_key(command, name): _flag_value(command, name, raw, binding)
        for name, raw in flags.items()
    }
    return binding.bound, values


def _flag_key(command: Command, name: str) -> str:
    return next((f.key for f in command.flags if f.name == name), name)


def _words(param: Param, value: Any, mask: bool) -> list[str]:
    if mask and param.is_sensitive:
        return [MASK]
    values = value if param.many else (value,)
    return [param.type.word(v) for v in values]


def canonical_line(
    command: Command, args: dict[str, Any], flags: dict[str, Any], mask: bool = True
) -> str:
    """The command as flybot understood it, e.g. `lock ping-go prod 'db migration' --for 2h`.

    It parses back to the same command. With `mask`, sensitive values are written as •••:
    that is the form the audit log and approval requests keep, never the raw line.
    """
    positional: list[str] = []
    for param in command.params:
        if param.name in args:
            positional.extend(_words(param, args[param.name], mask))
    options: list[str] = []
    for flag in command.flags:
        if flag.key not in flags:
            continue
        if flag.is_switch:
            options.append(f"--{flag.name}")
        else:
            options.extend([f"--{flag.name}", flag.type.word(flags[flag.key])])
    if any(word.startswith("--") for word in positional):  # `--` ends the flags
        return _join([*command.path, *options, "--", *positional])
    return _join([*command.path, *positional, *options])


def _join(words: list[str]) -> str:
    return " ".join(word if word == MASK else shlex.quote(word) for word in words)
