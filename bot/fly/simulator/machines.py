"""One simulated machine: its JSON, its lifecycle and its health checks.

Lifecycle is lazy: a machine has at most one pending transition (`next_action` due at
`next_at`, on the simulator clock); `advance(now)` applies every transition that is due. So
state is always a pure function of the clock, and a test can jump the clock forward."""

from __future__ import annotations

import bisect
import copy
from dataclasses import dataclass, field
from typing import Any

from bot.fly.simulator.clock import SimulatorTiming, iso, ms
from bot.fly.simulator.ids import IdGen
from bot.fly.simulator.images import image_ref_of, is_broken, is_crashloop, is_oom

WAIT_STATES = frozenset({"started", "stopped", "suspended", "destroyed", "failed", "settled"})
MAX_EVENTS = 100
MAX_LOG_LINES = 5000  # per machine; older lines are dropped, as Fly's log retention does
DEFAULT_GUEST = {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256}


@dataclass
class Lease:
    nonce: str
    owner: str
    description: str
    expires_at: float
    version: str

    def to_json(self) -> dict[str, Any]:
        return {
            "nonce": self.nonce,
            "expires_at": int(self.expires_at),
            "owner": self.owner,
            "description": self.description,
            "version": self.version,
        }


@dataclass(frozen=True)
class CheckSpec:
    name: str
    type: str
    port: int
    method: str
    path: str
    grace: float | None = None  # seconds, as configured (None: the simulator's default)
    interval: float | None = None


@dataclass
class SimMachine:
    id: str
    name: str
    app: str
    region: str
    config: dict[str, Any]
    version: str
    private_ip: str
    vm_ip: str
    created_at: float
    seq: int
    updated_at: float = 0.0
    state: str = "created"
    events: list[dict[str, Any]] = field(default_factory=list)
    cordoned: bool = False
    cordoned_at: float | None = None
    lease: Lease | None = None
    started_at: float | None = None
    next_at: float | None = None
    next_action: str | None = None
    restarts: int = 0
    start_s: float | None = None  # per-machine start duration, overriding the timing
    secrets_version: int = 0
    destroyed_at: float | None = None
    lapsed: list[Lease] = field(default_factory=list)  # leases that ran out while held
    ready_s: float | None = None  # the app answers its checks this long after a start
    digest: str = ""  # what the image resolved to when the machine was created or updated
    bits: str = ""  # the tag reference whose traits those bits carry (broken, crashloop)
    # What the machine printed: (timestamp, number, level, provider, message). The number
    # counts every line ever printed, so a line keeps its id when older ones are dropped.
    logs: list[tuple[float, int, str, str, str]] = field(default_factory=list)
    log_count: int = 0
    health_logged_at: float | None = None  # the last failing health request logged
    # (when, state) at every change, oldest first: what Prometheus' fly_instance_up reads
    history: list[tuple[float, str]] = field(default_factory=list)

    # --- reading -----------------------------------------------------------------------

    @property
    def image(self) -> str:
        return str(self.config.get("image") or "")

    @property
    def traits(self) -> str:
        return self.bits or self.image

    @property
    def metadata(self) -> dict[str, str]:
        meta = self.config.get("metadata")
        return meta if isinstance(meta, dict) else {}

    def active_lease(self, now: float) -> Lease | None:
        if self.lease is not None and self.lease.expires_at <= now:
            self.lapsed.append(self.lease)
            self.lease = None
        return self.lease

    def lapsed_leases(self, now: float) -> list[Lease]:
        self.active_lease(now)
        return list(self.lapsed)

    def to_json(self, now: float, timing: SimulatorTiming, *, events: int = 20) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "region": self.region,
            "instance_id": self.version,
            "version": self.version,
            "private_ip": self.private_ip,
            "config": copy.deepcopy(self.config),
            "image_ref": image_ref_of(self.image, self.digest),
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at or self.created_at),
            "events": self.recent_events(events),
            "checks": self.checks(now, timing),
            "cordoned": self.cordoned,
            "host_status": "ok",
        }

    def recent_events(self, limit: int) -> list[dict[str, Any]]:
        return [copy.deepcopy(e) for e in reversed(self.events[-limit:])]

    def check_specs(self) -> list[CheckSpec]:
        specs = []
        for name, check in sorted((self.config.get("checks") or {}).items()):
            if isinstance(check, dict):
                specs.append(_spec(str(name), check, default_port=8080))
        for service in self.config.get("services") or []:
            internal = int(service.get("internal_port") or 8080)
            for index, check in enumerate(service.get("checks") or []):
                kind = str(check.get("type") or "tcp")
                name = f"servicecheck-{index:02d}-{kind}-{internal}"
                specs.append(_spec(name, check, default_port=internal))
        return specs

    def checks(self, now: float, timing: SimulatorTiming) -> list[dict[str, Any]]:
        """As Fly reports them. Checks appear only `check_register_s` after a start (Fly
        registers them late), show "warning" until their grace period ends, and then hold
        the result of their last run: Fly runs a check once per interval."""
        if (
            timing.check_register_s
            and self.started_at is not None
            and now - self.started_at < timing.check_register_s
        ):
            return []
        out = []
        for spec in self.check_specs():
            status, output, since = self._check_result(spec, now, timing)
            out.append(
                {"name": spec.name, "status": status, "output": output, "updated_at": iso(since)}
            )
        return out

    def _check_result(
        self, spec: CheckSpec, now: float, timing: SimulatorTiming
    ) -> tuple[str, str, float]:
        if self.state != "started" or self.started_at is None:
            return "critical", f"the machine is {self.state}", self.updated_at or self.created_at
        scale = timing.check_time_scale
        grace = timing.check_grace_s if spec.grace is None else spec.grace * scale
        interval = timing.check_interval_s if spec.interval is None else spec.interval * scale
        first = self.started_at + grace
        if now < first:
            return "warning", "waiting for status update", self.started_at
        ran = first + ((now - first) // max(interval, 1e-3)) * max(interval, 1e-3)
        target = f"{self.vm_ip}:{spec.port}"
        if is_crashloop(self.traits) or is_oom(self.traits):
            return "critical", f"dial tcp {target}: connect: connection refused", ran
        ready = self.started_at + (self.ready_s or 0.0)
        if spec.type == "http":
            url = f"{spec.method} http://{target}{spec.path}"
            if is_broken(self.traits):
                return (
                    "critical",
                    f'HTTP {url}: 500 Internal Server Error Output: "database unavailable"',
                    ran,
                )
            if ran < ready:
                return "critical", f"HTTP {url}: dial tcp {target}: connection refused", ran
            return "passing", f'HTTP {url}: 200 OK Output: "ok"', ran
        if is_broken(self.traits) or ran < ready:
            return "critical", f"dial tcp {target}: connect: connection refused", ran
        return "passing", f"TCP connect {target}: Success", ran

    def healthy(self, now: float, timing: SimulatorTiming) -> bool:
        return self.state == "started" and all(
            c["status"] == "passing" for c in self.checks(now, timing)
        )

    # --- lifecycle ---------------------------------------------------------------------

    def event(
        self,
        ids: IdGen,
        at: float,
        type_: str,
        status: str,
        source: str = "user",
        request: dict[str, Any] | None = None,
    ) -> None:
        item: dict[str, Any] = {
            "id": ids.ulid(at),
            "type": type_,
            "status": status,
            "source": source,
            "timestamp": ms(at),
        }
        if request is not None:
            item["request"] = request
        self.events.append(item)
        del self.events[:-MAX_EVENTS]

    def schedule(self, action: str | None, at: float | None) -> None:
        self.next_action, self.next_at = action, at

    def set_state(self, state: str, at: float) -> None:
        self.state = state
        self.updated_at = at
        if self.history and self.history[-1][0] > at:  # a back-dated seed: keep it in order
            self.history = [h for h in self.history if h[0] <= at]
        self.history.append((at, state))

    def state_at(self, t: float) -> str | None:
        """The state the machine was in at `t` (None before it was created)."""
        if t < self.created_at:
            return None
        index = bisect.bisect_right(self.history, (t, "\uffff")) - 1
        return self.history[index][1] if index >= 0 else "created"

    def log(self, at: float, message: str, level: str = "info", provider: str = "app") -> None:
        self.log_count += 1
        self.logs.append((at, self.log_count, level, provider, message))
        del self.logs[:-MAX_LOG_LINES]

    def _command(self) -> str:
        init = self.config.get("init") or {}
        cmd = init.get("cmd") or init.get("exec") or ["/app/server"]
        return " ".join(str(c) for c in cmd)

    def _port(self) -> int:
        for service in self.config.get("services") or []:
            if service.get("internal_port"):
                return int(service["internal_port"])
        return 8080

    def boot_logs(self, at: float) -> None:
        self.log(at, f"Pulling container image {self.image}", provider="runner")
        self.log(at, f"Successfully prepared image {self.image}", provider="runner")
        self.log(at, "Configuring firecracker", provider="runner")

    def started_logs(self, at: float) -> None:
        self.log(at, "Starting init (commit: 6c3309ba)...")
        self.log(at, f"Preparing to run: `{self._command()}` as root")
        if self.config.get("auto_destroy"):
            self.log(at, f"release command: {self._command()}")
            return
        port = self._port()
        if is_crashloop(self.traits) or is_oom(self.traits):
            self.log(at, f"{self.app}: loading configuration")
            return
        self.log(at, f"{self.app}: listening on 0.0.0.0:{port}")
        if is_broken(self.traits):
            self.log(
                at,
                "ERROR database: dial tcp 10.0.0.5:5432: connect: connection refused "
                "(DATABASE_URL unreachable)",
                level="error",
            )

    def _health_logs(self, now: float, timing: SimulatorTiming) -> None:
        """A broken image answers its HTTP health checks with 500, and says so in its log,
        once per check interval (at most the last 20 of a long jump of the clock)."""
        if self.state != "started" or self.started_at is None or not is_broken(self.traits):
            return
        specs = [s for s in self.check_specs() if s.type == "http"]
        if not specs:
            return
        spec = specs[0]
        scale = timing.check_time_scale
        grace = timing.check_grace_s if spec.grace is None else spec.grace * scale
        every = timing.check_interval_s if spec.interval is None else spec.interval * scale
        interval = max(every, 1e-3)
        first = self.started_at + grace
        if now < first:
            return
        last = self.health_logged_at
        runs = int((now - first) // interval) + 1
        done = 0 if last is None or last < first else int((last - first) // interval) + 1
        for run in range(max(done, runs - 20), runs):
            at = first + run * interval
            self.log(
                at,
                f'{spec.method} {spec.path} 500 Internal Server Error in 2ms: "database '
                'unavailable"',
                level="error",
            )
            self.health_logged_at = at

    def boot(self, at: float, timing: SimulatorTiming) -> None:
        """Go to `starting` now and to `started` after the start duration."""
        self.boot_logs(at)
        self.set_state("starting", at)
        self.started_at = None
        start_s = timing.start_s if self.start_s is None else self.start_s
        self.schedule("started", at + start_s)

    def advance(self, now: float, timing: SimulatorTiming, ids: IdGen) -> None:
        for _ in range(10_000):  # a clock jumped far ahead replays a crash loop, bounded
            if self.next_at is None or self.next_at > now:
                break
            action, at = self.next_action, self.next_at
            self._health_logs(at, timing)
            self.schedule(None, None)
            self._apply(str(action), at, timing, ids)
        self._health_logs(now, timing)

    def _apply(self, action: str, at: float, timing: SimulatorTiming, ids: IdGen) -> None:
        if action == "boot":
            self.boot(at, timing)
        elif action == "started":
            self.set_state("started", at)
            self.started_at = at
            self.event(ids, at, "start", "started", "flyd")
            self.started_logs(at)
            if self.config.get("auto_destroy"):
                self.schedule("task_exit", at + timing.task_s)
            elif is_crashloop(self.traits) or is_oom(self.traits):
                self.schedule("crash", at + timing.crash_after_s)
        elif action == "crash":
            self._crash(at, timing, ids)
        elif action == "task_exit":
            code = 1 if _task_fails(self.config, self.traits) else 0
            if code:
                self.log(
                    at,
                    'Error: migration 0042_add_orders failed: relation "orders" already exists',
                    level="error",
                )
            else:
                self.log(at, "migrations: nothing to do, schema is current")
            self.log(at, f"Main child exited normally with code: {code}")
            self.log(at, "Starting clean up.")
            self._exit_event(ids, at, code, restarting=False)
            self.set_state("stopped", at)
            self.started_at = None
            if self.config.get("auto_destroy"):
                self.set_state("destroying", at)
                self.schedule("destroyed", at + timing.destroy_s)
        elif action == "stopped":
            self.log(at, "Sending signal SIGINT to main child process w/ PID 313")
            self.log(at, "Main child exited normally with code: 0")
            self.log(at, "Starting clean up.")
            self._exit_event(ids, at, 0, restarting=False, requested=True)
            self.set_state("stopped", at)
            self.started_at = None
        elif action == "suspended":
            self.set_state("suspended", at)
            self.event(ids, at, "suspend", "suspended", "flyd")
            self.started_at = None
        elif action == "restart":
            self.log(at, "Sending signal SIGINT to main child process w/ PID 313")
            self.log(at, "Main child exited normally with code: 0")
            self.log(at, "machine restarting", provider="runner")
            self._exit_event(ids, at, 0, restarting=True, requested=True)
            self.boot(at, timing)
        elif action == "replaced":
            self.boot(at, timing)
        elif action == "updated":
            self.set_state("stopped", at)
            self.started_at = None
        elif action == "destroyed":
            self.set_state("destroyed", at)
            self.destroyed_at = at
            self.started_at = None
            self.lease = None
            self.event(ids, at, "destroy", "destroyed", "flyd")

    def _crash(self, at: float, timing: SimulatorTiming, ids: IdGen) -> None:
        restart = self.config.get("restart") or {}
        policy = str(restart.get("policy") or "on-failure")
        max_retries = int(restart.get("max_retries") or 10)
        again = policy == "always" or (policy == "on-failure" and self.restarts < max_retries)
        oom = is_oom(self.traits)
        code = 137 if oom else 1
        if oom:
            self.log(
                at,
                "Out of memory: Killed process 313 (server) total-vm:1212340kB, "
                "anon-rss:247812kB, file-rss:0kB, shmem-rss:0kB",
                level="error",
                provider="runner",
            )
        else:
            for line in _STACK:
                self.log(at, line.format(app=self.app), level="error")
            self.log(at, f"Main child exited normally with code: {code}")
        self.log(at, "Starting clean up.")
        if not again:
            self.log(
                at, f"machine has reached its max restart count of {max_retries}", provider="runner"
            )
        self._exit_event(ids, at, code, restarting=again, oom=oom)
        self.started_at = None
        if again:
            self.restarts += 1
            self.set_state("starting", at)
            start_s = timing.start_s if self.start_s is None else self.start_s
            self.schedule("started", at + timing.restart_delay_s + start_s)
        else:
            self.set_state("stopped", at)

    def _exit_event(
        self,
        ids: IdGen,
        at: float,
        code: int,
        *,
        restarting: bool,
        requested: bool = False,
        oom: bool = False,
    ) -> None:
        self.event(
            ids,
            at,
            "exit",
            "stopped",
            "flyd",
            request={
                "exit_event": {
                    "requested_stop": requested,
                    "restarting": restarting,
                    "guest_exit_code": code,
                    "guest_signal": -1,
                    "guest_error": "",
                    "exit_code": code,
                    "signal": -1,
                    "error": "",
                    "oom_killed": oom,
                    "exited_at": iso(at),
                },
                "restart_count": self.restarts,
            },
        )


_STACK = (
    "panic: runtime error: invalid memory address or nil pointer dereference",
    "[signal SIGSEGV: segmentation violation code=0x1 addr=0x18 pc=0x6d2f4a]",
    "goroutine 1 [running]:",
    "main.(*Server).routes(0x0)",
    "\t/src/{app}/server.go:88 +0x2a",
    "main.main()",
    "\t/src/{app}/main.go:41 +0x1c5",
)


def _spec(name: str, check: dict[str, Any], *, default_port: int) -> CheckSpec:
    return CheckSpec(
        name=name,
        type=str(check.get("type") or "tcp"),
        port=int(check.get("port") or default_port),
        method=str(check.get("method") or "GET").upper(),
        path=str(check.get("path") or "/"),
        grace=_seconds(check.get("grace_period")),
        interval=_seconds(check.get("interval")),
    )


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def _seconds(value: Any) -> float | None:
    """A Go duration as fly.toml writes them ("500ms", "1s", "1m30s"), None if absent."""
    if not isinstance(value, str) or not value:
        return None
    total, number = 0.0, ""
    text = value.strip()
    index = 0
    while index < len(text):
        char = text[index]
        if char.isdigit() or char == ".":
            number += char
            index += 1
            continue
        unit = "ms" if text.startswith("ms", index) else char
        if unit not in _UNITS or not number:
            return None
        total += float(number) * _UNITS[unit]
        number = ""
        index += len(unit)
    return total if not number else None


def _task_fails(config: dict[str, Any], traits: str) -> bool:
    """A run-once machine exits 1 when its image is a crashloop one or its command says so."""
    cmd = (config.get("init") or {}).get("cmd") or []
    return is_crashloop(traits) or any("fail" in str(c) for c in cmd)
