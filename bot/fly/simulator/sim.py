"""`FlySimulator`: the simulated Fly (state, faults, call log) and its Python control API.
Serve it with `running_simulator` / `serve_in_thread` (server.py)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from typing import Any

from bot.fly.simulator.clock import SimClock, SimulatorTiming
from bot.fly.simulator.faults import CallRecord, Fault, FaultPlan
from bot.fly.simulator.ids import IdGen
from bot.fly.simulator.images import canonical
from bot.fly.simulator.state import SimApp, SimState

SEEDS = ("demo", "empty")


def strip_scheme(token: str) -> str:
    token = token.strip()
    for prefix in ("FlyV1 ", "Bearer "):
        if token.startswith(prefix):
            return token[len(prefix) :].strip()
    return token


class FlySimulator:
    """In-memory Fly: Machines API, releases, GraphQL, Prometheus and a fake registry.

    `seed` makes ids and injected faults reproducible. `token`: when set, only that token
    (sent as `Bearer` or `FlyV1`) is accepted; otherwise any non-empty one is. All methods
    are thread-safe (the server may run in another thread, see `serve_in_thread`)."""

    def __init__(
        self,
        seed: int | str = 0,
        timing: SimulatorTiming | None = None,
        token: str | None = None,
        *,
        personal_org: str = "personal",
        user_email: str = "you@example.com",
    ) -> None:
        self.seed = seed
        self.timing = timing or SimulatorTiming()
        self.token = strip_scheme(token) if token else None
        self.clock = SimClock()
        self.state = SimState(
            seed=seed,
            timing=self.timing,
            clock=self.clock,
            personal_org=personal_org,
            user_email=user_email,
        )
        self.faults = FaultPlan(seed)
        self.calls: list[CallRecord] = []
        self.lock = threading.RLock()
        self._request_ids = IdGen(f"requests:{seed}")
        self._closing: asyncio.Event | None = None

    # --- seeding -------------------------------------------------------------------------

    def seed_demo(self) -> None:
        """The demo org: ping-go-dev, ping-go-prod and hello-static (see demo.py)."""
        from bot.fly.simulator.demo import seed_demo

        with self.lock:
            seed_demo(self.state)

    def load_seed(self, name: str) -> None:
        if name not in SEEDS:
            raise ValueError(f"unknown seed {name!r}: one of {', '.join(SEEDS)}")
        if name == "demo":
            self.seed_demo()

    def create_app(self, name: str, org: str = "personal") -> SimApp:
        with self.lock:
            return self.state.create_app(name, org)

    # --- faults and the call log ---------------------------------------------------------

    def inject(
        self,
        operation: str = "*",
        *,
        status: int | None = None,
        rate: float = 1.0,
        latency: float = 0.0,
        latency_ms: float | None = None,
        timeout: bool | float | None = None,
        retry_after: int | None = None,
        count: int | None = None,
        applied: float = 0.0,
        machine_id: str | None = None,
        echo: bool = False,
    ) -> Fault:
        """Inject a fault into `operation` (an operation name as in the call log, or `*`).
        `timeout=True` hangs `timing.hang_s` seconds, a number hangs that long; then the call
        answers 504 without having acted. Latency (seconds, or `latency_ms`) is added before
        the answer. `applied` (0 to 1) is the chance that an error or timeout answer comes
        after the call was carried out (a lost answer); `machine_id` limits the fault to one
        machine; `echo` makes the error's text quote the request body. Faults stack: each is
        rolled, with the simulator's seeded random source, on
        every matching call."""
        hang: float | None
        if timeout is None or timeout is False:
            hang = None
        elif timeout is True:
            hang = self.timing.hang_s
        else:
            hang = float(timeout)
        fault = Fault(
            operation=operation,
            rate=rate,
            status=status,
            latency=latency + (latency_ms or 0.0) / 1000,
            timeout=hang,
            retry_after=retry_after,
            count=count,
            applied=applied,
            machine_id=machine_id,
            echo=echo,
        )
        with self.lock:
            return self.faults.add(fault)

    def clear_faults(self, operation: str | None = None) -> None:
        with self.lock:
            self.faults.clear(operation)

    def clear_calls(self) -> None:
        with self.lock:
            self.calls.clear()

    def calls_for(self, operation: str) -> list[CallRecord]:
        with self.lock:
            return [c for c in self.calls if c.operation == operation]

    def next_request_id(self) -> str:
        with self.lock:
            return f"{self._request_ids.ulid(self.clock.now())}-sim"

    # --- test controls -------------------------------------------------------------------

    def set_dns(self, app: str, hostname: str, value: bool = True) -> None:
        """Mark the certificate's DNS records as created (or not): the next check issues it."""
        with self.lock:
            self.state.set_dns(app, hostname, value)

    def set_certificate_issued(self, app: str, hostname: str, days_ago: float = 0.0) -> None:
        """Issue or renew the certificate as of `days_ago` (it expires 90 days later)."""
        with self.lock:
            self.state.set_issued(app, hostname, days_ago)

    def image_exists(self, image: str) -> bool:
        with self.lock:
            return self.state.image_exists(image)

    def prune_image(self, image: str) -> None:
        """Make an image disappear from the registry, as Fly's pruning does."""
        with self.lock:
            self.state.registry.prune(image)

    def push_image(self, image: str, like: str | None = None) -> str:
        """Push the tag again: it now names new bits (with the traits of `like`, e.g. a
        `…-broken` tag, or its own) under a new digest, which is returned. Machines already
        running the old digest keep running it."""
        with self.lock:
            return self.state.registry.push(image, like)

    def image_digest(self, image: str) -> str | None:
        """The digest the registry gives `image` now (None: no such image)."""
        with self.lock:
            return self.state.registry.digest_of(image)

    def set_start_duration(
        self, seconds: float, *, machine_id: str | None = None, image: str | None = None
    ) -> None:
        """How long `starting` lasts for one machine, or for every machine of an image."""
        if (machine_id is None) == (image is None):
            raise ValueError("give exactly one of machine_id or image")
        with self.lock:
            key = machine_id if machine_id is not None else canonical(str(image))
            self.state.start_overrides[key] = seconds
            for app in self.state.apps.values():
                for machine in app.machines.values():
                    if machine.id == key or (image and canonical(machine.image) == key):
                        machine.start_s = seconds

    def set_ready_after(self, seconds: float, *, image: str) -> None:
        """Machines of `image` started from now on answer their health checks only this long
        after they start (a slow-booting app): before that, checks are critical."""
        with self.lock:
            self.state.ready_overrides[canonical(image)] = seconds

    def set_timing(self, **changes: Any) -> SimulatorTiming:
        """Change how long things take from now on (e.g. `list_lag_s=0.5`)."""
        with self.lock:
            self.timing = dataclasses.replace(self.timing, **changes)
            self.state.timing = self.timing
            return self.timing

    def advance(self, seconds: float) -> None:
        """Move the simulator's clock forward: leases expire, machines finish transitions,
        counters grow, all as if that time had passed."""
        with self.lock:
            self.clock.advance(seconds)
            self.state.advance_all()

    def machine(self, app: str, machine_id: str) -> dict[str, Any]:
        with self.lock:
            return self.state.machine_json(self.state.machine(app, machine_id))

    def machines(self, app: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        with self.lock:
            found, _ = self.state.list_machines(app, include_deleted=include_deleted)
            return [self.state.machine_json(m) for m in found]

    def dropped_requests(self) -> list[tuple[str, str]]:
        """(machine id, how) of every machine taken down while the proxy still sent it
        requests: stopped or force-destroyed uncordoned, or before its requests drained."""
        with self.lock:
            return list(self.state.dropped)

    def lease_lapses(self) -> list[tuple[str, str]]:
        """(machine id, lease description) of every lease that ran out while held: its
        holder neither refreshed nor released it in time."""
        with self.lock:
            self.state.advance_all()
            return [
                (machine.id, lease.description)
                for app in self.state.apps.values()
                for machine in app.machines.values()
                for lease in machine.lapsed_leases(self.clock.now())
            ]

    def set_traffic(
        self, app: str, *, since: float | None = None, rates: dict[str, float] | None = None
    ) -> None:
        """The HTTP traffic each started machine with services serves from `since` (a
        simulator-clock time) at `rates` (requests/s per status code; None: its image's)."""
        with self.lock:
            found = self.state.app(app)
            found.traffic_since, found.traffic_rates = since, dict(rates) if rates else None

    def add_redis(self, app: str, name: str, **options: Any) -> dict[str, Any]:
        """An Upstash Redis add-on for the app, as `fly redis create` makes (GraphQL addOns);
        options: region, plan, status, read_regions."""
        with self.lock:
            return self.state.add_redis(app, name, **options)

    def emit_logs(
        self, app: str, machine_id: str, messages: list[str], level: str = "info"
    ) -> None:
        """Lines the machine's app prints now, in order (e.g. 500 of them to test paging)."""
        with self.lock:
            self.state.emit_logs(app, machine_id, messages, level)

    def machine_secrets(self, app: str, machine_id: str) -> dict[str, str]:
        """The secrets a machine would see in its environment."""
        with self.lock:
            return self.state.machine_secrets(app, machine_id)

    # --- used by the HTTP layer ----------------------------------------------------------

    def bind_loop(self) -> None:
        self._closing = asyncio.Event()

    def close(self) -> None:
        if self._closing is not None:
            self._closing.set()

    @property
    def closing(self) -> bool:
        return self._closing is not None and self._closing.is_set()

    async def sleep(self, seconds: float) -> None:
        """Sleep, but wake at once when the server shuts down (so nothing hangs it)."""
        if seconds <= 0:
            return
        if self._closing is None:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), timeout=seconds)
