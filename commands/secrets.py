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

from collections.abc import Iterator, Mapping
from dataclasses import dataclass


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
