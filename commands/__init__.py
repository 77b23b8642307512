"""The command layer: grammar, registry, permissions, and one module per command family.

It speaks to people only through `commands.port.Conversation` and never imports a chat library.
"""

from __future__ import annotations

from commands import approvals, audit, deploy, help, identity, locks, perms, status
from commands.registry import Registry

FAMILIES = (help, identity, perms, audit, locks, status, deploy, approvals)


def build_registry() -> Registry:
    registry = Registry()
    for family in FAMILIES:
        family.register(registry)
    return registry
