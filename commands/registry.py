"""Verbs as declarations: what each takes, who may run it, whether a stage may guard it, and
its help.

A family module declares each verb with `@command(...)` on a module-level handler:

    @command(
        "lock",
        summary="Lock a stage so nobody deploys to it.",
        params=(Param("project", PROJECT), Param("stage", STAGE), Param("reason", TEXT, ...)),
        flags=(Flag("for", DURATION, help="how long"),),
        role=Role.deployer,
    )
    async def lock(ctx: CommandContext) -> None: ...

The decorator returns a `Command`; calling it runs the handler, so a test can call
`await lock(ctx)` directly. `build_registry()` (commands/__init__.py) collects the
declarations of every family; the pipeline, help, and the adapters (a Discord command tree,
a Slack modal) all read them from the registry.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING

from commands.errors import UsageError
from commands.kinds import SWITCH, Kind, kind_named
from commands.roles import Role

if TYPE_CHECKING:
    from commands.context import CommandContext
    from commands.guard import Plan

Handler = Callable[["CommandContext"], Awaitable[None]]
Planner = Callable[["CommandContext"], Awaitable["Plan"]]


@dataclass(frozen=True)
class Param:
    name: str
    kind: Kind | str = "word"
    required: bool = True
    rest: bool = False  # takes every remaining word, joined by spaces (a reason, a message)
    many: bool = False  # takes every remaining word, each converted: a tuple of values
    help: str = ""
    sensitive: bool = False  # never stored or echoed (also when the kind is not)
    asks_value: bool = False  # secret names: the adapter asks a value for each, privately

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", kind_named(self.kind))

    @property
    def type(self) -> Kind:
        assert isinstance(self.kind, Kind)
        return self.kind

    @property
    def is_sensitive(self) -> bool:
        return self.sensitive or self.type.sensitive

    def placeholder(self) -> str:
        inner = f"{self.name}…" if self.many else self.name
        return f"<{inner}>" if self.required else f"[{inner}]"


@dataclass(frozen=True)
class Flag:
    name: str  # as typed: --name
    kind: Kind | str = "word"
    help: str = ""
    metavar: str = "VALUE"
    # Its key in `ctx.flags` and its option name on a form-based platform (default: the
    # name): `secrets set`'s --stage is "stage_only", apart from its <stage> parameter.
    key: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", kind_named(self.kind))
        if not self.key:
            object.__setattr__(self, "key", self.name)

    @property
    def type(self) -> Kind:
        assert isinstance(self.kind, Kind)
        return self.kind

    @property
    def is_switch(self) -> bool:
        return self.type is SWITCH


DRY_RUN = Flag("dry-run", SWITCH, help="show the plan and change nothing")


@dataclass(frozen=True)
class Command:
    path: tuple[str, ...]
    summary: str
    handler: Handler
    params: tuple[Param, ...] = ()
    flags: tuple[Flag, ...] = ()
    role: Role | None = None  # None: anyone may run it (the handler may check more)
    # Guardable: the pipeline plans it, then checks locks, freeze windows and the stage's
    # approval policy before the handler runs (`--dry-run` shows the plan and stops).
    guardable: bool = False
    planner: Planner | None = None  # a guardable verb's plan; default: the command itself
    audited: bool = True  # only help and whoami opt out: every other attempt is audited
    examples: tuple[str, ...] = ()
    access: str = ""  # who may run it, when the handler checks it itself (shown in help)
    usage_text: str = ""  # replaces the generated usage line when the params read oddly
    module: str = ""  # the family that declared it
    # The verb a stage's `guarded` list must name to guard this one, when not its own
    # (`launch` runs a first deploy: it is guarded wherever `deploy` is).
    guarded_as: str = ""

    def __call__(self, ctx: CommandContext) -> Awaitable[None]:
        return self.handler(ctx)

    @property
    def name(self) -> str:
        return " ".join(self.path)

    @property
    def verb(self) -> str:
        """The word a stage's `guarded` list names: `scale` for `scale count`."""
        return self.path[0]

    @property
    def policy_verb(self) -> str:
        """The word a stage's `guarded` list names to guard this command."""
        return self.guarded_as or self.verb

    @property
    def switches(self) -> frozenset[str]:
        return frozenset(f.name for f in self.flags if f.is_switch)

    @property
    def who(self) -> str:
        return self.access or (self.role.name if self.role else "anyone")

    @property
    def secret_params(self) -> tuple[Param, ...]:
        """Parameters whose values the adapter must collect privately before running."""
        return tuple(p for p in self.params if p.asks_value)

    @property
    def sensitive(self) -> bool:
        return any(p.is_sensitive for p in self.params) or bool(self.secret_params)

    def usage(self) -> str:
        if self.usage_text:
            return self.usage_text
        parts = ["/fly", *self.path, *(p.placeholder() for p in self.params)]
        for flag in self.flags:
            parts.append(
                f"[--{flag.name}]" if flag.is_switch else f"[--{flag.name} {flag.metavar}]"
            )
        return " ".join(parts)


def command(
    *path: str,
    summary: str,
    params: tuple[Param, ...] = (),
    flags: tuple[Flag, ...] = (),
    role: Role | None = None,
    guardable: bool = False,
    planner: Planner | None = None,
    audited: bool = True,
    examples: tuple[str, ...] = (),
    access: str = "",
    usage_text: str = "",
    guarded_as: str = "",
) -> Callable[[Handler], Command]:
    """Declare a verb on a module-level handler (see the module docstring)."""
    if planner is not None:
        guardable = True
    if guardable and all(f.name != DRY_RUN.name for f in flags):
        flags = (*flags, DRY_RUN)

    def declare(handler: Handler) -> Command:
        return Command(
            path=tuple(path),
            summary=summary,
            handler=handler,
            params=params,
            flags=flags,
            role=role,
            guardable=guardable,
            planner=planner,
            audited=audited,
            examples=examples,
            access=access,
            usage_text=usage_text,
            module=handler.__module__,
            guarded_as=guarded_as,
        )

    return declare


def declared_in(module: ModuleType) -> list[Command]:
    """The commands a family module declares, in the order it declares them."""
    return [
        value
        for value in vars(module).values()
        if isinstance(value, Command) and value.module == module.__name__
    ]


def suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word.lower(), choices, n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


_BUTTON_VALUE = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")


@dataclass
class Registry:
    commands: dict[tuple[str, ...], Command] = field(default_factory=dict)
    # A button's action id -> the command words a click runs, with the button's value as
    # the last word ("approval.approve" -> "approve", so a click on #12 runs `approve 12`).
    # Family modules declare theirs as a module-level `BUTTONS` mapping.
    buttons: dict[str, str] = field(default_factory=dict)

    def add_buttons(self, buttons: dict[str, str]) -> None:
        for action, words in buttons.items():
            if self.buttons.get(action, words) != words:
                raise ValueError(f"button action {action} declared twice")
            self.buttons[action] = words

    def click_line(self, action: str, value: str) -> str | None:
        """The line a click on a button runs, or None for an action nobody declared (or a
        value that is not one plain word: a forged value can never add words)."""
        words = self.buttons.get(action)
        if words is None or not _BUTTON_VALUE.match(value):
            return None
        return f"{words} {value}"

    def add(self, command: Command) -> None:
        if command.path in self.commands:
            raise ValueError(f"command {command.name} registered twice")
        if not 1 <= len(command.path) <= 2:
            raise ValueError(f"command {command.name}: a verb and at most one sub-verb")
        if command.guardable and any(p.is_sensitive for p in command.params):
            # An approval request keeps the masked line, which cannot run again: secret
            # input travels beside the invocation (asks_value) and waits in memory instead.
            raise ValueError(f"command {command.name}: guardable with a sensitive parameter")
        names = [p.name for p in command.params] + [f.key for f in command.flags]
        if len(set(names)) != len(names):
            raise ValueError(f"command {command.name}: a parameter and a flag share a name")
        self.commands[command.path] = command

    def add_all(self, commands: Iterable[Command]) -> None:
        for one in commands:
            self.add(one)

    @property
    def verbs(self) -> list[str]:
        return sorted({path[0] for path in self.commands})

    def family(self, verb: str) -> list[Command]:
        return [c for p, c in sorted(self.commands.items()) if p[0] == verb]

    def named(self, name: str) -> Command:
        return self.commands[tuple(name.split())]

    def resolve(self, words: tuple[str, ...]) -> tuple[Command, tuple[str, ...]]:
        """Find the command the first one or two words name; return it and the words after.

        A sub-verb wins over a bare verb of the same family (`link confirm X` over `link X`).
        """
        if not words:
            raise UsageError("Type a command, e.g. `/fly help`.")
        verb = words[0].lower()
        family = self.family(verb)
        if not family:
            shown = " ".join(words[0].split()) or repr(words[0])  # a quoted "\n" stays one line
            raise UsageError(
                f"Unknown command '{shown}'.{suggest(verb, self.verbs)} "
                f"Commands: {', '.join(self.verbs)}."
            )
        if len(words) >= 2 and (verb, words[1].lower()) in self.commands:
            return self.commands[(verb, words[1].lower())], words[2:]
        if (verb,) in self.commands:
            return self.commands[(verb,)], words[1:]
        subs = [c.path[1] for c in family]
        if len(words) < 2:
            raise UsageError(f"'{verb}' needs one of: {', '.join(subs)}. Try `/fly help {verb}`.")
        sub = words[1].lower()
        raise UsageError(
            f"Unknown command '{verb} {words[1]}'.{suggest(sub, subs)} "
            f"'{verb}' takes: {', '.join(subs)}."
        )
