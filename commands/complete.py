"""Suggestions for a parameter being typed, for platforms with autocomplete (Discord): the
kinds' own completions (projects, stages, process groups, roles) and, from the database, the
stage's release versions and the pending approval requests.

Earlier values are converted leniently: what does not convert is left out, so a half-typed
command still gets suggestions. Nothing here writes anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import col, select

from bot.store.engine import session_scope
from bot.store.models import ApprovalRequest, Release
from commands.context import Services
from commands.errors import UsageError
from commands.kinds import REQUEST, VERSION, Binding, Kind
from commands.port import Invocation
from commands.registry import Command

MAX_SUGGESTIONS = 25  # Discord shows 25


@dataclass(frozen=True)
class Suggestion:
    label: str  # shown
    value: str  # what the option gets


def completable(kind: Kind) -> bool:
    return kind.complete is not None or kind.name in (VERSION.name, REQUEST.name)


def _kind_of(command: Command, name: str) -> Kind | None:
    for param in command.params:
        if param.name == name:
            return param.type
    for flag in command.flags:
        if flag.key == name:
            return flag.type
    return None


def suggestions(
    services: Services,
    invocation: Invocation,
    command: Command,
    focused: str,
    prefix: str,
    given: dict[str, str],
) -> list[Suggestion]:
    """What to offer for `focused` (a parameter or flag of `command`) starting with
    `prefix`, given the other values typed so far. Blocking (database reads)."""
    binding = Binding(services.catalog, invocation)
    for param in command.params:
        word = given.get(param.name)
        if param.name == focused or word in (None, ""):
            continue
        try:
            binding.bound[param.name] = param.type.convert(f"<{param.name}>", str(word), binding)
        except (UsageError, ValueError):
            continue
    kind = _kind_of(command, focused)
    prefix = prefix.strip()
    if kind is None:
        return []
    if kind.name == REQUEST.name:
        return _requests(services, binding, prefix)
    if kind.name == VERSION.name:
        return _versions(services, binding, prefix)
    if kind.complete is None:
        return []
    return [Suggestion(s, s) for s in kind.complete(prefix, binding)][:MAX_SUGGESTIONS]


def _requests(services: Services, binding: Binding, prefix: str) -> list[Suggestion]:
    query = select(ApprovalRequest).where(ApprovalRequest.state == "pending")
    project = binding.bound.get("project")
    if isinstance(project, str) and project != "*":
        query = query.where(ApprovalRequest.project == project)
    with session_scope(services.engine) as session:
        pending = list(session.exec(query.order_by(col(ApprovalRequest.id).desc()).limit(200)))
    found = [
        Suggestion(f"#{r.id} {r.verb} {r.project}/{r.stage} by {r.requester_name}"[:100], str(r.id))
        for r in pending
        if str(r.id).startswith(prefix)
    ]
    return found[:MAX_SUGGESTIONS]


def _versions(services: Services, binding: Binding, prefix: str) -> list[Suggestion]:
    project, stage = binding.bound.get("project"), binding.bound.get("stage")
    if not isinstance(project, str) or not isinstance(stage, str):
        return []
    with session_scope(services.engine) as session:
        releases = list(
            session.exec(
                select(Release)
                .where(Release.project == project, Release.stage == stage)
                .order_by(col(Release.version).desc())
                .limit(200)
            )
        )
    found = [
        Suggestion(f"v{r.version} {r.state}: {r.image}"[:100], str(r.version))
        for r in releases
        if str(r.version).startswith(prefix)
    ]
    return found[:MAX_SUGGESTIONS]
