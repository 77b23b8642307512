"""Test helpers shared by the command-layer tests."""

from __future__ import annotations

import contextvars
import itertools
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel, select

from bot.runtime import build_services
from bot.settings import Settings
from bot.store import make_engine
from bot.store.audit import recent
from bot.store.engine import session_scope
from commands.context import Services
from commands.dispatch import Dispatcher, Outcome
from commands.port import ChannelRef, Invocation, MessageRef, Reply

M = TypeVar("M", bound=SQLModel)

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
    """Both sides of the port, recording what was said (for command-layer tests): the
    answers to one invocation (`Interaction`) and the durable posts (`Outbox`)."""

    platform: str = "shell"
    workspace: str = "local"
    public: list[Reply] = field(default_factory=list)
    private: list[Reply] = field(default_factory=list)
    threads: dict[str, list[Reply]] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def _ref(self, thread_id: str | None = None) -> MessageRef:
        return MessageRef(self.platform, self.workspace, "c", str(next(self._ids)), thread_id)

    async def reply(self, reply: Reply) -> MessageRef:
        self.public.append(reply)
        return self._ref()

    async def reply_private(self, reply: Reply) -> None:
        self.private.append(reply)

    async def start_thread(self, reply: Reply) -> MessageRef:
        ref = self._ref()
        self.public.append(reply)
        self.threads[ref.message_id] = []
        return replace(ref, thread_id=ref.message_id)

    async def post(self, where: ChannelRef, reply: Reply) -> MessageRef:
        return await self.reply(reply)

    async def post_in_thread(self, thread: MessageRef, reply: Reply) -> MessageRef:
        self.threads.setdefault(thread.thread_id or "", []).append(reply)
        return self._ref(thread.thread_id)

    async def update(self, message: MessageRef, reply: Reply) -> None:
        self.public.append(reply)

    def all_text(self) -> str:
        replies = [*self.public, *self.private, *(r for t in self.threads.values() for r in t)]
        return "\n".join(r.plain() for r in replies)


# The conversation of the `Bot.run` call in progress (and of work it spawned): durable posts
# made meanwhile are recorded in it too, so a test sees a click's card update and thread line.
_current: contextvars.ContextVar[RecordingConversation | None] = contextvars.ContextVar(
    "current_conversation", default=None
)


@dataclass
class RecordingOutbox:
    """A platform's outbox in tests: every durable post, and a copy to the current run's."""

    platform: str
    log: RecordingConversation = field(default_factory=RecordingConversation)

    def _targets(self) -> list[RecordingConversation]:
        current = _current.get()
        return [self.log] + ([current] if current is not None else [])

    async def post(self, where: ChannelRef, reply: Reply) -> MessageRef:
        refs = [await c.post(where, reply) for c in self._targets()]
        return refs[-1]

    async def post_in_thread(self, thread: MessageRef, reply: Reply) -> MessageRef:
        refs = [await c.post_in_thread(thread, reply) for c in self._targets()]
        return refs[-1]

    async def update(self, message: MessageRef, reply: Reply) -> None:
        for conversation in self._targets():
            await conversation.update(message, reply)


PLATFORMS = ("shell", "slack", "discord")


@dataclass
class Bot:
    """A command layer over a real database, typed at by named shell users."""

    services: Services
    platform: str = "shell"
    workspace: str = "local"

    def __post_init__(self) -> None:
        for platform in PLATFORMS:
            if platform not in self.services.router.platforms:
                self.services.router.register(platform, RecordingOutbox(platform))

    @classmethod
    def start(cls, database_url: str, config: Path | None, admins: tuple[str, ...] = ()) -> Bot:
        settings = Settings(database_url=database_url, config_path=config, admins=admins)
        return cls(build_services(settings))

    @property
    def engine(self) -> Engine:
        return self.services.engine

    def outbox(self, platform: str = "shell") -> RecordingConversation:
        """Everything posted durably on `platform` so far."""
        outbox = self.services.router.outbox(platform)
        assert isinstance(outbox, RecordingOutbox)
        return outbox.log

    async def run(
        self,
        user: str,
        line: str,
        *,
        platform: str | None = None,
        workspace: str | None = None,
        dedupe_key: str | None = None,
        secrets: dict[str, str] | None = None,
        name: str | None = None,
    ) -> tuple[Outcome, RecordingConversation]:
        platform = platform or self.platform
        workspace = workspace or self.workspace
        conversation = RecordingConversation(platform, workspace)
        invocation = Invocation(
            platform=platform,
            workspace_id=workspace,
            channel_id="c",
            user_id=user,
            display_name=user if name is None else name,
            text=line,
            dedupe_key=dedupe_key,
        )
        token = _current.set(conversation)
        try:
            outcome = await Dispatcher(self.services).handle(invocation, conversation, secrets)
        finally:
            _current.reset(token)
        return outcome, conversation


def snapshot(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, to prove that something changed nothing."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    with engine.connect() as connection:
        for table in inspect(engine).get_table_names():
            rows = connection.execute(text(f'SELECT * FROM "{table}"')).all()
            tables[table] = sorted((tuple(r) for r in rows), key=repr)
    return tables


def table_rows(database: Engine | str, model: type[M]) -> list[M]:
    """Every row of `model`'s table, in primary-key order: from this process's engine, or
    by URL from the database a `flybot run` process writes."""
    engine = make_engine(database) if isinstance(database, str) else database
    try:
        with session_scope(engine) as session:
            return list(session.exec(select(model).order_by(*inspect(model).primary_key)))
    finally:
        if isinstance(database, str):
            engine.dispose()


def written_forms(value: str) -> set[str]:
    """A value as it could be written down: raw, JSON-escaped, repr-escaped."""
    return {value, json.dumps(value)[1:-1], repr(value)[1:-1]}


def places_holding(
    value: str, database: Engine | str, root: Path | None = None, **texts: str
) -> list[str]:
    """Every place `value` is found in any of its written forms: a row of any table, an
    audit entry, a SQLite file of `root` (`flybot.db*`), and each named text (a process's
    log, the calls a fake recorded, replies, the texts of exceptions raised)."""
    forms = written_forms(value)
    engine = make_engine(database) if isinstance(database, str) else database
    found = []
    try:
        # each value as stored (a repr would hide a JSON-escaped form behind its own escapes)
        rows = [str(v) for table in snapshot(engine).values() for row in table for v in row]
        if any(f in v for v in rows for f in forms):
            found.append("a database row")
        entries = [str(v) for e in recent(engine, limit=500) for v in e.model_dump().values()]
        if any(f in v for v in entries for f in forms):
            found.append("the audit log")
    finally:
        if isinstance(database, str):
            engine.dispose()
    for path in sorted(root.glob("flybot.db*")) if root is not None else ():
        data = path.read_bytes()
        if any(f.encode() in data for f in forms):
            found.append(path.name)
    for name, written in texts.items():
        for f in forms:
            if f in written:
                at = written.index(f)
                found.append(f"{name}: …{written[max(at - 120, 0) : at + 120]}…")
                break
    return found


def assert_found_nowhere(
    value: str, database: Engine | str, root: Path | None = None, **texts: str
) -> None:
    """A secret value reached none of the places `places_holding` searches."""
    found = places_holding(value, database, root, **texts)
    assert found == [], f"{value!r} found in:\n" + "\n".join(found)
