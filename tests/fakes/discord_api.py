"""A fake Discord on 127.0.0.1 for any test: the REST API under /api/v10 (recording every call
and answering as Discord does: token checks, one acknowledgement per interaction, limits) and
a gateway websocket (HELLO, heartbeats, IDENTIFY → READY + GUILD_CREATE, then the
INTERACTION_CREATE dispatches a test asks for, to every connected session).

    async with running_fake_discord() as discord:
        # FLYBOT_DISCORD_API_URL=discord.api_url FLYBOT_DISCORD_GATEWAY_URL=discord.gateway_url
        await discord.slash(BOB, "deploy", project="shop", stage="prod")
        discord.calls            # every REST call, in order: Call(method, path, body, status)
        discord.messages         # id -> Message as it is now (edits applied), ephemeral included

What it keeps: messages by id with their channel (a thread started from a message has the
message's id, as on Discord), interaction responses (the deferred "thinking…" original is
replaced by the first follow-up, or by an edit of @original), modals answered, and the
command tree put by the bot. An interaction answered twice gets 40060, as Discord answers a
second instance that acknowledges the same interaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

BOT_TOKEN = "fake-discord-bot-token.Gx1.abcdef"
APP_ID = "1100000000000000001"
BOT_USER = APP_ID  # a bot's user id is its application id
GUILD = "1200000000000000001"
CHANNEL = "1300000000000000001"
EPHEMERAL = 64
PRIVILEGED_INTENTS = (1 << 1) | (1 << 8) | (1 << 15)  # members, presences, message content

_snowflakes = itertools.count(1400000000000000001)


def snowflake() -> str:
    return str(next(_snowflakes))


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000000+00:00", time.gmtime())


@dataclass
class Call:
    method: str  # "POST", "PATCH", …
    path: str  # under /api/v10, e.g. /channels/1/messages
    body: Any
    auth: str = ""
    status: int = 200
    answer: Any = None
    files: list[tuple[str, bytes]] = field(default_factory=list)  # multipart uploads

    @property
    def route(self) -> str:
        """The path with ids and tokens replaced: `/channels/{id}/messages`."""
        path = re.sub(r"/interactions/\d+/[^/]+/", "/interactions/{id}/{token}/", self.path)
        path = re.sub(r"/webhooks/\d+/[^/]+", "/webhooks/{app}/{token}", path)
        return re.sub(r"/\d{6,}", "/{id}", path)

    def dump(self) -> str:
        return json.dumps(
            {"method": self.method, "path": self.path, "body": self.body, "answer": self.answer},
            ensure_ascii=False,
        )


@dataclass
class Message:
    id: str
    channel_id: str
    embeds: list[dict[str, Any]] = field(default_factory=list)
    components: list[dict[str, Any]] = field(default_factory=list)
    content: str = ""
    flags: int = 0
    author: str = BOT_USER
    interaction_id: str | None = None  # the interaction it answers, if any
    loading: bool = False  # a deferred "thinking…" response not yet replaced
    deleted: bool = False
    edits: int = 0
    files: list[tuple[str, bytes]] = field(default_factory=list)  # (filename, bytes)

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def buttons(self) -> list[dict[str, Any]]:
        return [b for row in self.components for b in row.get("components", [])]

    def all_text(self) -> str:
        parts = [self.content]
        for embed in self.embeds:
            parts.extend([embed.get("title", ""), embed.get("description", "")])
            for item in embed.get("fields", []):
                parts.extend([item.get("name", ""), item.get("value", "")])
        return "\n".join(p for p in parts if p)

    def plain(self) -> str:
        """`all_text` with Discord's markdown escapes taken out: what a person reads."""
        return re.sub(r"\\(.)", r"\1", self.all_text())

    def payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "channel_id": self.channel_id,
            "guild_id": GUILD,
            "type": 20 if self.interaction_id else 0,
            "content": self.content,
            "embeds": self.embeds,
            "components": self.components,
            "attachments": [
                {
                    "id": str(index + 1),
                    "filename": name,
                    "size": len(data),
                    "url": f"https://cdn.discordapp.invalid/{self.id}/{name}",
                    "proxy_url": f"https://media.discordapp.invalid/{self.id}/{name}",
                }
                for index, (name, data) in enumerate(self.files)
            ],
            "mentions": [],
            "mention_roles": [],
            "mention_everyone": False,
            "pinned": False,
            "tts": False,
            "timestamp": _now(),
            "edited_timestamp": _now() if self.edits else None,
            "flags": self.flags,
            "author": _user(self.author, "flybot", bot=True),
        }


@dataclass
class Interaction:
    id: str
    token: str
    kind: int  # 2 command, 3 component, 4 autocomplete, 5 modal submit
    user: str
    channel_id: str
    data: dict[str, Any]
    answers: list[dict[str, Any]] = field(default_factory=list)  # callbacks, in order
    original: str | None = None  # the id of its response message
    acked_at: float = 0.0  # time.monotonic() of its first acknowledgement


def _user(user_id: str, name: str, bot: bool = False) -> dict[str, Any]:
    return {
        "id": user_id,
        "username": name,
        "global_name": name,
        "discriminator": "0",
        "avatar": None,
        **({"bot": True} if bot else {}),
    }


class FakeDiscord:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.messages: dict[str, Message] = {}
        self._upload: list[tuple[str, bytes]] = []  # the files of the request being answered
        self.threads: dict[str, dict[str, Any]] = {}  # thread id -> the thread channel
        self.interactions: dict[str, Interaction] = {}
        self.commands: dict[str, list[dict[str, Any]]] = {}  # "guild:<id>" | "global" -> tree
        self.users: dict[str, str] = {}  # id -> name
        self.identifies: list[dict[str, Any]] = []
        self.sessions: list[web.WebSocketResponse] = []
        self.base_url = ""
        # True: every instance's acknowledgement is accepted (as when Discord's answer to
        # the first was lost), so only the database's claim keeps a command to one run
        self.lenient_acks = False
        self.faults: list[tuple[str, str, int, float]] = []  # method, route, status, retry
        self._seq = itertools.count(1)
        self._changed = asyncio.Event()

    # --- what tests read -----------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"{self.base_url.replace('http://', 'ws://')}/gateway"

    def calls_to(self, method: str, route: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and c.route == route]

    def in_channel(self, channel: str, ephemeral: bool = False) -> list[Message]:
        return [
            m
            for m in self.messages.values()
            if m.channel_id == channel and not m.deleted and m.ephemeral == ephemeral
        ]

    def private_to(self, user: str) -> list[str]:
        """The ephemeral answers to interactions `user` made, as shown."""
        mine = {i.id for i in self.interactions.values() if i.user == user}
        return [
            m.all_text()
            for m in self.messages.values()
            if m.ephemeral and not m.deleted and m.interaction_id in mine
        ]

    async def wait_for(self, predicate: Callable[[], object], timeout: float = 20.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError("the fake Discord never saw what the test waited for")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.2))

    def connected(self, count: int = 1) -> bool:
        return len([s for s in self.sessions if not s.closed]) >= count

    # --- REST ------------------------------------------------------------------------------

    async def rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["path"]
        body: Any = None
        files: list[tuple[str, bytes]] = []
        if request.content_type == "multipart/form-data":  # files, as Discord takes them
            form = await request.post()
            body = json.loads(str(form["payload_json"]))
            for name, part in form.items():
                if name.startswith("files[") and isinstance(part, web.FileField):
                    files.append((part.filename, part.file.read()))
        elif request.can_read_body:
            raw = await request.read()
            body = json.loads(raw) if raw else None
        auth = request.headers.get("Authorization", "")
        call = Call(request.method, path, body, auth, files=files)
        self.calls.append(call)
        for fault in self.faults:
            if (fault[0], fault[1]) == (call.method, call.route):
                self.faults.remove(fault)
                return self._fault(call, fault[2], fault[3])
        needs_token = not path.startswith(("/interactions/", "/webhooks/"))
        if needs_token and auth != f"Bot {BOT_TOKEN}":
            status, answer = 401, {"message": "401: Unauthorized", "code": 0}
        else:
            self._upload = files
            try:
                status, answer = self._route(request.method, path, body, request.query)
            except KeyError as exc:
                status, answer = 404, {"message": f"Unknown {exc}", "code": 10008}
            finally:
                self._upload = []
        call.status, call.answer = status, answer
        self._changed.set()
        if status == 204:
            return web.Response(status=204)
        # exactly application/json: with a charset discord.py reads the body as text
        return web.Response(
            status=status, body=json.dumps(answer).encode(), content_type="application/json"
        )

    def fail_next(
        self, method: str, route: str, status: int = 429, retry_after: float = 0.2
    ) -> None:
        """The next call to `route` fails: 429 as Discord's edge answers it (`Via`, a JSON
        `retry_after`), or a 5xx."""
        self.faults.append((method, route, status, retry_after))

    def _fault(self, call: Call, status: int, retry_after: float) -> web.Response:
        if status == 429:
            answer: dict[str, Any] = {
                "message": "You are being rate limited.",
                "retry_after": retry_after,
                "global": False,
            }
            headers = {
                "Via": "1.1 google",
                "Retry-After": str(max(1, round(retry_after))),
                "X-RateLimit-Limit": "5",
                "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset-After": str(retry_after),
                "X-RateLimit-Bucket": "fake-bucket",
                "X-RateLimit-Scope": "user",
            }
        else:
            answer, headers = {"message": "Discord is having trouble", "code": 0}, {}
        call.status, call.answer = status, answer
        self._changed.set()
        return web.Response(
            status=status,
            body=json.dumps(answer).encode(),
            content_type="application/json",
            headers=headers,
        )

    def _route(self, method: str, path: str, body: Any, query: Any) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if path == "/users/@me" and method == "GET":
            return 200, _user(BOT_USER, "flybot", bot=True)
        if path == "/oauth2/applications/@me" and method == "GET":
            return 200, {
                "id": APP_ID,
                "name": "flybot",
                "description": "",
                "icon": None,
                "bot_public": False,
                "bot_require_code_grant": False,
                "owner": _user("1000000000000000009", "owner"),
                "verify_key": "00" * 32,
                "flags": 0,
            }
        if parts[0] == "applications" and method == "PUT" and parts[-1] == "commands":
            where = f"guild:{parts[3]}" if "guilds" in parts else "global"
            error = command_tree_error(body)
            if error:
                return 400, {"message": "Invalid Form Body", "code": 50035, "errors": error}
            stored = [
                {**c, "id": snowflake(), "application_id": APP_ID, "version": snowflake()}
                for c in body
            ]
            self.commands[where] = stored
            return 200, stored
        if parts[0] == "interactions" and parts[-1] == "callback":
            return self._callback(parts[1], parts[2], body)
        if parts[0] == "webhooks":
            return self._webhook(method, parts[2], parts[3:], body)
        if parts[0] == "channels" and len(parts) >= 3 and parts[2] == "messages":
            return self._channel_message(method, parts[1], parts[3:], body)
        if path == "/users/@me/channels" and method == "POST":
            dm = f"dm-{body['recipient_id']}"
            return 200, {"id": dm, "type": 1, "recipients": [_user(body["recipient_id"], "u")]}
        return 404, {"message": f"404: Not Found ({method} {path})", "code": 0}

    def _message_error(self, body: dict[str, Any]) -> str | None:
        from tests.adapters.limits_check import check_discord

        try:
            check_discord(sent(body))
        except AssertionError as exc:
            return f"message over Discord's limits: {exc}"
        return None

    def _new_message(self, channel: str, body: dict[str, Any], **extra: Any) -> Message:
        message = Message(
            id=snowflake(),
            channel_id=channel,
            embeds=list(body.get("embeds") or []),
            components=list(body.get("components") or []),
            content=body.get("content") or "",
            flags=int(body.get("flags") or 0),
            files=list(self._upload),
            **extra,
        )
        self.messages[message.id] = message
        return message

    def _edit(self, message: Message, body: dict[str, Any]) -> None:
        if "embeds" in body:
            message.embeds = list(body["embeds"] or [])
        if "components" in body:
            message.components = list(body["components"] or [])
        if "content" in body:
            message.content = body["content"] or ""
        if self._upload:
            message.files = list(self._upload)
        message.loading = False
        message.edits += 1

    def _callback(self, interaction_id: str, token: str, body: Any) -> tuple[int, Any]:
        interaction = self.interactions.get(interaction_id)
        if interaction is None or interaction.token != token:
            return 404, {"message": "Unknown interaction", "code": 10062}
        if interaction.answers and not self.lenient_acks:
            return 400, {"message": "Interaction has already been acknowledged.", "code": 40060}
        kind = int(body["type"])
        data = body.get("data") or {}
        if kind in (4, 7) and (error := self._message_error(data)):
            return 400, {"message": error, "code": 50035}
        interaction.answers.append(body)
        interaction.acked_at = interaction.acked_at or time.monotonic()
        resource: dict[str, Any] = {"type": kind}
        answer: dict[str, Any] = {
            "id": interaction.id,
            "type": interaction.kind,
            "activity_instance_id": None,
            "response_message_loading": kind == 5,
            "response_message_ephemeral": bool(int(data.get("flags") or 0) & EPHEMERAL),
        }
        if kind in (4, 5):
            message = self._new_message(
                interaction.channel_id,
                data if kind == 4 else {"flags": data.get("flags")},
                interaction_id=interaction.id,
                loading=kind == 5,
            )
            interaction.original = message.id
            answer["response_message_id"] = message.id
            resource["message"] = message.payload()
        elif kind == 7:
            target = self.messages[interaction.data.get("message_id", "")]
            self._edit(target, data)
            resource["message"] = target.payload()
        return 200, {"interaction": answer, "resource": resource}

    def _by_token(self, token: str) -> Interaction:
        for interaction in self.interactions.values():
            if interaction.token == token:
                return interaction
        raise KeyError("webhook")

    def _webhook(self, method: str, token: str, rest: list[str], body: Any) -> tuple[int, Any]:
        interaction = self._by_token(token)
        if not interaction.answers:
            return 404, {"message": "Unknown Webhook", "code": 10015}
        if rest and rest[0] == "messages":
            mid = interaction.original if rest[1] == "@original" else rest[1]
            message = self.messages[mid or ""]
            if message.deleted:
                return 404, {"message": "Unknown Message", "code": 10008}
            if method == "GET":
                return 200, message.payload()
            if method == "DELETE":
                message.deleted = True
                return 204, None
            if error := self._message_error(body):
                return 400, {"message": error, "code": 50035}
            self._edit(message, body)
            return 200, message.payload()
        if error := self._message_error(body):
            return 400, {"message": error, "code": 50035}
        original = self.messages.get(interaction.original or "")
        if original is not None and original.loading and not original.deleted:
            # the first follow-up after a deferral replaces "thinking…", keeping its flags
            self._edit(original, body)
            return 200, original.payload()
        message = self._new_message(interaction.channel_id, body, interaction_id=interaction.id)
        return 200, message.payload()

    def _channel_message(
        self, method: str, channel: str, rest: list[str], body: Any
    ) -> tuple[int, Any]:
        if not rest and method == "POST":
            if error := self._message_error(body):
                return 400, {"message": error, "code": 50035}
            return 200, self._new_message(channel, body).payload()
        message = self.messages[rest[0]]
        if message.channel_id != channel:
            raise KeyError("message")
        if len(rest) == 2 and rest[1] == "threads" and method == "POST":
            if message.id in self.threads:
                return 400, {
                    "message": "A thread has already been created for this message",
                    "code": 160004,
                }
            if not 1 <= len(body.get("name", "")) <= 100:
                return 400, {"message": "thread name length", "code": 50035}
            self.threads[message.id] = {
                "id": message.id,
                "type": 11,
                "guild_id": GUILD,
                "parent_id": channel,
                "name": body["name"],
                "owner_id": BOT_USER,
                "thread_metadata": {
                    "archived": False,
                    "auto_archive_duration": body.get("auto_archive_duration", 1440),
                    "archive_timestamp": _now(),
                    "locked": False,
                },
                "message_count": 0,
                "member_count": 1,
                "rate_limit_per_user": 0,
                "flags": 0,
            }
            return 201, self.threads[message.id]
        if method == "PATCH" and len(rest) == 1:
            if message.author != BOT_USER:
                return 403, {"message": "Cannot edit a message authored by another user"}
            if error := self._message_error({"embeds": message.embeds, **body}):
                return 400, {"message": error, "code": 50035}
            self._edit(message, body)
            return 200, message.payload()
        return 404, {"message": "404: Not Found", "code": 0}

    # --- the gateway -------------------------------------------------------------------------

    async def gateway(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        await ws.send_json({"op": 10, "d": {"heartbeat_interval": 41250}, "s": None, "t": None})
        async for frame in ws:
            if frame.type != WSMsgType.TEXT:
                continue
            message = json.loads(frame.data)
            op = message.get("op")
            if op == 1:
                await ws.send_json({"op": 11, "d": None, "s": None, "t": None})
            elif op == 2:
                identify = message["d"]
                self.identifies.append(identify)
                if identify.get("token") != BOT_TOKEN:
                    await ws.close(code=4004, message=b"Authentication failed.")
                    break
                if int(identify.get("intents", 0)) & PRIVILEGED_INTENTS:
                    await ws.close(code=4014, message=b"Disallowed intent(s).")
                    break
                await self._send(ws, "READY", self._ready())
                await self._send(ws, "GUILD_CREATE", self._guild())
                self.sessions.append(ws)
                self._changed.set()
        if ws in self.sessions:
            self.sessions.remove(ws)
        return ws

    async def _send(self, ws: web.WebSocketResponse, event: str, data: dict[str, Any]) -> None:
        await ws.send_json({"op": 0, "t": event, "s": next(self._seq), "d": data})

    def _ready(self) -> dict[str, Any]:
        return {
            "v": 10,
            "user": _user(BOT_USER, "flybot", bot=True),
            "guilds": [{"id": GUILD, "unavailable": True}],
            "session_id": snowflake(),
            "resume_gateway_url": self.gateway_url,
            "application": {"id": APP_ID, "flags": 0},
        }

    def _guild(self) -> dict[str, Any]:
        return {
            "id": GUILD,
            "name": "flyers",
            "icon": None,
            "owner_id": "1000000000000000009",
            "roles": [
                {
                    "id": GUILD,
                    "name": "@everyone",
                    "permissions": "0",
                    "position": 0,
                    "color": 0,
                    "hoist": False,
                    "managed": False,
                    "mentionable": False,
                    "flags": 0,
                }
            ],
            "emojis": [],
            "features": [],
            "member_count": len(self.users) + 1,
            "members": [],
            "channels": [
                {
                    "id": CHANNEL,
                    "type": 0,
                    "guild_id": GUILD,
                    "name": "deploys",
                    "position": 0,
                    "permission_overwrites": [],
                    "nsfw": False,
                    "parent_id": None,
                }
            ],
            "threads": [],
            "stickers": [],
            "large": False,
            "unavailable": False,
            "joined_at": _now(),
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "system_channel_flags": 0,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "nsfw_level": 0,
        }

    async def dispatch_interaction(
        self, interaction: Interaction, extra: dict[str, Any] | None = None, only: int | None = None
    ) -> None:
        """INTERACTION_CREATE to every session (two instances both hear it, as on Discord),
        or to session number `only`."""
        self.interactions.setdefault(interaction.id, interaction)
        channel = interaction.channel_id
        thread = self.threads.get(channel)
        payload = {
            "id": interaction.id,
            "application_id": APP_ID,
            "type": interaction.kind,
            "data": interaction.data,
            "guild_id": GUILD,
            "channel_id": channel,
            "channel": thread
            or {"id": channel, "type": 0, "guild_id": GUILD, "name": "deploys", "position": 0},
            "member": {
                "user": _user(interaction.user, self.users.get(interaction.user, "someone")),
                "roles": [],
                "joined_at": _now(),
                "deaf": False,
                "mute": False,
                "flags": 0,
                "permissions": "2147483647",
            },
            "token": interaction.token,
            "version": 1,
            "app_permissions": "2147483647",
            "locale": "en-US",
            "guild_locale": "en-US",
            "entitlements": [],
            "authorizing_integration_owners": {"0": GUILD},
            "context": 0,
            "attachment_size_limit": 8 * 1024 * 1024,
            **(extra or {}),
        }
        live = [s for s in self.sessions if not s.closed]
        targets = live if only is None else [live[only]]
        for ws in targets:
            await self._send(ws, "INTERACTION_CREATE", payload)

    def _interaction(self, kind: int, user: str, channel: str, data: dict[str, Any]) -> Interaction:
        return Interaction(snowflake(), f"tok-{snowflake()}", kind, user, channel, data)

    def slash_of(
        self, user: str, *path: str, channel: str = CHANNEL, **options: Any
    ) -> Interaction:
        return self._interaction(2, user, channel, slash_data(path, options))

    async def slash(
        self, user: str, *path: str, channel: str = CHANNEL, **options: Any
    ) -> Interaction:
        """`/fly <path…> option:value…` typed by `user` (options named as in the tree)."""
        interaction = self.slash_of(user, *path, channel=channel, **options)
        await self.dispatch_interaction(interaction)
        return interaction

    async def autocomplete(
        self, user: str, path: tuple[str, ...], focused: str, options: dict[str, Any]
    ) -> Interaction:
        interaction = self._interaction(4, user, CHANNEL, slash_data(path, options, focused))
        await self.dispatch_interaction(interaction)
        return interaction

    def click_of(self, message: Message, custom_id: str, user: str) -> Interaction:
        data = {"custom_id": custom_id, "component_type": 2, "message_id": message.id}
        return self._interaction(3, user, message.channel_id, data)

    async def click(self, message: Message, custom_id: str, user: str) -> Interaction:
        interaction = self.click_of(message, custom_id, user)
        await self.dispatch_interaction(interaction, {"message": message.payload()})
        return interaction

    async def redeliver(self, interaction: Interaction) -> None:
        extra = {}
        if interaction.kind == 3:
            extra["message"] = self.messages[interaction.data["message_id"]].payload()
        await self.dispatch_interaction(interaction, extra)

    def modal_of(self, interaction: Interaction) -> dict[str, Any] | None:
        for answer in interaction.answers:
            if answer["type"] == 9:
                return dict(answer["data"])
        return None

    async def submit(
        self, modal: dict[str, Any], user: str, values: dict[str, str], channel: str = CHANNEL
    ) -> Interaction:
        rows = []
        for row in modal["components"]:
            for item in row.get("components", []) or [row.get("component", {})]:
                label = item.get("label") or row.get("label", "")
                rows.append(
                    {
                        "type": 1,
                        "components": [
                            {"type": 4, "custom_id": item["custom_id"], "value": values[label]}
                        ],
                    }
                )
        data = {"custom_id": modal["custom_id"], "components": rows}
        interaction = self._interaction(5, user, channel, data)
        await self.dispatch_interaction(interaction)
        return interaction

    async def close_sessions(self) -> None:
        for ws in list(self.sessions):
            await ws.close()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_get("/gateway", self.gateway)
        app.router.add_route("*", "/api/v10/{path:.*}", self.rest)
        return app


def slash_data(
    path: tuple[str, ...], options: dict[str, Any], focused: str | None = None
) -> dict[str, Any]:
    """The `data` of `/fly <path…>`: a subcommand, or a group's subcommand, with options."""
    leaf: list[dict[str, Any]] = []
    for name, value in options.items():
        kind = 5 if isinstance(value, bool) else 4 if isinstance(value, int) else 3
        option: dict[str, Any] = {"name": name, "type": kind, "value": value}
        if name == focused:
            option["focused"] = True
        leaf.append(option)
    node: dict[str, Any] = {"type": 1, "name": path[-1], "options": leaf}
    if len(path) == 2:
        node = {"type": 2, "name": path[0], "options": [node]}
    return {"id": snowflake(), "name": "fly", "type": 1, "options": [node]}


def sent(body: dict[str, Any]) -> dict[str, Any]:
    """A message body as Discord reads it: fields given as null are absent."""
    return {"embeds": [], **{k: v for k, v in (body or {}).items() if v is not None}}


_NAME = re.compile(r"^[-_a-z0-9]{1,32}$")


def command_tree_error(commands: Any) -> str | None:
    """What Discord refuses in a bulk command upsert (its validation rules), or None."""
    if not isinstance(commands, list) or len(commands) > 100:
        return "a list of at most 100 commands"
    for command in commands:
        error = _option_error(command, depth=0)
        if error:
            return f"{command.get('name')}: {error}"
    return None


def _option_error(node: dict[str, Any], depth: int) -> str | None:
    name = node.get("name", "")
    if not _NAME.match(name):
        return f"name {name!r} does not match ^[-_a-z0-9]{{1,32}}$"
    if not 1 <= len(node.get("description", "")) <= 100:
        return f"{name}: description of {len(node.get('description', ''))} characters"
    options = node.get("options") or []
    if len(options) > 25:
        return f"{name}: {len(options)} options (at most 25)"
    names = [o.get("name") for o in options]
    if len(set(names)) != len(names):
        return f"{name}: option names repeat"
    seen_optional = False
    kinds = {o.get("type") for o in options}
    if kinds & {1, 2} and kinds - {1, 2}:
        return f"{name}: subcommands mixed with options"
    if depth >= 2 and kinds & {1, 2}:
        return f"{name}: subcommands nested too deep"
    if depth >= 1 and node.get("type") == 2 and kinds - {1}:
        return f"{name}: a group holds only subcommands"
    for option in options:
        if option.get("type") in (1, 2):
            error = _option_error(option, depth + 1)
            if error:
                return error
            continue
        if not _NAME.match(option.get("name", "")):
            return f"option name {option.get('name')!r}"
        if not 1 <= len(option.get("description", "")) <= 100:
            return f"option {option['name']}: description length"
        if option.get("required"):
            if seen_optional:
                return f"option {option['name']}: required after optional"
        else:
            seen_optional = True
        choices = option.get("choices") or []
        if len(choices) > 25 or (choices and option.get("autocomplete")):
            return f"option {option['name']}: choices"
        if option.get("autocomplete") and option.get("type") not in (3, 4, 10):
            return f"option {option['name']}: autocomplete on a type without it"
    total = _chars(node)
    if depth == 0 and total > 8000:
        return f"{total} characters across the command (at most 8000)"
    return None


def _chars(node: dict[str, Any]) -> int:
    count = len(node.get("name", "")) + len(node.get("description", ""))
    for option in node.get("options") or []:
        count += _chars(option)
        for choice in option.get("choices") or []:
            count += len(choice["name"]) + len(str(choice["value"]))
    return count


@contextlib.asynccontextmanager
async def running_fake_discord(host: str = "127.0.0.1") -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord()
    runner = web.AppRunner(fake.app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.base_url = f"http://{host}:{port}"
    try:
        yield fake
    finally:
        await fake.close_sessions()
        await runner.cleanup()
