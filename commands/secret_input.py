"""Secret values: asked privately by the adapter, carried beside an invocation, handed only
to the handler.

A verb declares its secret input up front (`Param(..., asks_value=True)` on a secret-name
parameter), so an adapter can learn, from the line alone and before anything slow, that it
must open a form (a Slack modal from the 3-second trigger_id, a Discord modal as the
interaction's first response, a no-echo prompt in the shell). The values then come back as
`SecretValues`, never inside the command text, and nothing but the handler sees them: the
audit log, approval requests and replies only ever hold the names.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from commands.errors import UsageError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


class SecretValues(Mapping[str, str]):
    """Name -> value. Its repr and str show names only, so a logged object leaks nothing."""

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._values = dict(values or {})

    def __getitem__(self, name: str) -> str:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"SecretValues({', '.join(f'{n}=•••' for n in self._values)})"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("secret values are not pickled")


@dataclass(frozen=True)
class SecretRequest:
    """What the adapter must ask for before the command runs: one value per name."""

    command: str  # e.g. "secrets set"
    names: tuple[str, ...]
    title: str  # a form title, e.g. "secrets set ping-go/prod"

    def missing(self, values: Mapping[str, str]) -> tuple[str, ...]:
        return tuple(n for n in self.names if not values.get(n))


class ValueInCommand(UsageError):
    """A secret's value was typed in the command text. Raised before anything is bound,
    stored or logged; it carries the names only (the line as it should have been typed)."""

    def __init__(self, command: str, names: tuple[str, ...], clean_words: tuple[str, ...]) -> None:
        self.command = command
        self.names = names
        self.clean_words = clean_words  # the words typed, each NAME=value cut to its NAME
        shown = ", ".join(f"{n}=…" for n in names) or "a NAME=value"
        retype = " ".join(shlex.quote(w) for w in clean_words)
        super().__init__(
            f"Refused: {shown} puts a secret's value in the command text, where chat history "
            "and logs could keep it; nothing was stored or sent to Fly. Give only the names: "
            f"`/fly {retype}`, and flybot asks for each value privately (a form in Slack or "
            "Discord, a hidden prompt in the shell)."
        )


def typed_values(words: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """The names of `NAME=value` words, and the words with each value cut off; None when no
    word carries a value. Flags are words too: `--X=value` is a value in the text as well."""
    if not any("=" in word for word in words):
        return None
    names: list[str] = []
    clean: list[str] = []
    for word in words:
        if "=" not in word:
            clean.append(word)
            continue
        name = word.split("=", 1)[0].lstrip("-")
        shown = name if _NAME.match(name) else "NAME"
        names.append(shown)
        clean.append(shown)
    return tuple(names), tuple(clean)
