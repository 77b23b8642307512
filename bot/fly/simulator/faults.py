"""Fault injection (seeded, so a run can be replayed) and the call log."""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any

# Friendlier names accepted by `inject`, mapped to the operation names the call log uses.
ALIASES = {
    "Leases_create": "Machines_create_lease",
    "Leases_show": "Machines_show_lease",
    "Leases_release": "Machines_release_lease",
    "Secrets_set": "Secrets_update",
    "Machines_get": "Machines_show",
    "Apps_get": "Apps_show",
    "Certificates_create": "App_Certificates_acme_create",
    "Certificates_check": "App_Certificates_check",
}

REDACTED = "[redacted]"


@dataclass
class Fault:
    """On a call to `operation` (or any, for `*`), with probability `rate`: wait `latency`
    seconds, then either hang `timeout` seconds and answer 504 without acting (`timeout`),
    answer `status` without acting (with `Retry-After: retry_after` if given), or, with
    neither, go on and serve the call normally (latency only). `count` limits how many times
    it fires; `machine_id` limits it to calls about one machine.

    `applied` is the chance that a `status` or `timeout` answer comes after the call was
    carried out: the answer is lost, the change is made, as when Fly acts and the response
    never reaches the client."""

    operation: str
    rate: float = 1.0
    status: int | None = None
    latency: float = 0.0
    timeout: float | None = None
    retry_after: int | None = None
    count: int | None = None
    applied: float = 0.0
    machine_id: str | None = None
    # The error's text quotes the request body, as some APIs' validation errors do (for
    # showing that a client keeps such text out of its logs and replies).
    echo: bool = False
    fired: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Decision:
    latency: float = 0.0
    status: int | None = None
    retry_after: int | None = None
    hang: float | None = None
    applied: bool = False  # act first, then give the error answer
    echo: bool = False  # the error's text quotes the request body
    labels: list[str] = field(default_factory=list)

    @property
    def label(self) -> str | None:
        return ",".join(self.labels) or None


class FaultPlan:
    def __init__(self, seed: int | str) -> None:
        self.rng = random.Random(f"faults:{seed}")
        self.faults: list[Fault] = []

    def add(self, fault: Fault) -> Fault:
        fault.operation = ALIASES.get(fault.operation, fault.operation)
        if not 0.0 <= fault.rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        if fault.status is not None and not 400 <= fault.status <= 599:
            raise ValueError("status must be an HTTP error status (4xx or 5xx)")
        if not 0.0 <= fault.applied <= 1.0:
            raise ValueError("applied must be between 0 and 1")
        self.faults.append(fault)
        return fault

    def clear(self, operation: str | None = None) -> None:
        if operation is None:
            self.faults.clear()
        else:
            operation = ALIASES.get(operation, operation)
            self.faults = [f for f in self.faults if f.operation != operation]

    def decide(self, operation: str, machine_id: str | None = None) -> Decision:
        """Roll every matching fault once, in the order they were added; the first one that
        ends the call (status or timeout) wins, latencies add up."""
        decision = Decision()
        for fault in list(self.faults):
            if fault.operation not in ("*", operation):
                continue
            if fault.machine_id is not None and fault.machine_id != machine_id:
                continue
            # Always draw, so whether one fault fires does not shift the others' sequence.
            roll, applied_roll = self.rng.random(), self.rng.random()
            if roll >= fault.rate or decision.status is not None or decision.hang is not None:
                continue
            fault.fired += 1
            if fault.count is not None and fault.fired >= fault.count:
                self.faults.remove(fault)
            decision.latency += fault.latency
            if fault.timeout is not None or fault.status is not None:
                decision.applied = applied_roll < fault.applied
                if decision.applied:
                    decision.labels.append("applied")
            if fault.timeout is not None:
                decision.hang = fault.timeout
                decision.labels.append("timeout")
            elif fault.status is not None:
                decision.status = fault.status
                decision.retry_after = fault.retry_after
                decision.echo = fault.echo
                decision.labels.append(f"status:{fault.status}")
            if fault.latency:
                decision.labels.append(f"latency:{fault.latency:g}s")
        return decision


@dataclass
class CallRecord:
    """One call the simulator served. `body` is the parsed JSON request body, with every
    value of a secrets call replaced by "[redacted]"; `fault` names what was injected."""

    method: str
    path: str
    operation: str
    query: dict[str, str]
    status: int
    timestamp: float
    duration: float
    request_id: str
    fault: str | None = None
    body: Any = None
    machine_id: str | None = None

    @property
    def faulted(self) -> bool:
        return self.fault is not None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def redact_secrets(body: Any) -> Any:
    """Keep the shape (names, nulls for unset) and drop every value."""
    if isinstance(body, dict):
        return {k: redact_secrets(v) for k, v in body.items()}
    if isinstance(body, list):
        return [redact_secrets(v) for v in body]
    if body is None or isinstance(body, bool):
        return body
    return REDACTED
