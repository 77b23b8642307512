"""The registry of verbs: what each takes, who may run it, and its help."""

from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from commands.errors import UsageError
from commands.roles import Role

if TYPE_CHECKING:
    from commands.context import CommandContext

ParamKind = Literal[
    "word",
    "text",
    "project",
    "project_or_all",
    "stage",
    "stage_or_all",
    "role",
    "user",
    "int",
]
FlagKind = Literal["int", "duration", "text", "switch"]
Handler = Callable[["CommandContext"], Awaitable[None]]


@dataclass(frozen=True)
class Param:
    name: str
    kind: ParamKind = "word"
    required: bool = True
    rest: bool = False  # takes every remaining word, joined by spaces (a reason, a message)
    help: str = ""

    def placeholder(self) -> str:
        return f"<{self.name}>" if self.required else f"[{self.name}]"


@dataclass(frozen=True)
class Flag:
    name: str
    kind: FlagKind = "text"
    help: str = ""
    metavar: str = "VALUE"


@dataclass(frozen=True)
class Command:
    path: tuple[str, ...]
    summary: str
    handler: Handler
    params: tuple[Param, ...] = ()
    flags: tuple[Flag, ...] = ()
    role: Role | None = None  # None: anyone may run it
    guardable: bool = False  # a stage policy may require approval for it
    audited: bool = True  # only help and whoami opt out: every other attempt is audited
    examples: tuple[str, ...] = ()
    access: str = ""  # who may run it, when the handler checks it itself (shown in help)
    usage_text: str = ""  # replaces the generated usage line when the params read oddly

    @property
    def name(self) -> str:
        return " ".join(self.path)

    @property
    def switches(self) -> frozenset[str]:
        return frozenset(f.name for f in self.flags if f.kind == "switch")

    @property
    def who(self) -> str:
        return self.access or (self.role.name if self.role else "anyone")

    def usage(self) -> str:
        if self.usage_text:
            return self.usage_text
        parts = ["/fly", *self.path, *(p.placeholder() for p in self.params)]
        for flag in self.flags:
            parts.append(
                f"[--{flag.name}]" if flag.kind == "switch" else f"[--{flag.name} {flag.metavar}]"
            )
        return " ".join(parts)


def suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word.lower(), choices, n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


@dataclass
class Registry:
    commands: dict[tuple[str, ...], Command] = field(default_factory=dict)

    def add(self, command: Command) -> None:
        if command.path in self.commands:
            raise ValueError(f"command {command.name} registered twice")
        self.commands[command.path] = command

    def command(self, *path: str, summary: str, **options: Any) -> Callable[[Handler], Handler]:
        """Decorator: `@registry.command("perms", "grant", summary=..., params=..., role=...)`."""

        def register(handler: Handler) -> Handler:
            self.add(Command(path=tuple(path), summary=summary, handler=handler, **options))
            return handler

        return register

    @property
    def verbs(self) -> list[str]:
        return sorted({path[0] for path in self.commands})

    def family(self, verb: str) -> list[Command]:
        return [c for p, c in sorted(self.commands.items()) if p[0] == verb]

    def resolve(self, words: tuple[str, ...]) -> tuple[Command, tuple[str, ...]]:
        """Find the command the first one or two words name; return it and the words after."""
        if not words:
            raise UsageError("Type a command, e.g. `/fly help`.")
        verb = words[0].lower()
        family = self.family(verb)
        if not family:
            raise UsageError(
                f"Unknown command '{words[0]}'.{suggest(verb, self.verbs)} "
                f"Commands: {', '.join(self.verbs)}."
            )
        if (verb,) in self.commands:
            return self.commands[(verb,)], words[1:]
        subs = [c.path[1] for c in family]
        if len(words) < 2:
            raise UsageError(f"'{verb}' needs one of: {', '.join(subs)}. Try `/fly help {verb}`.")
        sub = words[1].lower()
        if (verb, sub) not in self.commands:
            raise UsageError(
                f"Unknown command '{verb} {words[1]}'.{suggest(sub, subs)} "
                f"'{verb}' takes: {', '.join(subs)}."
            )
        return self.commands[(verb, sub)], words[2:]
