"""The database tables. Every change to them goes through an Alembic migration."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, Table, UniqueConstraint, event, text
from sqlmodel import Field, SQLModel

from bot.clock import utcnow


class TableModel(SQLModel):
    """What every table shares. Pydantic builds a table's validator only once something
    validates one (flybot never does: rows come from SQLAlchemy and from constructors, which
    do not validate a table), not at import, where the schemas of all of them were ≈8 ms of
    every start."""

    model_config = {"defer_build": True}


class Principal(TableModel, table=True):
    """A person. Platform identities (a Slack user, a Discord user) point at one principal."""

    __tablename__ = "principal"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow)


class Identity(TableModel, table=True):
    """One account on one platform, keyed on the platform's immutable ids."""

    __tablename__ = "identity"
    __table_args__ = (UniqueConstraint("platform", "workspace_id", "user_id"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str = Field(max_length=16)
    workspace_id: str = Field(max_length=64)
    user_id: str = Field(max_length=64)
    display_name: str = Field(default="", max_length=200)
    principal_id: int = Field(foreign_key="principal.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)


class Grant(TableModel, table=True):
    """A role on a project and stage; `*` stands for every project or every stage."""

    __tablename__ = "grant"
    __table_args__ = (UniqueConstraint("principal_id", "role", "project", "stage"),)

    id: int | None = Field(default=None, primary_key=True)
    principal_id: int = Field(foreign_key="principal.id", index=True)
    role: str = Field(max_length=16)
    project: str = Field(default="*", max_length=100)
    stage: str = Field(default="*", max_length=100)
    granted_by: int | None = Field(default=None, foreign_key="principal.id")
    created_at: datetime = Field(default_factory=utcnow)


class ProjectRow(TableModel, table=True):
    """A project from flybot.toml, mirrored at every start (an upsert)."""

    __tablename__ = "project"

    name: str = Field(primary_key=True, max_length=100)
    path: str = Field(max_length=500)
    source: str = Field(default="", max_length=500)  # the flybot.toml that wrote it last


class StageRow(TableModel, table=True):
    """A stage of a project: its Fly app, its position in the promotion order, its policy."""

    __tablename__ = "stage"
    __table_args__ = (UniqueConstraint("project", "name"),)

    id: int | None = Field(default=None, primary_key=True)
    project: str = Field(foreign_key="project.name", max_length=100)
    name: str = Field(max_length=100)
    position: int = 0
    app: str = Field(default="", max_length=100)
    config_file: str = Field(default="", max_length=500)
    policy_json: str = Field(default="{}")
    # The flybot.toml that wrote it last: a sync removes only rows its own file wrote, so
    # instances started with different files do not delete each other's stages.
    source: str = Field(default="", max_length=500)


class AuditEntry(TableModel, table=True):
    """Every attempt, allowed or refused, with who, what and why. Never holds a secret value."""

    __tablename__ = "audit_entry"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    principal_id: int | None = Field(default=None, index=True)
    platform: str = Field(max_length=16)
    workspace_id: str = Field(max_length=64)
    user_id: str = Field(max_length=64)
    display_name: str = Field(default="", max_length=200)
    action: str = Field(max_length=64)
    project: str | None = Field(default=None, max_length=100, index=True)
    stage: str | None = Field(default=None, max_length=100)
    command: str = Field(default="")
    outcome: str = Field(max_length=16)
    reason: str = Field(default="")


class Lock(TableModel, table=True):
    """A stage lock. The unique key makes taking a lock a single atomic insert."""

    __tablename__ = "stage_lock"
    __table_args__ = (UniqueConstraint("project", "stage"),)

    id: int | None = Field(default=None, primary_key=True)
    project: str = Field(max_length=100)
    stage: str = Field(max_length=100)
    owner_id: int = Field(foreign_key="principal.id")
    owner_name: str = Field(default="", max_length=200)
    reason: str = Field(default="")
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime


class DedupeKey(TableModel, table=True):
    """A platform delivery already handled (a Slack retry, a repeated click)."""

    __tablename__ = "dedupe_key"

    key: str = Field(primary_key=True, max_length=200)
    created_at: datetime = Field(default_factory=utcnow, index=True)


class LinkRequest(TableModel, table=True):
    """A pending link of two identities into one principal, confirmed from both sides."""

    __tablename__ = "link_request"

    code: str = Field(primary_key=True, max_length=32)
    from_identity_id: int = Field(foreign_key="identity.id")
    to_identity_id: int | None = Field(default=None, foreign_key="identity.id")
    state: str = Field(default="started", max_length=16)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime


ACTIVE_DEPLOY_STATES = ("queued", "running")
ACTIVE_DEPLOY_WHERE = "state IN ('queued', 'running')"


class Release(TableModel, table=True):
    """One deploy of one stage: the durable job while it runs, the release record after.

    At most one release per Fly app is queued or running at a time: a partial unique index
    enforces it in the database, so two bot instances cannot both start a deploy.
    """

    __tablename__ = "release"
    __table_args__ = (
        UniqueConstraint("app", "version"),
        # Its `postgresql_where` is added by `use_postgresql()`: naming it here would load
        # SQLAlchemy's PostgreSQL dialect in every process, SQLite ones too.
        Index("uq_release_active_app", "app", unique=True, sqlite_where=text(ACTIVE_DEPLOY_WHERE)),
    )

    id: int | None = Field(default=None, primary_key=True)
    project: str = Field(max_length=100, index=True)
    stage: str = Field(max_length=100)
    app: str = Field(max_length=100)
    version: int
    kind: str = Field(default="deploy", max_length=16)  # deploy | rollback | restart
    image: str = Field(max_length=500)
    image_digest: str = Field(default="", max_length=100)
    previous_image: str = Field(default="", max_length=500)
    config_hash: str = Field(default="", max_length=64)
    config_json: str = Field(default="{}")  # per-group machine configs, for rollback
    strategy: str = Field(default="rolling", max_length=16)
    state: str = Field(default="queued", max_length=16)
    # queued | running | succeeded | failed | rolled_back | interrupted
    requested_by: int | None = Field(default=None, foreign_key="principal.id")
    requester_name: str = Field(default="", max_length=200)
    approvers: str = Field(default="")  # comma-separated display names
    fly_release_id: str = Field(default="", max_length=100)
    error: str = Field(default="")
    platform: str = Field(default="", max_length=16)
    workspace_id: str = Field(default="", max_length=64)
    channel_id: str = Field(default="", max_length=100)
    thread_id: str = Field(default="", max_length=100)
    message_id: str = Field(default="", max_length=100)
    leases_json: str = Field(default="{}")  # machine id -> lease nonce, while held
    instance_id: str = Field(default="", max_length=64)  # the bot process running it
    host: str = Field(default="", max_length=64)  # the machine that process runs on
    created_at: datetime = Field(default_factory=utcnow)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    heartbeat_at: datetime | None = None
    # The min_secrets_version its machine updates carried (a secrets restart's new version,
    # or the newest flybot set): once it succeeded, changes up to it are on the machines.
    secrets_version: int | None = None


class ApprovalRequest(TableModel, table=True):
    """A guarded action waiting for approval, bound to the plan it was asked for.

    Every state change is a compare-and-set on `state`, so a double click, a platform retry
    or a second bot instance can never move it twice.
    """

    __tablename__ = "approval_request"

    id: int | None = Field(default=None, primary_key=True)
    project: str = Field(max_length=100, index=True)
    stage: str = Field(max_length=100)
    verb: str = Field(max_length=32)
    command: str = Field(default="")  # the line to run again once approved
    fingerprint: str = Field(max_length=64)  # image digest + config hash + secret names…
    summary: str = Field(default="")  # the plan as shown, one line per row
    requested_by: int = Field(foreign_key="principal.id")
    requester_name: str = Field(default="", max_length=200)
    requester_platform: str = Field(default="", max_length=16)
    requester_workspace: str = Field(default="", max_length=64)
    requester_user: str = Field(default="", max_length=64)
    approvals_needed: int = 1
    approver_role: str = Field(default="approver", max_length=16)
    state: str = Field(default="pending", max_length=16, index=True)
    # pending → approved → executing → executed | failed; or rejected | expired | voided
    reason: str = Field(default="")
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    decided_at: datetime | None = None
    executor_id: str = Field(default="", max_length=64)  # the process running it, once approved
    heartbeat_at: datetime | None = None  # that process's last sign of life while executing
    platform: str = Field(default="", max_length=16)
    channel_id: str = Field(default="", max_length=100)
    thread_id: str = Field(default="", max_length=100)
    message_id: str = Field(default="", max_length=100)


class ApprovalVote(TableModel, table=True):
    """One approver's approval; the unique key makes each approver count once."""

    __tablename__ = "approval_vote"
    __table_args__ = (UniqueConstraint("request_id", "principal_id"),)

    id: int | None = Field(default=None, primary_key=True)
    request_id: int = Field(foreign_key="approval_request.id", index=True)
    principal_id: int = Field(foreign_key="principal.id")
    name: str = Field(default="", max_length=200)
    at: datetime = Field(default_factory=utcnow)


class PeriodicRun(TableModel, table=True):
    """When a periodic job last ran, on any instance: claiming a run is a compare-and-set on
    `last_run_at`, so N instances run it once per period."""

    __tablename__ = "periodic_run"

    name: str = Field(primary_key=True, max_length=64)
    last_run_at: datetime
    run_by: str = Field(default="", max_length=64)  # the process that claimed it


class CertificateWatch(TableModel, table=True):
    """A certificate flybot was asked for (or asked about), and the thread that hears about
    it: the scheduled re-check reports there when it turns active or fails validation, and
    the daily expiry check warns there. Every report is a compare-and-set on this row
    (`state`, `errors_digest`, `warned_days`), so two instances report each change once."""

    __tablename__ = "certificate_watch"
    __table_args__ = (UniqueConstraint("app", "hostname"),)

    id: int | None = Field(default=None, primary_key=True)
    project: str = Field(max_length=100)
    stage: str = Field(max_length=100)
    app: str = Field(max_length=100)
    hostname: str = Field(max_length=253)
    state: str = Field(default="pending", max_length=16, index=True)  # pending|active|removed
    status: str = Field(default="", max_length=32)  # Fly's last status word
    errors_digest: str = Field(default="", max_length=64)  # the validation errors last told
    expires_at: datetime | None = None
    warned_days: str = Field(default="", max_length=32)  # "14,3": warnings sent for expires_at
    requested_by: int | None = Field(default=None, foreign_key="principal.id")
    platform: str = Field(default="", max_length=16)
    workspace_id: str = Field(default="", max_length=64)
    channel_id: str = Field(default="", max_length=100)
    thread_id: str = Field(default="", max_length=100)
    message_id: str = Field(default="", max_length=100)
    created_at: datetime = Field(default_factory=utcnow)
    checked_at: datetime | None = None


class SecretsChange(TableModel, table=True):
    """One secret set or unset through flybot: the name, never the value. `version` is Fly's
    secrets version the change produced; a change is staged (not yet on the machines) until
    a release of the app with `secrets_version` at least that has succeeded."""

    __tablename__ = "secrets_change"

    id: int | None = Field(default=None, primary_key=True)
    project: str = Field(max_length=100)
    stage: str = Field(max_length=100)
    app: str = Field(max_length=100, index=True)
    name: str = Field(max_length=128)
    change: str = Field(max_length=16)  # new | replaced | removed
    version: int
    requested_by: int | None = Field(default=None, foreign_key="principal.id")
    requester_name: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utcnow)


class UsageDay(TableModel, table=True):
    """One UTC day of usage samples, claimed by the instance that collects it: the insert
    (or, for a day to retry, a compare-and-set on `status` and `claimed_at`) decides who
    samples it, so N instances sample each day once. `status`: collecting, done, estimated
    (Prometheus did not answer: machines from the Machines API, outbound guessed; retried
    while Prometheus still has the day), gap (the bot was down and Prometheus no longer has
    the day)."""

    __tablename__ = "usage_day"

    day: str = Field(primary_key=True, max_length=10)  # YYYY-MM-DD, UTC
    status: str = Field(default="collecting", max_length=16, index=True)
    claimed_by: str = Field(default="", max_length=64)
    claimed_at: datetime = Field(default_factory=utcnow)
    collected_at: datetime | None = None
    attempts: int = 0
    note: str = Field(default="", max_length=300)


class UsageSample(TableModel, table=True):
    """What one machine, volume or region of one app used on one day."""

    __tablename__ = "usage_sample"
    __table_args__ = (UniqueConstraint("day", "kind", "app", "key"),)

    id: int | None = Field(default=None, primary_key=True)
    day: str = Field(default="", max_length=10, index=True)
    kind: str = Field(max_length=16)  # machine | volume | egress
    app: str = Field(max_length=100)
    key: str = Field(max_length=100)  # the machine id, the volume id, the region (egress)
    region: str = Field(default="", max_length=16)
    cpu_kind: str = Field(default="", max_length=16)
    cpus: int = 0
    memory_mb: int = 0
    running_s: float = 0.0  # seconds started that day
    stopped_s: float = 0.0  # seconds it existed and was not started
    size_gb: float = 0.0  # a volume's size
    bytes_out: float = 0.0
    estimated: bool = False


class UsageSubscription(TableModel, table=True):
    """A scheduled usage report to a channel. `next_at` is when it is due; sending it moves
    `next_at` on by a compare-and-set, so two instances post each report once."""

    __tablename__ = "usage_subscription"

    id: int | None = Field(default=None, primary_key=True)
    schedule: str = Field(max_length=100)  # daily | weekly | monthly | a cron expression
    project: str = Field(default="", max_length=100)  # "" for the whole org
    platform: str = Field(max_length=16)
    workspace_id: str = Field(max_length=64)
    channel_id: str = Field(max_length=100)
    created_by: int | None = Field(default=None, foreign_key="principal.id")
    created_by_name: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    next_at: datetime = Field(index=True)
    last_sent_at: datetime | None = None


class UsageAlert(TableModel, table=True):
    """A threshold alert sent: the unique key (month, metric, threshold) lets each fire once
    per month whatever the number of instances and restarts."""

    __tablename__ = "usage_alert"
    __table_args__ = (UniqueConstraint("month", "metric", "threshold"),)

    id: int | None = Field(default=None, primary_key=True)
    month: str = Field(max_length=7)  # YYYY-MM
    metric: str = Field(max_length=32)
    threshold: int
    percent: float = 0.0
    message: str = Field(default="", max_length=500)
    action_line: str = Field(default="", max_length=300)  # the suggested command, if any
    sent_by: str = Field(default="", max_length=64)
    sent_at: datetime = Field(default_factory=utcnow)


def use_postgresql() -> None:
    """Give the partial indexes their PostgreSQL form (idempotent): called when a PostgreSQL
    engine is made (bot/store/engine.py) and before the release table is created on one."""
    for index in Release.__table__.indexes:  # type: ignore[attr-defined]
        options = index.dialect_options["postgresql"]  # loads the dialect: on PostgreSQL
        if index.name == "uq_release_active_app" and options["where"] is None:
            options["where"] = text(ACTIVE_DEPLOY_WHERE)


@event.listens_for(Release.__table__, "before_create")  # type: ignore[attr-defined]
def _before_create(table: Table, connection: Any, **_: Any) -> None:
    if connection.dialect.name == "postgresql":
        use_postgresql()
