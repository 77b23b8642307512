"""Approval requests' state changes: every one a compare-and-set on the row's state."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlmodel import col

from bot.store.engine import session_scope
from bot.store.models import ApprovalRequest


def move_request(
    engine: Engine, request_id: int, expect: tuple[str, ...], to: str, **values: object
) -> bool:
    """Move the request to `to` if it is in one of `expect`; False when another click,
    retry or bot instance moved it first."""
    with session_scope(engine) as session:
        result = session.execute(
            update(ApprovalRequest)
            .where(col(ApprovalRequest.id) == request_id, col(ApprovalRequest.state).in_(expect))
            .values(state=to, **values)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]
