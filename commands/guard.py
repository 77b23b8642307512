"""The two signals between a guarded command and the approval flow."""

from __future__ import annotations

from dataclasses import dataclass

from bot.store.models import ApprovalRequest


@dataclass(frozen=True)
class Approved:
    """Handed to a guarded command when it runs because its request was approved."""

    request: ApprovalRequest
    approvers: tuple[str, ...]


class AwaitingApproval(Exception):
    """Not an error: the action now waits for approval in its thread."""

    def __init__(self, request: ApprovalRequest) -> None:
        self.request = request
        super().__init__(f"request #{request.id} awaits approval")
