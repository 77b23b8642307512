"""The deploy engine's timing: light enough for start-up to read (the scheduler's sweep,
the approvals' staleness) without loading the engine itself."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class EngineTiming:
    """Seconds. The heartbeat, staleness and sweep settings can also come from the
    environment (`FLYBOT_DEPLOY_HEARTBEAT`, `FLYBOT_DEPLOY_STALE_AFTER`,
    `FLYBOT_DEPLOY_SWEEP_EVERY`), see `from_env`."""

    # A lease outlives a dead process by its TTL, unless a live flybot's sweep frees it first
    # (after `stale_after`). flyctl takes 13 s and refreshes every 4 s, which costs a call
    # per machine every 4 s of a deploy; 60 s refreshed every 40 s (a refresh may take at
    # most 10 s, and a failed round is tried again at once) costs a tenth of that, and a
    # dead flybot's leases stay about as long as its sweep would leave them anyway.
    lease_ttl: int = 60
    lease_refresh: float = 40.0
    check_poll: float = 1.0  # the interval assumed for checks that declare none
    # While checks fail, the pause between looks doubles from two check intervals up to
    # this (or one interval, if longer): a slow boot costs a few looks, not one per run.
    check_backoff_max: float = 4.0
    heartbeat: float = 5.0  # a running deploy writes its heartbeat this often
    stale_after: float = 30.0  # a deploy whose heartbeat is this old is dead
    sweep_every: float = 15.0  # how often the scheduler looks for dead deploys
    crash_exits: int = 2  # exits after an update that make a crash loop
    check_pace: float = 1.0  # configured check grace periods and intervals, times this
    proxy_settle: float = 10.0  # bluegreen: greens in service this long before blues cordon
    drain: float = 10.0  # bluegreen: a cordoned blue's requests drain this long before stop
    logs_timeout: float = 10.0  # the failing machine's logs are read this long at most

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EngineTiming:
        env = os.environ if environ is None else environ
        values: dict[str, float] = {}
        for field_name, variable in (
            ("heartbeat", "FLYBOT_DEPLOY_HEARTBEAT"),
            ("stale_after", "FLYBOT_DEPLOY_STALE_AFTER"),
            ("sweep_every", "FLYBOT_DEPLOY_SWEEP_EVERY"),
        ):
            raw = env.get(variable)
            if raw:
                values[field_name] = float(raw)
        return cls(**values)  # type: ignore[arg-type]
