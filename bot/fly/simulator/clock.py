"""The simulator's clock and the durations its machines take."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime


@dataclass(frozen=True)
class SimulatorTiming:
    """How long things take, in seconds. The defaults are short so the sandbox and tests feel
    instant; `realistic()` is closer to what Fly does."""

    create_s: float = 0.02  # created -> starting
    start_s: float = 0.1  # starting -> started
    stop_s: float = 0.05  # stopping -> stopped (also suspending -> suspended)
    update_s: float = 0.05  # replacing/updating before the new version boots
    destroy_s: float = 0.1  # destroying -> destroyed
    check_grace_s: float = 0.2  # checks are "warning" this long after a start (no grace set)
    check_interval_s: float = 0.1  # a check runs this often when its config gives no interval
    check_time_scale: float = 1.0  # configured grace periods and intervals, times this
    check_register_s: float = 0.0  # checks are not listed at all this long after a start
    crash_after_s: float = 0.15  # a crashloop image exits this long after each start
    restart_delay_s: float = 0.1  # between an exit and the restart
    task_s: float = 0.1  # an auto_destroy machine (release command) runs this long
    hang_s: float = 30.0  # a `timeout` fault without its own delay hangs this long
    wait_poll_s: float = 0.01  # how often a wait call looks at the machine
    lease_ttl_s: int = 30  # a lease request without ttl
    list_lag_s: float = 0.0  # a new machine is missing from listings this long (Fly lags)
    proxy_drain_s: float = 2.0  # after a cordon, the proxy's requests in flight take this long
    # A certificate's DNS records appear by themselves this long after it is added, as if its
    # owner created them (the sandbox); None: only the /__sim/ DNS control sets them.
    cert_dns_after_s: float | None = None

    @classmethod
    def fast(cls) -> SimulatorTiming:
        """Tiny durations for tests."""
        return cls(
            create_s=0.005,
            start_s=0.03,
            stop_s=0.02,
            update_s=0.02,
            destroy_s=0.03,
            check_grace_s=0.05,
            check_interval_s=0.02,
            check_time_scale=0.05,
            crash_after_s=0.05,
            restart_delay_s=0.03,
            task_s=0.03,
            hang_s=5.0,
            wait_poll_s=0.005,
            proxy_drain_s=0.03,
        )

    @classmethod
    def realistic(cls) -> SimulatorTiming:
        return cls(
            create_s=0.3,
            start_s=1.5,
            stop_s=1.0,
            update_s=0.8,
            destroy_s=2.0,
            check_grace_s=5.0,
            check_interval_s=15.0,
            crash_after_s=1.5,
            restart_delay_s=1.0,
            task_s=3.0,
            hang_s=120.0,
            wait_poll_s=0.05,
        )


class SimClock:
    """Wall-clock time plus an offset that tests can move forward (`advance`), so lease
    expiry and counters can be tested without sleeping. Everything time-based in the
    simulator reads this clock and is evaluated lazily when a request arrives."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


def iso(ts: float) -> str:
    """Fly's timestamp format: RFC 3339, UTC, whole seconds, `Z`."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def ms(ts: float) -> int:
    return int(ts * 1000)
