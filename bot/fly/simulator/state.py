"""The simulated Fly org(s): apps, machines, leases, metadata, secrets, certificates, releases
and volumes, kept in memory. Every operation is synchronous and raises `SimError` in Fly's
terms; the HTTP layer (app.py) only translates."""

from __future__ import annotations

import base64
import copy
import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bot.fly.simulator.clock import SimClock, SimulatorTiming, iso
from bot.fly.simulator.ids import IdGen
from bot.fly.simulator.images import Registry, canonical, parse_image
from bot.fly.simulator.machines import DEFAULT_GUEST, WAIT_STATES, Lease, SimMachine

# fmt: off
REGIONS = frozenset((
    "ams", "arn", "atl", "bog", "bom", "bos", "cdg", "den", "dfw", "ewr", "eze", "fra", "gdl",
    "gig", "gru", "hkg", "iad", "jnb", "lax", "lhr", "mad", "mia", "nrt", "ord", "otp", "phx",
    "qro", "scl", "sea", "sin", "sjc", "syd", "waw", "yul", "yyz",
))
# fmt: on
RELEASE_STATUSES = frozenset({"pending", "running", "complete", "failed", "interrupted"})
LOG_PAGE = 100  # lines per page of the logs endpoint


class SimError(Exception):
    """An error answer: HTTP status, Fly's `error` text and `status` code."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str = "unknown",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}


def invalid(message: str) -> SimError:
    return SimError(400, f"invalid_argument: {message}")


@dataclass
class Org:
    slug: str
    name: str
    id: str
    numeric_id: int


@dataclass
class Secret:
    name: str
    value: str
    created_at: float
    updated_at: float

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.value.encode()).hexdigest()[:16]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "digest": self.digest,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


@dataclass
class Certificate:
    hostname: str
    created_at: float
    dns_set: bool = False
    issued_at: float | None = None
    checked_at: float | None = None


@dataclass
class Release:
    id: str
    app: str
    version: int
    image: str
    strategy: str
    definition: Any
    created_at: float
    status: str = "pending"
    description: str = ""
    user: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "version": self.version,
            "status": self.status,
            "description": self.description,
            "image_ref": self.image,
            "strategy": self.strategy,
            "created_at": iso(self.created_at),
            "user": {"email": self.user},
        }


@dataclass
class Volume:
    id: str
    name: str
    region: str
    size_gb: int
    created_at: float
    used_pct: float = 5.0
    attached_machine_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        blocks = self.size_gb * 1024 * 1024 // 4
        free = int(blocks * (1 - self.used_pct / 100))
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "state": "created",
            "region": self.region,
            "zone": "b4e1",
            "size_gb": self.size_gb,
            "encrypted": True,
            "fstype": "ext4",
            "block_size": 4096,
            "blocks": blocks,
            "blocks_avail": free,
            "blocks_free": free,
            "snapshot_retention": 5,
            "created_at": iso(self.created_at),
        }
        if self.attached_machine_id:  # absent, not null, when detached (the spec has no nulls)
            out["attached_machine_id"] = self.attached_machine_id
        return out


@dataclass
class SimApp:
    name: str
    id: str
    org: Org
    created_at: float
    network_id: int
    ipv4: str
    ipv6: str
    machines: dict[str, SimMachine] = field(default_factory=dict)
    secrets: dict[str, Secret] = field(default_factory=dict)
    secrets_version: int = 0
    # The values as of each version (version -> name -> value): a machine sees the secrets
    # of the version it was created or last updated with, not newer ones.
    secrets_history: dict[int, dict[str, str]] = field(default_factory=dict)
    certificates: dict[str, Certificate] = field(default_factory=dict)
    releases: list[Release] = field(default_factory=list)
    volumes: list[Volume] = field(default_factory=list)
    # bytes/s served per region, the slope of fly_edge_data_out; regions with machines and no
    # entry here serve `DEFAULT_EGRESS_BPS`.
    egress_bps: dict[str, float] = field(default_factory=dict)
    ip_assignments: list[dict[str, Any]] = field(default_factory=list)
    add_ons: list[dict[str, Any]] = field(default_factory=list)  # GraphQL AddOn objects
    # HTTP traffic its machines serve (see traffic.py): from when, and at what rates per
    # status (None: each machine from its creation, at the rates its image gives)
    traffic_since: float | None = None
    traffic_rates: dict[str, float] | None = None
    egress_since: float | None = None  # when the counters start (None: when the app was made)

    def current_release(self) -> Release | None:
        done = [r for r in self.releases if r.status == "complete"]
        return max(done, key=lambda r: r.version) if done else None


DEFAULT_EGRESS_BPS = 150.0
PROM_RETENTION_S = 15 * 86_400.0  # Fly keeps metrics about 15 days


class SimState:
    def __init__(
        self,
        *,
        seed: int | str,
        timing: SimulatorTiming,
        clock: SimClock,
        personal_org: str = "personal",
        user_email: str = "you@example.com",
    ) -> None:
        self.timing = timing
        self.clock = clock
        self.ids = IdGen(seed)
        self.user_email = user_email
        self.orgs: dict[str, Org] = {}
        self.personal_org = personal_org
        self.apps: dict[str, SimApp] = {}
        self.registry = Registry()
        self.start_overrides: dict[str, float] = {}  # image (canonical) -> start seconds
        self.ready_overrides: dict[str, float] = {}  # image (canonical) -> app boot seconds
        # (machine id, what happened): a machine taken down while the proxy still sent it
        # requests (not cordoned, or cordoned too recently for them to drain)
        self.dropped: list[tuple[str, str]] = []
        self._seq = 0
        self.prom_retention_s = PROM_RETENTION_S
        self.ensure_org(personal_org)

    def now(self) -> float:
        return self.clock.now()

    # --- orgs and apps -------------------------------------------------------------------

    def ensure_org(self, slug: str, name: str | None = None) -> Org:
        if slug not in self.orgs:
            self._seq += 1
            self.orgs[slug] = Org(
                slug=slug,
                name=name or slug.replace("-", " ").title(),
                id=self.ids.ulid(self.now())[:12].lower(),
                numeric_id=10_000 + self._seq,
            )
        return self.orgs[slug]

    def org(self, slug: str) -> Org:
        if slug == "personal":
            slug = self.personal_org
        found = self.orgs.get(slug)
        if found is None:
            raise SimError(404, f"organization {slug!r} not found")
        return found

    def create_app(self, name: str, org_slug: str, *, created_at: float | None = None) -> SimApp:
        if not name or not isinstance(name, str):
            raise invalid("app_name is required")
        if name in self.apps:
            raise SimError(422, f"app name {name!r} is already taken", "name_taken")
        org = self.ensure_org(self.personal_org if org_slug == "personal" else org_slug)
        self._seq += 1
        n = self._seq
        app = SimApp(
            name=name,
            id=self.ids.hex(12),
            org=org,
            created_at=self.now() if created_at is None else created_at,
            network_id=0x1000 + n,
            ipv4=f"66.241.125.{(n * 37) % 250 + 2}",
            ipv6=f"2a09:8280:1::{n:x}:{self.ids.hex(4)}:0",
        )
        self.apps[name] = app
        return app

    def app(self, name: str) -> SimApp:
        found = self.apps.get(name)
        if found is None:
            raise SimError(404, f"app not found: {name}")
        return found

    def delete_app(self, name: str) -> None:
        self.app(name)
        del self.apps[name]

    def apps_of(self, org_slug: str) -> list[SimApp]:
        org = self.org(org_slug)
        return [a for a in self.apps.values() if a.org.slug == org.slug]

    def app_json(self, app: SimApp) -> dict[str, Any]:
        return {
            "id": app.id,
            "name": app.name,
            "status": "deployed" if self.live_machines(app) else "pending",
            "organization": {"name": app.org.name, "slug": app.org.slug},
            "machine_count": len(self.live_machines(app)),
            "volume_count": len(app.volumes),
            "network": "default",
            "internal_numeric_id": app.network_id,
        }

    # --- machines: reading ---------------------------------------------------------------

    def advance(self, app: SimApp) -> None:
        now = self.now()
        for machine in app.machines.values():
            machine.advance(now, self.timing, self.ids)

    def advance_all(self) -> None:
        for app in self.apps.values():
            self.advance(app)

    def live_machines(self, app: SimApp) -> list[SimMachine]:
        return [m for m in app.machines.values() if m.state != "destroyed"]

    def machine(self, app_name: str, machine_id: str, *, destroyed_ok: bool = True) -> SimMachine:
        app = self.app(app_name)
        found = app.machines.get(machine_id)
        if found is None:
            found = next((m for m in app.machines.values() if m.name == machine_id), None)
        if found is None or (found.state == "destroyed" and not destroyed_ok):
            raise SimError(404, "machine not found")
        found.advance(self.now(), self.timing, self.ids)
        return found

    def machine_json(self, machine: SimMachine, *, events: int = 20) -> dict[str, Any]:
        return machine.to_json(self.now(), self.timing, events=events)

    def list_machines(
        self,
        app_name: str,
        *,
        region: str | None = None,
        states: set[str] | None = None,
        metadata: dict[str, str] | None = None,
        include_deleted: bool = False,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> tuple[list[SimMachine], str | None]:
        app = self.app(app_name)
        self.advance(app)
        after = _decode_cursor(cursor) if cursor else 0
        found = []
        visible_from = self.now() - self.timing.list_lag_s
        for m in sorted(app.machines.values(), key=lambda m: m.seq):
            if m.seq <= after:
                continue
            if self.timing.list_lag_s and m.created_at > visible_from:
                continue  # Fly's listing has not caught up with this create yet
            if m.state == "destroyed" and not include_deleted:
                continue
            if region and m.region != region:
                continue
            if states and m.state not in states:
                continue
            if metadata and any(m.metadata.get(k) != v for k, v in metadata.items()):
                continue
            found.append(m)
        if limit is not None and len(found) > limit:
            page = found[:limit]
            return page, _encode_cursor(page[-1].seq)
        return found, None

    # --- machines: changing --------------------------------------------------------------

    def _check_config(self, app: SimApp, config: Any) -> dict[str, Any]:
        if not isinstance(config, dict):
            raise invalid("config is required and must be an object")
        image = config.get("image")
        if not isinstance(image, str) or not image:
            raise invalid("config.image is required")
        if not self.image_exists(image):
            raise SimError(
                422,
                f"failed to launch VM: unable to pull image {canonical(image)}: "
                "manifest unknown: not found",
            )
        config = copy.deepcopy(config)
        if not config.get("guest"):
            config["guest"] = dict(DEFAULT_GUEST)
        if config.get("metadata") is None:
            config["metadata"] = {}
        self._check_guest(config)
        return config

    def _check_guest(self, config: dict[str, Any]) -> None:
        """Fly's guest rules: shared CPUs 1, 2, 4, 6, 8 with 256-2048 MB each in 256 MB steps;
        performance 1, 2, 4, 8, 16 with 2048-8192 MB each in 1024 MB steps."""
        guest = config.get("guest")
        if not isinstance(guest, dict):
            raise invalid("config.guest must be an object")
        guest = {**DEFAULT_GUEST, **guest}  # what Fly fills in for the keys left out
        kind, cpus, memory = guest.get("cpu_kind"), guest.get("cpus"), guest.get("memory_mb")
        rules = {
            "shared": ((1, 2, 4, 6, 8), 256, 2048, 256),
            "performance": ((1, 2, 4, 8, 16), 2048, 8192, 1024),
        }
        if kind not in rules:
            raise invalid(f"invalid cpu_kind {kind!r}: shared or performance")
        counts, low, high, step = rules[kind]
        if cpus not in counts:
            raise invalid(f"invalid number of CPUs {cpus!r} for {kind}")
        if not isinstance(memory, int) or memory % step or not low * cpus <= memory <= high * cpus:
            raise invalid(
                f"invalid memory size {memory!r} MB for {cpus} {kind} CPU(s): "
                f"{low * cpus}-{high * cpus} MB in steps of {step}"
            )

    def _volume_to_attach(self, app: SimApp, config: dict[str, Any], region: str) -> Volume | None:
        """A create naming a volume in `mounts` attaches it: it must be the app's, in the
        machine's region, and free, as Fly requires."""
        mounts = config.get("mounts") or []
        wanted = next((m.get("volume") for m in mounts if isinstance(m, dict)), None)
        if not wanted:
            return None
        volume = next((v for v in app.volumes if v.id == wanted), None)
        if volume is None:
            raise SimError(404, f"volume {wanted} not found")
        if volume.region != region:
            raise invalid(f"volume {wanted} is in {volume.region}, not {region}")
        if volume.attached_machine_id:
            raise invalid(f"volume {wanted} is already attached to {volume.attached_machine_id}")
        return volume

    def create_volume(self, app_name: str, body: dict[str, Any]) -> Volume:
        app = self.app(app_name)
        name, region = body.get("name"), body.get("region")
        if not isinstance(name, str) or not name:
            raise invalid("name is required")
        if region not in REGIONS:
            raise invalid(f"unknown region {region!r}")
        size = body.get("size_gb") or 1
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise invalid("size_gb must be a whole number of GB, at least 1")
        volume = Volume(
            id="vol_" + self.ids.hex(16),
            name=name,
            region=str(region),
            size_gb=size,
            created_at=self.now(),
        )
        app.volumes.append(volume)
        return volume

    def _check_secrets_version(self, app: SimApp, wanted: Any) -> int:
        if wanted is None:
            return app.secrets_version
        if not isinstance(wanted, int) or isinstance(wanted, bool):
            raise invalid("min_secrets_version must be an integer")
        if wanted > app.secrets_version:
            raise invalid(
                f"min_secrets_version {wanted} is newer than the app's secrets "
                f"(version {app.secrets_version})"
            )
        return app.secrets_version

    def _check_lease(self, machine: SimMachine, nonce: str | None) -> None:
        lease = machine.active_lease(self.now())
        if lease is not None and nonce != lease.nonce:
            raise SimError(
                409,
                f"machine {machine.id} is leased by {lease.owner} "
                f"({lease.description or 'no description'}) until {iso(lease.expires_at)}: "
                "send its nonce in the fly-machine-lease-nonce header",
            )

    def _start_s(self, machine: SimMachine) -> float | None:
        if machine.id in self.start_overrides:
            return self.start_overrides[machine.id]
        if not machine.image:
            return None
        found = self.start_overrides.get(canonical(machine.image))
        return found if found is not None else self.start_overrides.get(canonical(machine.traits))

    def _pull(self, machine: SimMachine) -> None:
        """Resolve the machine's image now, as Fly does at create and update time."""
        machine.digest = self.registry.digest_of(machine.image) or ""
        machine.bits = self.registry.traits_of(machine.image)
        machine.ready_s = self.ready_overrides.get(canonical(machine.image))

    def create_machine(self, app_name: str, body: dict[str, Any]) -> tuple[SimMachine, str | None]:
        app = self.app(app_name)
        config = self._check_config(app, body.get("config"))
        region = body.get("region") or "iad"
        if region not in REGIONS:
            raise invalid(f"unknown region {region!r}")
        secrets_version = self._check_secrets_version(app, body.get("min_secrets_version"))
        name = body.get("name") or self.ids.machine_name()
        if not isinstance(name, str):
            raise invalid("name must be a string")
        now = self.now()
        self._seq += 1
        machine = SimMachine(
            id=self.ids.machine_id(),
            name=name,
            app=app.name,
            region=str(region),
            config=config,
            version=self.ids.ulid(now),
            private_ip=self.ids.private_ip(app.network_id),
            vm_ip=f"172.19.{self._seq // 250}.{self._seq % 250 + 2}",
            created_at=now,
            updated_at=now,
            seq=self._seq,
            cordoned=bool(body.get("skip_service_registration")),
            cordoned_at=now if body.get("skip_service_registration") else None,
            secrets_version=secrets_version,
        )
        volume = self._volume_to_attach(app, config, machine.region)
        if volume is not None:
            volume.attached_machine_id = machine.id
        self._pull(machine)
        machine.start_s = self._start_s(machine)
        machine.event(self.ids, now, "launch", "created", "user")
        if body.get("skip_launch"):
            machine.schedule("updated", now + self.timing.create_s)
        else:
            machine.schedule("boot", now + self.timing.create_s)
        nonce = None
        ttl = body.get("lease_ttl")
        if ttl:
            nonce = self._new_lease(machine, ttl, "created with lease_ttl", None).nonce
        app.machines[machine.id] = machine
        return machine, nonce

    def update_machine(
        self, app_name: str, machine_id: str, body: dict[str, Any], nonce: str | None
    ) -> SimMachine:
        app = self.app(app_name)
        machine = self._changeable(app_name, machine_id)
        self._check_lease(machine, nonce)
        wanted = body.get("current_version")
        if wanted and wanted != machine.version:
            raise SimError(
                409,
                f"current_version {wanted} does not match the machine's version "
                f"{machine.version}: it changed meanwhile",
            )
        config = self._check_config(app, body.get("config"))
        for key, current in (("region", machine.region), ("name", machine.name)):
            if body.get(key) and body[key] != current:
                raise invalid(f"{key} can't be changed (is {current!r})")
        machine.secrets_version = self._check_secrets_version(app, body.get("min_secrets_version"))
        now = self.now()
        machine.config = config
        machine.version = self.ids.ulid(now)
        machine.restarts = 0
        self._pull(machine)
        machine.start_s = self._start_s(machine)
        if body.get("skip_service_registration") is not None:
            machine.cordoned = bool(body["skip_service_registration"])
        if body.get("skip_launch"):
            machine.set_state("updating", now)
            machine.schedule("updated", now + self.timing.update_s)
        else:
            machine.set_state("replacing", now)
            machine.schedule("replaced", now + self.timing.update_s)
        machine.started_at = None
        machine.event(self.ids, now, "update", machine.state, "user")
        return machine

    def _changeable(self, app_name: str, machine_id: str) -> SimMachine:
        machine = self.machine(app_name, machine_id, destroyed_ok=False)
        if machine.state == "destroying":
            raise SimError(412, "failed_precondition: the machine is being destroyed")
        return machine

    def start_machine(self, app_name: str, machine_id: str, nonce: str | None) -> dict[str, Any]:
        machine = self._changeable(app_name, machine_id)
        self._check_lease(machine, nonce)
        previous = machine.state
        if previous in ("stopped", "suspended", "created", "failed", "stopping", "suspending"):
            now = self.now()
            machine.restarts = 0
            machine.event(self.ids, now, "start", "starting", "user")
            machine.boot(now, self.timing)
        return {"previous_state": previous, "migrated": False, "new_host": ""}

    def _drops(self, machine: SimMachine, what: str) -> None:
        """Record requests dropped by taking `machine` down while it is in service."""
        if machine.state != "started" or not machine.config.get("services"):
            return
        now = self.now()
        drained = machine.cordoned and (
            machine.cordoned_at is not None
            and now - machine.cordoned_at >= self.timing.proxy_drain_s
        )
        if not drained:
            why = "not cordoned" if not machine.cordoned else "cordoned too recently to drain"
            self.dropped.append((machine.id, f"{what} while in service ({why})"))

    def stop_machine(
        self, app_name: str, machine_id: str, nonce: str | None, *, suspend: bool = False
    ) -> None:
        machine = self._changeable(app_name, machine_id)
        self._check_lease(machine, nonce)
        if machine.state == "started":
            self._drops(machine, "suspended" if suspend else "stopped")
        if machine.state in ("stopped", "suspended", "stopping", "suspending"):
            return
        now = self.now()
        if machine.state == "created":
            machine.set_state("stopped", now)
            machine.schedule(None, None)
            return
        if suspend:
            machine.set_state("suspending", now)
            machine.schedule("suspended", now + self.timing.stop_s)
        else:
            machine.set_state("stopping", now)
            machine.schedule("stopped", now + self.timing.stop_s)
        machine.event(self.ids, now, "suspend" if suspend else "stop", machine.state, "user")

    def restart_machine(self, app_name: str, machine_id: str, nonce: str | None) -> None:
        machine = self._changeable(app_name, machine_id)
        self._check_lease(machine, nonce)
        now = self.now()
        machine.restarts = 0
        machine.event(self.ids, now, "restart", "stopping", "user")
        if machine.state in ("started", "starting"):
            machine.set_state("stopping", now)
            machine.schedule("restart", now + self.timing.stop_s)
        else:
            machine.boot(now, self.timing)

    def cordon(self, app_name: str, machine_id: str, nonce: str | None, on: bool) -> None:
        machine = self._changeable(app_name, machine_id)
        self._check_lease(machine, nonce)
        if on and not machine.cordoned:
            machine.cordoned_at = self.now()
        machine.cordoned = on

    def delete_machine(
        self, app_name: str, machine_id: str, nonce: str | None, *, force: bool
    ) -> None:
        machine = self.machine(app_name, machine_id, destroyed_ok=False)
        self._check_lease(machine, nonce)
        if machine.state == "destroying":
            return
        if force:
            self._drops(machine, "destroyed with force")
        if not force and machine.state not in ("stopped", "suspended", "created", "failed"):
            raise SimError(
                412,
                f"failed_precondition: unable to destroy machine, not currently stopped "
                f"(state {machine.state}); use force=true",
            )
        now = self.now()
        machine.set_state("destroying", now)
        machine.started_at = None
        for volume in self.app(app_name).volumes:
            if volume.attached_machine_id == machine.id:
                volume.attached_machine_id = None  # the volume stays, free for another
        machine.schedule("destroyed", now + self.timing.destroy_s)
        machine.event(self.ids, now, "destroy", "destroying", "user")

    # --- wait ----------------------------------------------------------------------------

    @staticmethod
    def parse_wait_states(values: list[str]) -> set[str]:
        states = {s.strip() for v in values for s in v.split(",") if s.strip()} or {"started"}
        unknown = states - WAIT_STATES
        if unknown:
            raise invalid(
                f"state must be one of {', '.join(sorted(WAIT_STATES))} (got {sorted(unknown)})"
            )
        return states

    def wait_reached(
        self, machine: SimMachine, states: set[str], version: str | None
    ) -> str | None:
        """The state the machine is in if it satisfies the wait, else None."""
        if version and machine.version != version and machine.state != "destroyed":
            return None
        if machine.state in states:
            return machine.state
        if "settled" in states and machine.state in (
            "started",
            "stopped",
            "suspended",
            "failed",
            "destroyed",
        ):
            return machine.state
        return None

    # --- leases --------------------------------------------------------------------------

    def _new_lease(
        self, machine: SimMachine, ttl: Any, description: str, nonce: str | None
    ) -> Lease:
        if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl < 1:
            raise invalid("ttl must be a positive number of seconds")
        lease = Lease(
            nonce=nonce or self.ids.hex(12),
            owner=self.user_email,
            description=description,
            expires_at=self.now() + ttl,
            version=machine.version,
        )
        machine.lease = lease
        return lease

    def get_lease(self, app_name: str, machine_id: str) -> Lease:
        machine = self.machine(app_name, machine_id, destroyed_ok=False)
        lease = machine.active_lease(self.now())
        if lease is None:
            raise SimError(404, "lease not found")
        return lease

    def acquire_lease(
        self, app_name: str, machine_id: str, body: dict[str, Any], nonce: str | None
    ) -> tuple[Lease, bool]:
        """(lease, created): a new lease, or the held one refreshed when `nonce` is its own."""
        machine = self.machine(app_name, machine_id, destroyed_ok=False)
        ttl = body.get("ttl", self.timing.lease_ttl_s)
        held = machine.active_lease(self.now())
        if held is not None:
            if nonce != held.nonce:
                raise SimError(
                    409,
                    f"machine lease currently held by {held.owner} "
                    f"({held.description or 'no description'}), expires at "
                    f"{iso(held.expires_at)}",
                )
            description = body.get("description") or held.description
            return self._new_lease(machine, ttl, str(description), held.nonce), False
        return self._new_lease(machine, ttl, str(body.get("description") or ""), nonce), True

    def release_lease(self, app_name: str, machine_id: str, nonce: str | None) -> None:
        machine = self.machine(app_name, machine_id, destroyed_ok=False)
        if not nonce:
            raise invalid("the fly-machine-lease-nonce header is required")
        self._check_lease(machine, nonce)
        machine.lease = None

    # --- metadata ------------------------------------------------------------------------

    def metadata(self, app_name: str, machine_id: str) -> dict[str, str]:
        machine = self.machine(app_name, machine_id, destroyed_ok=False)
        meta: dict[str, str] = machine.config.setdefault("metadata", {})
        return meta

    def patch_metadata(self, app_name: str, machine_id: str, body: dict[str, Any]) -> None:
        machine = self.machine(app_name, machine_id, destroyed_ok=False)
        wanted = body.get("machine_version")
        if wanted and wanted != machine.version:
            raise SimError(
                412, f"failed_precondition: machine_version {wanted} is not {machine.version}"
            )
        values = body.get("metadata")
        if not isinstance(values, dict):
            raise invalid("metadata must be an object")
        meta = self.metadata(app_name, machine_id)
        for key, value in values.items():
            if value is None or value == "":
                meta.pop(key, None)
            elif isinstance(value, str):
                meta[key] = value
            else:
                raise invalid(f"metadata value for {key!r} must be a string")

    # --- add-ons (Upstash Redis and friends, GraphQL only) ---------------------------------

    def add_redis(
        self,
        app_name: str,
        name: str,
        *,
        region: str = "iad",
        plan: str = "Pay-as-you-go",
        status: str = "ready",
        read_regions: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        app = self.app(app_name)
        now = iso(self.now())
        item = {
            "id": self.ids.hex(10),
            "name": name,
            "type": "upstash_redis",
            "status": status,
            "primaryRegion": region,
            "readRegions": list(read_regions),
            "hostname": f"fly-{name}.upstash.io",
            "addOnPlan": {"displayName": plan, "name": plan.lower().replace(" ", "_")},
            "addOnPlanName": plan,
            "addOnProvider": {"name": "upstash_redis", "displayName": "Upstash Redis"},
            "organization": {"slug": app.org.slug, "name": app.org.name},
            "createdAt": now,
            "updatedAt": now,
        }
        app.add_ons.append(item)
        return item

    # --- IP assignments ------------------------------------------------------------------

    IP_TYPES = ("v4", "v6", "shared_v4", "private_v6")

    def assign_ip(self, app_name: str, body: dict[str, Any]) -> dict[str, Any]:
        app = self.app(app_name)
        kind = body.get("type")
        if kind not in self.IP_TYPES:
            raise invalid(f"type must be one of {', '.join(self.IP_TYPES)}")
        if kind == "shared_v4" and any(i["type"] == "shared_v4" for i in app.ip_assignments):
            raise SimError(422, f"app {app.name} already has a shared IPv4 address")
        n = len(app.ip_assignments) + 1
        ip = {
            "shared_v4": app.ipv4,
            "v6": app.ipv6 if not any(i["ip"] == app.ipv6 for i in app.ip_assignments) else "",
            "v4": f"137.66.{app.network_id % 250}.{n + 10}",
            "private_v6": f"fdaa:0:{app.network_id:x}:a7b::{n}",
        }[str(kind)] or f"2a09:8280:1::{app.network_id:x}:{n:x}:0"
        item = {
            "ip": ip,
            "type": kind,
            "region": str(body.get("region") or "global"),
            "shared": kind == "shared_v4",
            "service_name": str(body.get("service_name") or ""),
            "created_at": iso(self.now()),
        }
        app.ip_assignments.append(item)
        return dict(item)

    def list_ips(self, app_name: str) -> list[dict[str, Any]]:
        return [dict(i) for i in self.app(app_name).ip_assignments]

    def delete_ip(self, app_name: str, ip: str) -> None:
        app = self.app(app_name)
        kept = [i for i in app.ip_assignments if i["ip"] != ip]
        if len(kept) == len(app.ip_assignments):
            raise SimError(404, f"ip {ip} not found")
        app.ip_assignments = kept

    # --- logs ----------------------------------------------------------------------------

    def app_logs(
        self,
        app_name: str,
        *,
        next_token: str = "",
        instance: str = "",
        region: str = "",
        limit: int = LOG_PAGE,
    ) -> tuple[list[dict[str, Any]], str]:
        """One page of the app's log lines after `next_token` (from the oldest kept when it
        is empty), oldest first, and the token to ask with next (the same one when there
        is nothing newer yet)."""
        app = self.app(app_name)
        self.advance(app)
        after = _decode_log_token(next_token) if next_token else None
        lines = []
        for machine in app.machines.values():
            if instance and instance not in (machine.id, machine.name):
                continue
            if region and machine.region != region:
                continue
            for at, number, level, provider, message in machine.logs:
                key = (at, machine.seq, number)
                if after is None or key > after:
                    lines.append((key, machine, level, provider, message))
        lines.sort(key=lambda item: item[0])
        page = lines[:limit]
        out = [
            {
                "id": f"{machine.id}-{key[2]}",
                "type": "logs",
                "attributes": {
                    "timestamp": iso_micro(key[0]),
                    "message": message,
                    "level": level,
                    "instance": machine.id,
                    "region": machine.region,
                    "meta": {
                        "instance": machine.id,
                        "region": machine.region,
                        "event": {"provider": provider},
                    },
                },
            }
            for key, machine, level, provider, message in page
        ]
        token = _encode_log_token(page[-1][0]) if page else next_token
        return out, token

    def emit_logs(
        self, app_name: str, machine_id: str, messages: list[str], level: str = "info"
    ) -> None:
        """Lines the machine's app prints now (1 µs apart, so their order is kept)."""
        machine = self.machine(app_name, machine_id, destroyed_ok=False)
        now = self.now() - len(messages) * 1e-6
        for index, message in enumerate(messages):
            machine.log(now + index * 1e-6, str(message), level=level)

    # --- secrets -------------------------------------------------------------------------

    def set_secrets(self, app_name: str, values: Any) -> int:
        app = self.app(app_name)
        if not isinstance(values, dict) or not values:
            raise invalid("values must be a non-empty object of NAME: value or null")
        for name, value in values.items():
            if not name or not isinstance(value, str | None):
                raise invalid(f"secret {name!r}: value must be a string or null")
        now = self.now()
        for name, value in values.items():
            if value is None:
                app.secrets.pop(name, None)
            elif name in app.secrets:
                app.secrets[name].value = value
                app.secrets[name].updated_at = now
            else:
                app.secrets[name] = Secret(name, value, now, now)
        app.secrets_version += 1
        app.secrets_history[app.secrets_version] = {n: x.value for n, x in app.secrets.items()}
        return app.secrets_version

    def secret(self, app_name: str, name: str) -> Secret:
        found = self.app(app_name).secrets.get(name)
        if found is None:
            raise SimError(404, f"secret {name} not found")
        return found

    def machine_secrets(self, app_name: str, machine_id: str) -> dict[str, str]:
        """What the machine would see as environment: the app's secrets as of the version it
        was created or updated with. A restart or a start keeps that version; only an
        update (or a new machine) takes a newer one."""
        machine = self.machine(app_name, machine_id)
        app = self.app(app_name)
        return dict(app.secrets_history.get(machine.secrets_version, {}))

    # --- certificates --------------------------------------------------------------------

    def add_certificate(self, app_name: str, hostname: Any) -> Certificate:
        app = self.app(app_name)
        if not isinstance(hostname, str) or "." not in hostname or " " in hostname:
            raise SimError(422, f"invalid hostname {hostname!r}")
        hostname = hostname.lower().rstrip(".")
        for other in self.apps.values():
            if other is not app and hostname in other.certificates:
                raise SimError(422, f"hostname {hostname} is already in use by another app")
        if hostname not in app.certificates:
            app.certificates[hostname] = Certificate(hostname, self.now())
        return app.certificates[hostname]

    def certificate(self, app_name: str, hostname: str) -> Certificate:
        found = self.app(app_name).certificates.get(hostname.lower())
        if found is None:
            raise SimError(404, f"certificate for {hostname} not found")
        after = self.timing.cert_dns_after_s
        if after is not None and not found.dns_set and self.now() >= found.created_at + after:
            found.dns_set = True  # its owner created the records by now (evaluated lazily)
        return found

    def check_certificate(self, app_name: str, hostname: str) -> Certificate:
        cert = self.certificate(app_name, hostname)
        now = self.now()
        cert.checked_at = now
        if cert.dns_set and cert.issued_at is None:
            cert.issued_at = now
        return cert

    def delete_certificate(self, app_name: str, hostname: str) -> None:
        cert = self.certificate(app_name, hostname)
        del self.app(app_name).certificates[cert.hostname]

    def set_dns(self, app_name: str, hostname: str, value: bool = True) -> None:
        cert = self.certificate(app_name, hostname)
        cert.dns_set = value
        if not value:
            cert.issued_at = None

    def set_issued(self, app_name: str, hostname: str, days_ago: float) -> Certificate:
        """Issue (or renew) the certificate as of `days_ago`: it expires 90 days after. A
        certificate Fly failed to renew is one issued long ago."""
        cert = self.certificate(app_name, hostname)
        cert.dns_set = True
        cert.issued_at = self.now() - days_ago * 86400
        cert.checked_at = cert.issued_at
        return cert

    def certificate_json(
        self, app: SimApp, cert: Certificate, *, check: bool = False
    ) -> dict[str, Any]:
        active = cert.issued_at is not None
        host_hash = hashlib.sha256(f"{app.name}/{cert.hostname}".encode()).hexdigest()
        out: dict[str, Any] = {
            "hostname": cert.hostname,
            "configured": active,
            "acme_requested": True,
            "status": "active" if active else "pending_validation",
            "dns_provider": None,
            "rate_limited_until": None,
            "created_at": iso(cert.created_at),
            "certificates": [],
            "validation": {
                "dns_configured": cert.dns_set,
                "alpn_configured": active,
                "http_configured": active,
                "ownership_txt_configured": cert.dns_set,
            },
            "dns_requirements": {
                "a": [app.ipv4],
                "aaaa": [app.ipv6],
                "cname": f"{app.name}.fly.dev",
                "acme_challenge": {
                    "name": f"_acme-challenge.{cert.hostname}",
                    "target": f"{cert.hostname}.{host_hash[:6]}.flydns.net",
                },
                "ownership": {
                    "name": f"_fly-ownership.{cert.hostname}",
                    "app_value": f"app-{host_hash[6:26]}",
                    "org_value": f"org-{hashlib.sha256(app.org.slug.encode()).hexdigest()[:20]}",
                },
            },
            "validation_errors": [],
        }
        if active:
            assert cert.issued_at is not None
            for kind in ("ecdsa", "rsa"):
                out["certificates"].append(
                    {
                        "source": "fly",
                        "status": "active",
                        "created_at": iso(cert.issued_at),
                        "expires_at": iso(cert.issued_at + 90 * 86400),
                        "issuer": "C=US, O=Let's Encrypt, CN=E6"
                        if kind == "ecdsa"
                        else "C=US, O=Let's Encrypt, CN=R11",
                        "issued": [
                            {
                                "type": kind,
                                "expires_at": iso(cert.issued_at + 90 * 86400),
                                "certificate_authority": "lets_encrypt",
                            }
                        ],
                    }
                )
        elif cert.checked_at is not None:
            out["validation_errors"].append(
                {
                    "code": "dns_not_configured",
                    "message": f"No A/AAAA or CNAME record for {cert.hostname} points at "
                    f"{app.name}.fly.dev",
                    "remediation": f"Add a CNAME record {cert.hostname} -> {app.name}.fly.dev "
                    f"(or A {app.ipv4} and AAAA {app.ipv6}), then check again.",
                    "timestamp": iso(cert.checked_at),
                }
            )
        if check:
            out["dns_records"] = {
                "a": [app.ipv4] if cert.dns_set else [],
                "aaaa": [app.ipv6] if cert.dns_set else [],
                "cname": [f"{app.name}.fly.dev"] if cert.dns_set else [],
            }
        return out

    # --- releases ------------------------------------------------------------------------

    def create_release(self, body: dict[str, Any]) -> Release:
        app = self.app(str(body.get("app_name") or ""))
        image = body.get("image")
        if not isinstance(image, str) or not image:
            raise invalid("image is required")
        now = self.now()
        release = Release(
            id=self.ids.ulid(now),
            app=app.name,
            version=max((r.version for r in app.releases), default=0) + 1,
            image=image,
            strategy=str(body.get("strategy") or "rolling"),
            definition=copy.deepcopy(body.get("definition")),
            created_at=now,
            description=str(body.get("description") or f"Deploy image {image}"),
            user=self.user_email,
        )
        app.releases.append(release)
        return release

    def release(self, release_id: str) -> Release:
        for app in self.apps.values():
            for release in app.releases:
                if release.id == release_id:
                    return release
        raise SimError(404, f"release {release_id} not found")

    def update_release(self, release_id: str, body: dict[str, Any]) -> Release:
        release = self.release(release_id)
        status = body.get("status")
        if status not in RELEASE_STATUSES:
            raise invalid(f"status must be one of {', '.join(sorted(RELEASE_STATUSES))}")
        release.status = str(status)
        return release

    # --- images --------------------------------------------------------------------------

    def image_exists(self, image: str) -> bool:
        return self.registry.digest_of(image) is not None

    def image_json(self, image: str) -> dict[str, Any] | None:
        digest = self.registry.digest_of(image)
        if digest is None:
            return None
        name = parse_image(image)
        return {
            "id": digest[7:19],
            "digest": digest,
            "ref": canonical(image),
            "absoluteRef": f"{canonical(image)}@{digest}",
            "registry": name.registry,
            "repository": name.repository,
            "tag": name.tag,
            "compressedSize": 24_117_248,
            "compressedSizeFull": "24117248",
            "createdAt": iso(self.now() - 86400),
            "label": f"{name.repository}:{name.tag}",
        }


def iso_micro(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _encode_log_token(key: tuple[float, int, int]) -> str:
    raw = f"logs:{key[0]!r}:{key[1]}:{key[2]}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_log_token(token: str) -> tuple[float, int, int]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
        prefix, at, seq, number = raw.split(":")
        if prefix != "logs":
            raise ValueError(raw)
        return float(at), int(seq), int(number)
    except ValueError:
        raise invalid("next_token is not one this server gave out") from None


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"after:{seq}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, seq = raw.partition(":")
        if prefix != "after":
            raise ValueError(raw)
        return int(seq)
    except ValueError:
        raise invalid("cursor is not one this server gave out") from None
