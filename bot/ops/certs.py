"""Certificates: hostnames checked before Fly sees them, the DNS records to create from
Fly's answer, and the watch rows that decide what a certificate's thread is told.

Every report is decided by a compare-and-set on the watch row, so the scheduled re-check,
a person typing `/fly certs check` and a second bot instance can all look at the same
certificate and its thread still hears "active" once, each new set of validation errors
once, and each expiry warning once.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Update, update
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from bot.clock import utcnow
from bot.fly import Certificate
from bot.store.engine import session_scope
from bot.store.models import CertificateWatch

WARN_DAYS = (14, 3)  # expiry warnings, days before; each sent once per expiry date
MAX_HOSTNAME = 253
_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
# Second-level suffixes under which the registrable name has three labels. Not the whole
# public suffix list: enough to not advise a CNAME at the apex of the common ones.
_TWO_LEVEL_SUFFIXES = frozenset(
    {
        "co.uk", "org.uk", "ac.uk", "gov.uk", "me.uk", "com.au", "net.au", "org.au",
        "co.jp", "ne.jp", "or.jp", "co.kr", "or.kr", "co.nz", "com.br", "com.cn",
        "com.tw", "com.sg", "com.mx", "co.in", "co.za", "com.tr",
    }
)  # fmt: skip


class HostnameError(ValueError):
    """Not a hostname Fly could issue a certificate for; the message says why."""


def normalize_hostname(text: str) -> str:
    """The hostname as Fly keys it (lower case, no trailing dot), or a `HostnameError`."""
    shown = text[:80]
    host = text.strip().lower().rstrip(".")
    if not host:
        raise HostnameError("a hostname is needed, e.g. www.example.com")
    if "://" in host or "/" in host:
        raise HostnameError(f"'{shown}' is a URL; give the hostname alone, e.g. www.example.com")
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        raise HostnameError(f"'{shown}' is an IP address; certificates are for hostnames")
    if len(host) > MAX_HOSTNAME:
        raise HostnameError(f"'{shown}…' is longer than {MAX_HOSTNAME} characters")
    labels = host.split(".")
    wildcard = labels[0] == "*"
    if wildcard:
        labels = labels[1:]
    if len(labels) < 2:
        raise HostnameError(f"'{shown}' is not a full hostname (e.g. www.example.com)")
    for label in labels:
        if not _LABEL.match(label):
            raise HostnameError(
                f"'{shown}' is not a hostname: '{label[:63]}' must be 1-63 letters, digits "
                "or inner hyphens"
            )
    if labels[-1].isdigit():
        raise HostnameError(f"'{shown}' has a numeric top-level domain")
    return ("*." if wildcard else "") + ".".join(labels)


def is_apex(hostname: str) -> bool:
    """A registrable domain itself (example.com), where DNS allows no CNAME."""
    labels = hostname.removeprefix("*.").split(".")
    if len(labels) == 2:
        return True
    return len(labels) == 3 and ".".join(labels[1:]) in _TWO_LEVEL_SUFFIXES


@dataclass(frozen=True)
class DnsRecord:
    type: str  # A, AAAA, CNAME
    name: str
    value: str
    why: str = ""

    def line(self) -> str:
        why = f"  ({self.why})" if self.why else ""
        return f"{self.type:<5} {self.name} → {self.value}{why}"


def dns_records(hostname: str, cert: Certificate) -> tuple[list[DnsRecord], list[str]]:
    """The records to create for `hostname`, from Fly's `dns_requirements`, and notes.

    As flyctl advises: A and AAAA to the app's IPs (at an apex, the only choice), or else a
    CNAME to `<app>.fly.dev`; the `_acme-challenge` CNAME lets Fly issue before traffic
    moves and is required for a wildcard."""
    req = cert.dns_requirements
    records: list[DnsRecord] = []
    notes: list[str] = []
    if req is None:
        return records, ["Fly gave no DNS requirements; run `certs show` in a moment."]
    wildcard = hostname.startswith("*.")
    name = hostname
    routing = [DnsRecord("A", name, ip) for ip in req.a[:1]]
    routing += [DnsRecord("AAAA", name, ip) for ip in req.aaaa[:1]]
    if not routing:
        notes.append("⚠ The app has no public IP addresses: allocate them (`fly ips allocate`).")
    if req.cname and not is_apex(hostname):
        if routing:
            notes.append(f"Either the A/AAAA records or one CNAME {name} → {req.cname}.")
        routing.append(DnsRecord("CNAME", name, req.cname, "instead of A/AAAA"))
    elif not req.a and req.aaaa:
        notes.append("⚠ No IPv4 address: clients without IPv6 cannot reach it.")
    records.extend(routing)
    challenge = req.acme_challenge
    if challenge and challenge.name and challenge.target:
        why = "required for a wildcard" if wildcard else "lets Fly issue before traffic moves"
        records.append(DnsRecord("CNAME", challenge.name, challenge.target, why))
    return records, notes


def is_active(cert: Certificate) -> bool:
    return cert.status == "active" or any(c.status == "active" for c in cert.certificates)


def expiry_of(cert: Certificate) -> datetime | None:
    """When the first of its issued certificates expires (Fly issues an RSA and an ECDSA)."""
    found: list[datetime] = []
    for issued in cert.certificates:
        if issued.expires_at:
            try:
                found.append(_parse_time(issued.expires_at))
            except ValueError:
                continue
    return min(found) if found else None


def _parse_time(text: str) -> datetime:
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def error_lines(cert: Certificate) -> list[str]:
    lines = []
    for error in cert.validation_errors:
        text = (error.message or error.code or "validation failed").strip()
        lines.append(f"✗ {text[:300]}")
        if error.remediation:
            lines.append(f"  {error.remediation.strip()[:300]}")
    return lines


def errors_digest(cert: Certificate) -> str:
    """The same errors again (a later timestamp) are the same; a new message is new."""
    parts = sorted(f"{e.code}|{e.message}" for e in cert.validation_errors)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32] if parts else ""


# --- watch rows ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    """Where a certificate's thread is: a stored message ref."""

    platform: str
    workspace_id: str
    channel_id: str
    message_id: str
    thread_id: str


def watch(
    engine: Engine,
    *,
    project: str,
    stage: str,
    app: str,
    hostname: str,
    cert: Certificate,
    place: Place | None,
    requested_by: int | None,
) -> CertificateWatch:
    """Remember the certificate and its thread (a new `certs add` moves it to the new one)."""
    with session_scope(engine) as session:
        row = session.exec(
            select(CertificateWatch).where(
                CertificateWatch.app == app, CertificateWatch.hostname == hostname
            )
        ).first()
        if row is None:
            row = CertificateWatch(project=project, stage=stage, app=app, hostname=hostname)
        active = is_active(cert)
        expires = expiry_of(cert)
        if row.state != "active" or not active or row.expires_at != expires:
            row.warned_days = ""
        row.project, row.stage = project, stage
        row.state = "active" if active else "pending"
        row.status = (cert.status or "")[:32]
        row.expires_at = expires
        row.errors_digest = errors_digest(cert)
        row.checked_at = utcnow()
        if place is not None:
            row.platform, row.workspace_id = place.platform, place.workspace_id
            row.channel_id, row.message_id = place.channel_id, place.message_id
            row.thread_id = place.thread_id
        if requested_by is not None:
            row.requested_by = requested_by
        session.add(row)
        session.flush()
        return row


def watched(engine: Engine, app: str, hostname: str) -> CertificateWatch | None:
    with session_scope(engine) as session:
        return session.exec(
            select(CertificateWatch).where(
                CertificateWatch.app == app, CertificateWatch.hostname == hostname
            )
        ).first()


def watches(
    engine: Engine, state: str, apps: tuple[str, ...] | None = None
) -> list[CertificateWatch]:
    with session_scope(engine) as session:
        query = select(CertificateWatch).where(CertificateWatch.state == state)
        if apps is not None:
            query = query.where(col(CertificateWatch.app).in_(apps))
        return list(session.exec(query.order_by(col(CertificateWatch.id))))


@dataclass(frozen=True)
class Change:
    """What a certificate's thread is to be told, once."""

    kind: str  # active | errors | removed
    lines: tuple[str, ...]


def _moved(engine: Engine, statement: Update) -> bool:
    with session_scope(engine) as session:
        result = session.execute(statement)
        return bool(result.rowcount)  # type: ignore[attr-defined]


def observe(engine: Engine, row: CertificateWatch, cert: Certificate) -> Change | None:
    """Record what Fly says of a watched certificate; return the change its thread must
    hear, to exactly one caller across every instance (None to everyone else)."""
    now = utcnow()
    where = col(CertificateWatch.id) == row.id
    if is_active(cert):
        expires = expiry_of(cert)
        if _moved(
            engine,
            update(CertificateWatch)
            .where(where, col(CertificateWatch.state) == "pending")
            .values(
                state="active",
                status=(cert.status or "active")[:32],
                expires_at=expires,
                errors_digest="",
                warned_days="",
                checked_at=now,
            ),
        ):
            until = f", valid until {expires:%Y-%m-%d}" if expires else ""
            return Change("active", (f"✓ The certificate for {row.hostname} is active{until}.",))
        # Already active: a renewal moves the expiry, and the warnings start over for it.
        _moved(
            engine,
            update(CertificateWatch)
            .where(
                where,
                col(CertificateWatch.state) == "active",
                col(CertificateWatch.expires_at).is_distinct_from(expires),
            )
            .values(expires_at=expires, warned_days="", checked_at=now),
        )
        return None
    digest = errors_digest(cert)
    if (
        _moved(
            engine,
            update(CertificateWatch)
            .where(
                where,
                col(CertificateWatch.state) == "pending",
                col(CertificateWatch.errors_digest) != digest,
            )
            .values(errors_digest=digest, status=(cert.status or "")[:32], checked_at=now),
        )
        and digest
    ):
        return Change("errors", (f"Validation of {row.hostname} is failing:", *error_lines(cert)))
    return None


def forget(engine: Engine, row: CertificateWatch, why: str) -> Change | None:
    """The certificate is gone from Fly (removed here, or elsewhere): tell its thread once."""
    if _moved(
        engine,
        update(CertificateWatch)
        .where(col(CertificateWatch.id) == row.id, col(CertificateWatch.state) != "removed")
        .values(state="removed", checked_at=utcnow()),
    ):
        return Change("removed", (why,))
    return None


def warning_due(row: CertificateWatch, now: datetime | None = None) -> tuple[int, str] | None:
    """The expiry warning to send now, and `warned_days` once it is sent: the nearest
    threshold crossed and not yet warned of (a certificate first seen 2 days before expiry
    hears the 3-day warning only)."""
    if row.expires_at is None:
        return None
    left = row.expires_at - (now or utcnow())
    sent = {d for d in row.warned_days.split(",") if d}
    crossed = [d for d in WARN_DAYS if left <= timedelta(days=d)]
    if not crossed or all(str(d) in sent for d in crossed):
        return None
    marked = sorted({*crossed, *(int(d) for d in sent)}, reverse=True)
    return min(crossed), ",".join(str(d) for d in marked)


def claim_warning(engine: Engine, row: CertificateWatch, warned_days: str) -> bool:
    """True for exactly one caller: the warning is recorded as sent for this expiry date."""
    return _moved(
        engine,
        update(CertificateWatch)
        .where(
            col(CertificateWatch.id) == row.id,
            col(CertificateWatch.state) == "active",
            col(CertificateWatch.warned_days) == row.warned_days,
            col(CertificateWatch.expires_at) == row.expires_at,
        )
        .values(warned_days=warned_days),
    )
