"""The command layer: the pipeline, the registry of declared verbs, and one module per family.

It speaks to people only through the port (`commands.port`: an `Interaction` for the
invocation being handled, the router's `Outbox` for everything durable) and never imports a
chat library. To read it: `port.py` and `reply.py` (what goes in and out), `registry.py` and
`kinds.py` (how a verb is declared), `dispatch.py` (the pipeline) and `guard.py` (locks,
freezes, approvals), then any family module.
"""

from __future__ import annotations

from commands import (
    approvals,
    audit,
    certs,
    deploy,
    help,
    identity,
    launch,
    locks,
    logs,
    metrics,
    perms,
    restart,
    scale,
    secrets,
    status,
    usage,
)
from commands.registry import Registry, declared_in

FAMILIES = (
    help,
    identity,
    perms,
    audit,
    locks,
    status,
    logs,
    metrics,
    deploy,
    launch,
    approvals,
    certs,
    scale,
    secrets,
    restart,
    usage,
)


def build_registry() -> Registry:
    """Every verb the family modules declare."""
    registry = Registry()
    for family in FAMILIES:
        registry.add_all(declared_in(family))
        registry.add_buttons(getattr(family, "BUTTONS", {}))
    return registry
