"""Who this process is: its host, and an id no other process shares, not even a second
flybot on the same host or this one's successor after a restart.

Work claimed in the database (a deploy, an approved request) records the id of the process
doing it, and that process's heartbeat. Whether the work is dead is decided by the
heartbeat going silent, never by the id: a process cannot tell from an id whether another
process is alive.
"""

from __future__ import annotations

import os
import secrets
import socket


def host_name() -> str:
    """The machine this process runs on: Fly's machine id on Fly, else the hostname."""
    return (os.environ.get("FLY_MACHINE_ID") or socket.gethostname() or "localhost")[:64]


def new_instance_id(host: str | None = None) -> str:
    """`<host>-<pid>-<random>`, at most 64 characters."""
    return f"{(host or host_name())[:44]}-{os.getpid()}-{secrets.token_hex(4)}"


HOST = host_name()
INSTANCE_ID = new_instance_id(HOST)
