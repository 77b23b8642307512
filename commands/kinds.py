"""The kinds of value a command parameter or flag takes.

A kind says how a typed word becomes a checked value (or a one-line `UsageError`), how the
value is written back as a word (the canonical command line kept in the audit log and in
approval requests), what a form-based platform should offer for it (`value_type`, fixed
`choices`, `complete` for autocomplete), and whether it is `sensitive` (never stored or
echoed: masked in the audit log, kept out of the shell's history).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from bot.durations import parse_duration
from bot.projects import Catalog
from bot.store.principals import IdentityKey
from commands.errors import UsageError
from commands.roles import ANY, Role

if TYPE_CHECKING:
    from commands.port import Invocation

ValueType = Literal["string", "integer", "boolean", "user"]
MASK = "•••"
MAX_INT = 999_999_999  # nine digits: fits every database's integer column


@dataclass(frozen=True)
class Binding:
    """What a conversion may look at: the catalog, who typed it, the values bound so far."""

    catalog: Catalog
    invocation: Invocation
    bound: dict[str, Any] = field(default_factory=dict)


Convert = Callable[[str, str, Binding], Any]  # (label, word, binding) -> value
Complete = Callable[[str, Binding], list[str]]  # (prefix, binding) -> suggestions


def _as_word(value: Any) -> str:
    return str(value)


@dataclass(frozen=True)
class Kind:
    name: str
    describe: str  # "a project from flybot.toml", shown in help and as a form's hint
    convert: Convert
    value_type: ValueType = "string"
    word: Callable[[Any], str] = _as_word  # the value written back as it would be typed
    complete: Complete | None = None
    choices: tuple[str, ...] = ()
    sensitive: bool = False


# --- conversions -------------------------------------------------------------------------

_MENTION = re.compile(r"^<@!?([A-Za-z0-9_.-]+)(?:\|[^>]*)?>$")
_FULL_KEY = re.compile(r"^(slack|discord|shell):([^:\s]+):([^:\s]+)$")
_IMAGE = re.compile(r"^[a-z0-9]([a-z0-9._/:@-]{0,253}[a-zA-Z0-9_])?$", re.IGNORECASE)
_SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_CODE = re.compile(r"^[A-Za-z0-9]{4}-?[A-Za-z0-9]{4}$")


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


def _suggest(word: str, choices: list[str]) -> str:
    from commands.registry import suggest

    return suggest(word, choices)


def _project(allow_all: bool) -> Convert:
    def convert(label: str, word: str, binding: Binding) -> str:
        if allow_all and word == ANY:
            return ANY
        catalog = binding.catalog
        if catalog.project(word) is not None:
            return word
        known = sorted(catalog.projects)
        if not known:
            raise UsageError(
                f"Unknown project '{word}': no projects are configured (see flybot.toml)."
            )
        star = " or *" if allow_all else ""
        raise UsageError(
            f"Unknown project '{word}'.{_suggest(word, known)} Projects: {', '.join(known)}{star}."
        )

    return convert


def _stage(allow_all: bool) -> Convert:
    def convert(label: str, word: str, binding: Binding) -> str:
        if allow_all and word == ANY:
            return ANY
        project = binding.bound.get("project")
        if project is None or project == ANY:
            if allow_all:
                raise UsageError(
                    f"A stage ('{word}') needs a project; use * for every project's stages."
                )
            raise UsageError(f"Stage '{word}' needs a project before it.")
        entry = binding.catalog.project(project)
        assert entry is not None
        if entry.stage(word) is not None:
            return word
        names = entry.stage_names
        star = " or *" if allow_all else ""
        raise UsageError(
            f"Unknown stage '{word}' of {project}.{_suggest(word, names)} "
            f"Stages: {', '.join(names)}{star}."
        )

    return convert


def _int(label: str, word: str, binding: Binding) -> int:
    if not re.fullmatch(r"\d{1,9}", word):
        raise UsageError(f"{label} must be a whole number from 0 to {MAX_INT}, not '{word}'.")
    return int(word)


def _positive(label: str, word: str, binding: Binding) -> int:
    value = _int(label, word, binding)
    if value < 1:
        raise UsageError(f"{label} must be 1 or more, not '{word}'.")
    return value


def _duration(label: str, word: str, binding: Binding) -> timedelta:
    try:
        return parse_duration(word)
    except ValueError as exc:
        raise UsageError(f"{label}: {exc}") from None


def duration_word(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        amount, seconds = divmod(seconds, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts) or "0s"


def _role(label: str, word: str, binding: Binding) -> Role:
    return Role.parse(word)


def _user(label: str, word: str, binding: Binding) -> IdentityKey:
    return parse_user(word, binding.invocation)


def _image(label: str, word: str, binding: Binding) -> str:
    if not _IMAGE.match(word):
        raise UsageError(
            f"{label} '{word[:80]}' is not an image reference (e.g. registry.fly.io/app:v3)."
        )
    return word


def _group(label: str, word: str, binding: Binding) -> str:
    if not re.fullmatch(r"[a-z0-9_-]{1,63}", word):
        raise UsageError(f"{label} '{word[:80]}' is not a process group name.")
    groups = _groups_of(binding)
    if groups and word not in groups:
        raise UsageError(
            f"No process group '{word}'.{_suggest(word, list(groups))} Groups: {', '.join(groups)}."
        )
    return word


def _groups_of(binding: Binding) -> tuple[str, ...]:
    from bot.deploy.flytoml import FlyTomlError, load_stage_config

    project, stage = binding.bound.get("project"), binding.bound.get("stage")
    entry = binding.catalog.project(project) if isinstance(project, str) else None
    found = entry.stage(stage) if entry and isinstance(stage, str) else None
    if found is None:
        return ()
    try:
        return load_stage_config(found.config_file).groups
    except (FlyTomlError, OSError):
        return ()  # the deploy itself reports a broken fly.toml, with its line


def _secret_name(label: str, word: str, binding: Binding) -> str:
    if "=" in word:
        raise UsageError(
            f"Give only the name ({word.split('=', 1)[0][:64]}), never its value in the "
            "command: flybot asks for the value privately."
        )
    if not _SECRET_NAME.match(word):
        raise UsageError(f"{label} '{word[:80]}' is not a secret name (letters, digits, _).")
    return word


def _code(label: str, word: str, binding: Binding) -> str:
    if not _CODE.match(word):
        raise UsageError(f"{label} must be a code like ABCD-EFGH.")
    raw = word.replace("-", "").upper()
    return f"{raw[:4]}-{raw[4:]}"


def _word(label: str, word: str, binding: Binding) -> str:
    return word


def choice(name: str, options: tuple[str, ...], describe: str = "") -> Kind:
    """A kind that takes one of fixed words."""

    def convert(label: str, word: str, binding: Binding) -> str:
        lowered = word.lower()
        if lowered in options:
            return lowered
        raise UsageError(
            f"{label} must be one of {', '.join(options)}, not '{word[:80]}'."
            f"{_suggest(lowered, list(options))}"
        )

    return Kind(name, describe or f"one of {', '.join(options)}", convert, choices=options)


# --- completions (for platforms with autocomplete) ---------------------------------------


def _starting(prefix: str, names: list[str]) -> list[str]:
    return [n for n in names if n.startswith(prefix.lower())][:25]


def _complete_project(prefix: str, binding: Binding) -> list[str]:
    return _starting(prefix, sorted(binding.catalog.projects))


def _complete_stage(prefix: str, binding: Binding) -> list[str]:
    project = binding.catalog.project(str(binding.bound.get("project", "")))
    return _starting(prefix, project.stage_names) if project else []


def _complete_group(prefix: str, binding: Binding) -> list[str]:
    return _starting(prefix, list(_groups_of(binding)))


def _complete_role(prefix: str, binding: Binding) -> list[str]:
    return _starting(prefix, [r.name for r in Role])


# --- the kinds ---------------------------------------------------------------------------

WORD = Kind("word", "a word", _word)
TEXT = Kind("text", "free text", _word)
PROJECT = Kind("project", "a project from flybot.toml", _project(False), complete=_complete_project)
PROJECT_OR_ALL = Kind(
    "project_or_all", "a project, or * for all", _project(True), complete=_complete_project
)
STAGE = Kind("stage", "a stage of the project", _stage(False), complete=_complete_stage)
STAGE_OR_ALL = Kind("stage_or_all", "a stage, or * for all", _stage(True), complete=_complete_stage)
GROUP = Kind("group", "a process group of the stage", _group, complete=_complete_group)
ROLE = Kind(
    "role",
    "viewer, deployer, approver or admin",
    _role,
    word=lambda role: role.name,
    choices=tuple(r.name for r in Role),
    complete=_complete_role,
)
USER = Kind("user", "a person: @mention or platform:workspace:user", _user, value_type="user")
INT = Kind("int", "a whole number", _int, value_type="integer")
VERSION = Kind("version", "a release version, e.g. 4", _positive, value_type="integer")
REQUEST = Kind("request", "an approval request number, e.g. 12", _positive, value_type="integer")
DURATION = Kind("duration", "a duration like 90s, 30m, 2h, 1d", _duration, word=duration_word)
IMAGE = Kind("image", "an image reference, e.g. registry.fly.io/app:v3", _image)
SECRET_NAME = Kind("secret_name", "a secret's name, e.g. API_TOKEN", _secret_name)
LINK_CODE = Kind("code", "a link code like ABCD-EFGH", _code, sensitive=True)
SWITCH = Kind("switch", "on when given", _word, value_type="boolean")
STRATEGY = choice("strategy", ("rolling", "immediate", "canary", "bluegreen"))

KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        WORD,
        TEXT,
        PROJECT,
        PROJECT_OR_ALL,
        STAGE,
        STAGE_OR_ALL,
        GROUP,
        ROLE,
        USER,
        INT,
        VERSION,
        REQUEST,
        DURATION,
        IMAGE,
        SECRET_NAME,
        LINK_CODE,
        SWITCH,
    )
}


def kind_named(name: str | Kind) -> Kind:
    if isinstance(name, Kind):
        return name
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"no parameter kind {name!r}; kinds: {', '.join(KINDS)}") from None
