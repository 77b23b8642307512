"""flybot's Fly.io client: Machines REST, releases, GraphQL and Prometheus over httpx.

The errors and the config load with the package; the client and the pydantic models load on
first use of one of their names (`flybot run` starts without them: a command that calls Fly
brings them in).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.fly.config import FlyConfig, RetryPolicy, Timeouts, authorization_header, normalize_token
from bot.fly.errors import (
    BadRequestError,
    ConflictError,
    FlyAPIError,
    FlyTimeoutError,
    LeaseHeldError,
    NotFoundError,
    PreconditionFailedError,
    RateLimitedError,
    ServerError,
    TransportError,
    UnauthorizedError,
)
from bot.lazy import import_now

if TYPE_CHECKING:
    from bot.fly.client import LAUNCH_ID_KEY, LEASE_NONCE_HEADER, FlyClient
    from bot.fly.models import (
        App,
        Certificate,
        ImageRef,
        IPAssignment,
        Lease,
        LogEntry,
        LogPage,
        Machine,
        MachineConfig,
        MachineEvent,
        MachinePage,
        PromSample,
        PromSeries,
        Release,
        Secret,
        SecretsSetResult,
        Volume,
        WaitResult,
    )

_ON_FIRST_USE = {
    **dict.fromkeys(("LAUNCH_ID_KEY", "LEASE_NONCE_HEADER", "FlyClient"), "bot.fly.client"),
    **dict.fromkeys(
        (
            "App",
            "Certificate",
            "ImageRef",
            "IPAssignment",
            "Lease",
            "LogEntry",
            "LogPage",
            "Machine",
            "MachineConfig",
            "MachineEvent",
            "MachinePage",
            "PromSample",
            "PromSeries",
            "Release",
            "Secret",
            "SecretsSetResult",
            "Volume",
            "WaitResult",
        ),
        "bot.fly.models",
    ),
}


def __getattr__(name: str) -> Any:
    module = _ON_FIRST_USE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_now(module), name)
    globals()[name] = value
    return value


__all__ = [
    "LAUNCH_ID_KEY",
    "LEASE_NONCE_HEADER",
    "App",
    "BadRequestError",
    "Certificate",
    "ConflictError",
    "FlyAPIError",
    "FlyClient",
    "FlyConfig",
    "FlyTimeoutError",
    "IPAssignment",
    "ImageRef",
    "Lease",
    "LeaseHeldError",
    "LogEntry",
    "LogPage",
    "Machine",
    "MachineConfig",
    "MachineEvent",
    "MachinePage",
    "NotFoundError",
    "PreconditionFailedError",
    "PromSample",
    "PromSeries",
    "RateLimitedError",
    "Release",
    "RetryPolicy",
    "Secret",
    "SecretsSetResult",
    "ServerError",
    "Timeouts",
    "TransportError",
    "UnauthorizedError",
    "Volume",
    "WaitResult",
    "authorization_header",
    "normalize_token",
]
