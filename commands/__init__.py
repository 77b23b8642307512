"""The command layer: grammar, registry, permissions, and one module per command family.

It speaks to people only through `commands.port.Conversation` and never imports a chat library.
"""

from __future__ import annotations

from commands import audit, help, identity, locks, perms
from commands.registry import Registry

FAMILIES = (help, identity, perms, audit, locks)


def build_registry() -> Registry:
    registry = Registry()
    for family in FAMILIES:
        family.register(registry)
    return registry
