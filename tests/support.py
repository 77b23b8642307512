"""Test helpers shared by the command-layer tests."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

from bot.app import build_services
from bot.settings import Settings
from commands.context import Services
from commands.dispatch import Dispatcher, Outcome
from commands.port import Invocation, MessageRef, Reply

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

FLY_TOML = """\
app = "{app}"
primary_region = "nrt"

[build]
  image = "registry.fly.io/{project}:v1"

[http_service]
  internal_port = 8080
"""


def write_projects(root: Path) -> Path:
    """Two projects: ping-go (dev, prod) and hello (dev, staging, prod). Returns flybot.toml."""
    for project, stages in (("ping-go", ("dev", "prod")), ("hello", ("dev", "staging", "prod"))):
        folder = root / project
        folder.mkdir(parents=True, exist_ok=True)
        for stage in stages:
            name = "fly.toml" if stage == "dev" else f"{stage}.fly.toml"
            (folder / name).write_text(FLY_TOML.format(app=f"{project}-{stage}", project=project))
    config = root / "flybot.toml"
    config.write_text('[projects.ping-go]\npath = "ping-go"\n\n[projects.hello]\npath = "hello"\n')
    return config


@dataclass
class RecordingConversation:
    """The Conversation port, recording what a command said (for command-layer tests)."""

    public: list[Reply] = field(default_factory=list)
    private: list[Reply] = field(default_factory=list)
    threads: dict[str, list[Reply]] = field(default_factory=dict)
    secrets: list[str | None] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    async def reply(self, reply: Reply) -> MessageRef:
        self.public.append(reply)
        return MessageRef("c", str(next(self._ids)))

    async def reply_private(self, reply: Reply) -> None:
        self.private.append(reply)

    async def start_thread(self, reply: Reply) -> MessageRef:
        ref = MessageRef("c", str(next(self._ids)))
        self.public.append(reply)
        self.threads[ref.message_id] = []
        return MessageRef("c", ref.message_id, thread_id=ref.message_id)

    async def post_in_thread(self, thread: MessageRef, reply: Reply) -> MessageRef:
        self.threads.setdefault(thread.thread_id or "", []).append(reply)
        return MessageRef("c", str(next(self._ids)), thread.thread_id)

    async def update(self, message: MessageRef, reply: Reply) -> None:
        self.public.append(reply)

    async def ask_secret(self, prompt: str) -> str | None:
        return self.secrets.pop(0) if self.secrets else None

    def all_text(self) -> str:
        replies = [*self.public, *self.private, *(r for t in self.threads.values() for r in t)]
        return "\n".join(r.plain() for r in replies)


@dataclass
class Bot:
    """A command layer over a real database, typed at by named shell users."""

    services: Services
    platform: str = "shell"
    workspace: str = "local"

    @classmethod
    def start(cls, database_url: str, config: Path | None, admins: tuple[str, ...] = ()) -> Bot:
        settings = Settings(database_url=database_url, config_path=config, admins=admins)
        return cls(build_services(settings))

    @property
    def engine(self) -> Engine:
        return self.services.engine

    async def run(
        self,
        user: str,
        line: str,
        *,
        platform: str | None = None,
        workspace: str | None = None,
        dedupe_key: str | None = None,
    ) -> tuple[Outcome, RecordingConversation]:
        conversation = RecordingConversation()
        invocation = Invocation(
            platform=platform or self.platform,
            workspace_id=workspace or self.workspace,
            channel_id="c",
            user_id=user,
            display_name=user,
            text=line,
            dedupe_key=dedupe_key,
        )
        outcome = await Dispatcher(self.services).handle(invocation, conversation)
        return outcome, conversation


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to prove that something changed nothing."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as connection:
        for table in inspect(engine).get_table_names():
            rows = connection.execute(text(f'SELECT * FROM "{table}"')).all()
            tables[table] = sorted((tuple(r) for r in rows), key=repr)
    return tables
