"""Typed views of what Fly returns. Lenient on purpose: fields Fly adds later are kept
(`extra="allow"`) so a machine config read, changed and sent back loses nothing."""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field


class FlyModel(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def to_json(self) -> dict[str, Any]:
        """The JSON to send back to Fly: unknown fields kept, unset (None) fields left out."""
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)


# --- machine config -----------------------------------------------------------------------


class MachineGuest(FlyModel):
    cpu_kind: str | None = None
    cpus: int | None = None
    memory_mb: int | None = None


class MachineInit(FlyModel):
    cmd: list[str] | None = None
    entrypoint: list[str] | None = None
    exec: list[str] | None = None


class MachinePort(FlyModel):
    port: int | None = None
    handlers: list[str] | None = None
    force_https: bool | None = None


class MachineCheck(FlyModel):
    type: str | None = None
    port: int | None = None
    interval: str | None = None
    timeout: str | None = None
    grace_period: str | None = None
    method: str | None = None
    path: str | None = None


class MachineService(FlyModel):
    protocol: str | None = None
    internal_port: int | None = None
    ports: list[MachinePort] | None = None
    # Fly accepts "off" | "stop" | "suspend" and still answers false/true for off/stop.
    autostop: bool | str | None = None
    autostart: bool | None = None
    min_machines_running: int | None = None
    concurrency: dict[str, Any] | None = None
    checks: list[MachineCheck] | None = None


class MachineMount(FlyModel):
    volume: str | None = None
    path: str | None = None


class MachineRestart(FlyModel):
    policy: str | None = None
    max_retries: int | None = None


class MachineMetrics(FlyModel):
    port: int | None = None
    path: str | None = None


class MachineConfig(FlyModel):
    image: str | None = None
    env: dict[str, str] | None = None
    init: MachineInit | None = None
    guest: MachineGuest | None = None
    services: list[MachineService] | None = None
    checks: dict[str, MachineCheck] | None = None
    mounts: list[MachineMount] | None = None
    metadata: dict[str, str] | None = None
    restart: MachineRestart | None = None
    stop_config: dict[str, Any] | None = None
    auto_destroy: bool | None = None
    processes: list[dict[str, Any]] | None = None
    metrics: MachineMetrics | None = None


# --- machines -----------------------------------------------------------------------------


class ImageRef(FlyModel):
    registry: str | None = None
    repository: str | None = None
    tag: str | None = None
    digest: str | None = None
    labels: dict[str, str] | None = None

    @property
    def reference(self) -> str:
        """`registry/repository:tag@digest`, as much of it as is known."""
        ref = "/".join(p for p in (self.registry, self.repository) if p)
        if self.tag:
            ref += f":{self.tag}"
        if self.digest:
            ref += f"@{self.digest}"
        return ref


class CheckStatus(FlyModel):
    name: str | None = None
    status: str | None = None  # passing | warning | critical
    output: str | None = None
    updated_at: str | None = None


class MachineEvent(FlyModel):
    id: str | None = None
    type: str | None = None
    status: str | None = None
    source: str | None = None
    timestamp: int | None = None  # milliseconds since the epoch
    request: dict[str, Any] | None = None


class Machine(FlyModel):
    id: str
    name: str | None = None
    state: str | None = None
    region: str | None = None
    version: str | None = None
    instance_id: str | None = None
    private_ip: str | None = None
    config: MachineConfig | None = None
    image_ref: ImageRef | None = None
    checks: list[CheckStatus] = Field(default_factory=list)
    events: list[MachineEvent] = Field(default_factory=list)
    host_status: str | None = None
    cordoned: bool | None = None
    nonce: str | None = None  # only on create with lease_ttl
    created_at: str | None = None
    updated_at: str | None = None

    @property
    def current_version(self) -> str | None:
        """The version to send as `current_version` (`instance_id` is its deprecated name)."""
        return self.version or self.instance_id

    @property
    def metadata(self) -> dict[str, str]:
        return dict(self.config.metadata or {}) if self.config else {}


class Volume(FlyModel):
    id: str
    name: str | None = None
    state: str | None = None
    region: str | None = None
    size_gb: int | None = None
    attached_machine_id: str | None = None
    host_status: str | None = None
    created_at: str | None = None

    @property
    def attached(self) -> bool:
        return bool(self.attached_machine_id)


class MachinePage(FlyModel):
    machines: list[Machine]
    next_cursor: str | None = None


class Lease(FlyModel):
    nonce: str | None = None
    expires_at: int | str | None = None  # unix seconds
    owner: str | None = None
    description: str | None = None
    version: str | None = None


class WaitResult(FlyModel):
    ok: bool = True
    state: str | None = None
    version: str | None = None
    event_id: str | None = None


# --- apps ---------------------------------------------------------------------------------


class Organization(FlyModel):
    name: str | None = None
    slug: str | None = None


class App(FlyModel):
    id: str | None = None
    name: str
    status: str | None = None
    organization: Organization | None = None
    machine_count: int | None = None
    volume_count: int | None = None
    network: Any = None


# --- secrets ------------------------------------------------------------------------------


class Secret(BaseModel):
    # extra="ignore": should a value ever come back, it is dropped, never kept or logged.
    model_config = ConfigDict(extra="ignore")

    name: str
    digest: str | None = None
    created_at: str | None = None
    updated_at: str | None = None


class SecretsSetResult(BaseModel):
    model_config = ConfigDict(extra="ignore")

    secrets: list[Secret] = Field(default_factory=list)
    version: int | None = None


# --- certificates -------------------------------------------------------------------------


class AcmeChallenge(FlyModel):
    name: str | None = None
    target: str | None = None


class OwnershipRecord(FlyModel):
    name: str | None = None
    app_value: str | None = None
    org_value: str | None = None


class DnsRequirements(FlyModel):
    a: list[str] = Field(default_factory=list)
    aaaa: list[str] = Field(default_factory=list)
    cname: str | None = None
    acme_challenge: AcmeChallenge | None = None
    ownership: OwnershipRecord | None = None


class CertificateValidationError(FlyModel):
    code: str | None = None
    message: str | None = None
    remediation: str | None = None
    timestamp: str | None = None


class IssuedCertificate(FlyModel):
    source: str | None = None
    status: str | None = None
    created_at: str | None = None
    expires_at: str | None = None
    issuer: str | None = None


class Certificate(FlyModel):
    hostname: str
    configured: bool | None = None
    acme_requested: bool | None = None
    status: str | None = None  # pending_validation | pending_ownership | active
    dns_provider: str | None = None
    rate_limited_until: str | None = None
    certificates: list[IssuedCertificate] = Field(default_factory=list)
    validation: dict[str, Any] | None = None
    dns_requirements: DnsRequirements | None = None
    validation_errors: list[CertificateValidationError] = Field(default_factory=list)


# --- releases -----------------------------------------------------------------------------


class Release(FlyModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True, coerce_numbers_to_str=True)

    id: str
    version: int | None = None
    status: str | None = None
    description: str | None = None
    image_ref: str | None = Field(
        default=None, validation_alias=AliasChoices("image_ref", "imageRef", "image")
    )
    created_at: str | None = Field(
        default=None, validation_alias=AliasChoices("created_at", "createdAt")
    )

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


# --- logs ---------------------------------------------------------------------------------


class LogEntry(FlyModel):
    """One line of `GET /api/v1/apps/{app}/logs` (an item's `attributes`, flattened)."""

    id: str = ""
    timestamp: str = ""
    message: str = ""
    level: str = ""
    instance: str = ""
    region: str = ""
    meta: dict[str, Any] = Field(default_factory=dict)


class LogPage(BaseModel):
    entries: list[LogEntry] = Field(default_factory=list)
    next_token: str = ""


class IPAssignment(FlyModel):
    ip: str = ""
    type: str = ""
    region: str | None = None
    service_name: str | None = None
    shared: bool | None = None
    created_at: str | None = None


# --- prometheus ---------------------------------------------------------------------------


class PromSample(BaseModel):
    timestamp: float
    value: float


class PromSeries(BaseModel):
    metric: dict[str, str] = Field(default_factory=dict)
    samples: list[PromSample] = Field(default_factory=list)

    @property
    def value(self) -> float | None:
        """The last sample's value (the only one for an instant query)."""
        return self.samples[-1].value if self.samples else None
