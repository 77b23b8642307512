"""How to reach Fly: token, org, base URLs, timeouts and the retry policy."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

DEFAULT_FLAPS_BASE_URL = "https://api.machines.dev"
DEFAULT_API_BASE_URL = "https://api.fly.io"

# Macaroon tokens go out as `FlyV1 <token>`, everything else as `Bearer <token>` (as flyctl).
_MACAROON_PREFIXES = ("fm1r_", "fm1a_", "fm2_")
_PASTED_SCHEMES = ("flyv1 ", "bearer ")


def normalize_token(raw: str) -> str:
    """The bare token, without whitespace or a `FlyV1 `/`Bearer ` a user pasted in front."""
    token = raw.strip()
    while token.lower().startswith(_PASTED_SCHEMES):
        token = token.split(" ", 1)[1].strip()
    return token


def authorization_header(token: str) -> str:
    token = normalize_token(token)
    scheme = "FlyV1" if token.startswith(_MACAROON_PREFIXES) else "Bearer"
    return f"{scheme} {token}"


@dataclass(frozen=True)
class Timeouts:
    """Seconds. `read` bounds an ordinary call; a wait call reads for its own timeout plus
    `wait_margin`."""

    connect: float = 5.0
    read: float = 30.0
    write: float = 30.0
    pool: float = 5.0
    wait_margin: float = 10.0

    def httpx(self, *, read: float | None = None, cap: float | None = None) -> httpx.Timeout:
        """An httpx.Timeout, each phase no longer than `cap` (what is left of a call's budget)."""

        def bounded(value: float) -> float:
            return max(0.001, min(value, cap)) if cap is not None else value

        return httpx.Timeout(
            connect=bounded(self.connect),
            read=bounded(self.read if read is None else read),
            write=bounded(self.write),
            pool=bounded(self.pool),
        )


@dataclass(frozen=True)
class RetryPolicy:
    """Transient failures (408, 429, 5xx, transport errors) are retried with exponential
    backoff and full jitter, or after Fly's `Retry-After`, until `attempts` tries or `budget`
    seconds for the whole call, whichever comes first."""

    attempts: int = 5
    backoff_initial: float = 0.5
    backoff_max: float = 8.0
    budget: float = 60.0

    @classmethod
    def none(cls) -> RetryPolicy:
        return cls(attempts=1)


@dataclass(frozen=True)
class FlyConfig:
    token: str = field(repr=False)
    org: str = "personal"
    flaps_base_url: str = DEFAULT_FLAPS_BASE_URL
    api_base_url: str = DEFAULT_API_BASE_URL
    # None means `{api_base_url}/prometheus/{org}`.
    prometheus_base_url: str | None = None
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    user_agent: str = "flybot"
    # How long Fly's machine listing may lag behind a create: after an ambiguous create the
    # client looks for its launch id this long before concluding no machine was made.
    listing_lag: float = 2.0
    # Where image registries are reached for digest look-ups; None: each at its own host.
    registry_base_url: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "token", normalize_token(self.token))
        object.__setattr__(self, "flaps_base_url", self.flaps_base_url.rstrip("/"))
        object.__setattr__(self, "api_base_url", self.api_base_url.rstrip("/"))
        if self.prometheus_base_url is not None:
            object.__setattr__(self, "prometheus_base_url", self.prometheus_base_url.rstrip("/"))

    @property
    def prometheus_url(self) -> str:
        return self.prometheus_base_url or f"{self.api_base_url}/prometheus/{self.org}"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: object) -> FlyConfig:
        """From `FLY_API_TOKEN`, `FLY_ORG`, `FLY_FLAPS_BASE_URL`, `FLY_API_BASE_URL` and
        `FLY_PROMETHEUS_BASE_URL` (the names flyctl reads, where it reads them)."""
        env = os.environ if environ is None else environ
        token = env.get("FLY_API_TOKEN") or env.get("FLY_ACCESS_TOKEN") or ""
        values: dict[str, object] = {
            "token": token,
            "org": env.get("FLY_ORG") or "personal",
            "flaps_base_url": env.get("FLY_FLAPS_BASE_URL") or DEFAULT_FLAPS_BASE_URL,
            "api_base_url": env.get("FLY_API_BASE_URL") or DEFAULT_API_BASE_URL,
            "prometheus_base_url": env.get("FLY_PROMETHEUS_BASE_URL") or None,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]
