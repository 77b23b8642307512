"""Roles, lowest first, and what a grant's scope covers."""

from __future__ import annotations

from enum import IntEnum

ANY = "*"


class Role(IntEnum):
    viewer = 1
    deployer = 2
    approver = 3
    admin = 4

    @classmethod
    def parse(cls, name: str) -> Role:
        from commands.errors import UsageError

        try:
            return cls[name.strip().lower()]
        except KeyError:
            allowed = ", ".join(r.name for r in cls)
            raise UsageError(f"Unknown role '{name}'. Roles are: {allowed}.") from None


def scope_covers(grant_project: str, grant_stage: str, project: str, stage: str) -> bool:
    """A grant on (p, s) covers (project, stage) when each part is equal or the grant's is `*`.

    `project`/`stage` may be `*` themselves (an org-wide or project-wide action): then only a
    grant that is `*` there too covers it.
    """
    return grant_project in (ANY, project) and grant_stage in (ANY, stage)


def format_scope(project: str, stage: str) -> str:
    return f"{project}/{stage}"
