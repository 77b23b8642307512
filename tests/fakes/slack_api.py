"""A fake Slack on 127.0.0.1 for any test: the Web API (recording every call and answering as
Slack does, limits and token checks included), response_url endpoints, and a Socket Mode
websocket; plus `SlackSender`, which signs requests to a bot exactly as Slack does.

    async with running_fake_slack() as slack:
        client = AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)
        ...
        slack.calls              # every call, in order: Call(method, params, token)
        slack.channel("C1")      # the channel's messages as they are now (after chat.update)

What it keeps: messages per channel with their thread_ts, edits applied in place, ephemeral
messages, opened modals (trigger ids are single use, as Slack's), App Home views. Faults:
`fail_next(method, status=429, retry_after=1)` answers like Slack's rate limiter, 500/503 like
its outages.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

BOT_TOKEN = "xoxb-fake-bot-token"
APP_TOKEN = "xapp-fake-app-token"
SIGNING_SECRET = "fake-signing-secret-0123456789abcdef"
TEAM = "T0FLY"
BOT_USER = "UFLYBOT"
BOT_ID = "BFLYBOT"

# Slack's documented Block Kit limits; the fake refuses what Slack refuses.
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_MESSAGE_TEXT = 40_000
MAX_BUTTON_LABEL = 75  # Slack documents 75 for a button's text
MAX_HEADER = 150


@dataclass
class Call:
    method: str  # a Web API method, or "response_url"
    params: dict[str, Any]
    token: str = ""
    status: int = 200
    answer: dict[str, Any] = field(default_factory=dict)

    @property
    def payload(self) -> dict[str, Any]:
        """The message body as sent (text + blocks), for limit checks."""
        blocks = self.params.get("blocks") or []
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        return {"text": self.params.get("text", ""), "blocks": blocks}

    def dump(self) -> str:
        return json.dumps({"method": self.method, "params": self.params}, ensure_ascii=False)


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    user: str = BOT_USER
    thread_ts: str | None = None
    edits: int = 0

    @property
    def buttons(self) -> list[dict[str, Any]]:
        return [
            element
            for block in self.blocks
            if block.get("type") == "actions"
            for element in block.get("elements", [])
            if element.get("type") == "button"
        ]

    def all_text(self) -> str:
        """What a person sees: the blocks (the `text` is only the notification fallback)."""
        parts = [] if self.blocks else [self.text]
        for block in self.blocks:
            if "text" in block:
                parts.append(block["text"].get("text", ""))
            parts.extend(f.get("text", "") for f in block.get("fields", []))
            parts.extend(
                e.get("text", "") if isinstance(e.get("text"), str) else e["text"]["text"]
                for e in block.get("elements", [])
                if "text" in e
            )
        return "\n".join(parts)


@dataclass
class Fault:
    method: str
    status: int
    retry_after: int | None
    count: int


class FakeSlack:
    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.messages: dict[str, list[Message]] = {}
        self.ephemerals: list[dict[str, Any]] = []
        self.views: dict[str, dict[str, Any]] = {}  # opened modals by view id
        self.homes: dict[str, dict[str, Any]] = {}  # App Home view by user
        self.users: dict[str, str] = {}  # user id -> name, for users.info
        self.valid_bot_tokens = {BOT_TOKEN}
        self.valid_app_tokens = {APP_TOKEN}
        self.faults: list[Fault] = []
        self.gates: dict[str, asyncio.Event] = {}  # method -> answered once the event is set
        self.base_url = ""
        self._ts = itertools.count(1)
        self._ids = itertools.count(1)
        self._triggers: set[str] = set()
        self._used_triggers: set[str] = set()
        self._sockets: list[web.WebSocketResponse] = []
        self._acks: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.socket_connections = 0
        self.changed = asyncio.Event()
        # files_upload_v2: file id -> {"filename", "length", "data" (once uploaded),
        # "channel", "thread_ts", "title" (once completed)}
        self.files: dict[str, dict[str, Any]] = {}

    # --- what a test reads ---------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def channel(self, channel: str) -> list[Message]:
        return list(self.messages.get(channel, []))

    def message(self, channel: str, ts: str) -> Message:
        return next(m for m in self.messages.get(channel, []) if m.ts == ts)

    def thread(self, channel: str, ts: str) -> list[Message]:
        return [m for m in self.messages.get(channel, []) if m.thread_ts == ts and m.ts != ts]

    def private_to(self, user: str) -> list[str]:
        """Ephemeral messages shown to `user`, via chat.postEphemeral or a response_url."""
        return [e["text_all"] for e in self.ephemerals if e["user"] in (user, None)]

    def trigger(self) -> str:
        """A trigger id as Slack puts in a slash command or a click: good for one views.open."""
        trigger = f"{next(self._ids)}.{int(time.time())}.fake{next(self._ids):04x}"
        self._triggers.add(trigger)
        return trigger

    def response_url(self, user: str) -> str:
        return f"{self.base_url}/response/{user}/{next(self._ids)}"

    async def wait_for(self, predicate: Any, timeout: float = 20.0) -> None:
        """Until `predicate()` is true, re-checked at every call the fake receives."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise AssertionError(f"timed out waiting; calls: {[c.method for c in self.calls]}")
            self.changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(left, 0.5))

    def gate(self, method: str) -> asyncio.Event:
        """Hold every call to `method` until the returned event is set."""
        self.gates[method] = asyncio.Event()
        return self.gates[method]

    def fail_next(
        self, method: str, status: int = 429, retry_after: int | None = 1, count: int = 1
    ) -> None:
        self.faults.append(Fault(method, status, retry_after, count))

    # --- the Web API ---------------------------------------------------------------------

    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        raw = await request.read()
        if not raw:
            return params
        if request.content_type == "application/json":
            params.update(json.loads(raw))
        else:
            params.update(dict(urllib.parse.parse_qsl(raw.decode())))
        for key in ("blocks", "view", "attachments"):
            if isinstance(params.get(key), str):
                with contextlib.suppress(ValueError):
                    params[key] = json.loads(params[key])
        return params

    async def api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await self._params(request)
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ").strip() or str(params.pop("token", ""))
        params.pop("token", None)
        call = Call(method, params, token)
        self.calls.append(call)
        self.changed.set()
        if method in self.gates:
            await self.gates[method].wait()
        try:
            for fault in self.faults:
                if fault.method in (method, "*") and fault.count > 0:
                    fault.count -= 1
                    call.status = fault.status
                    headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after else {}
                    if fault.status == 429:
                        return web.json_response(
                            {"ok": False, "error": "ratelimited"}, status=429, headers=headers
                        )
                    return web.Response(status=fault.status, text="upstream failure")
            call.answer = self._answer(method, params, token)
            return web.json_response(call.answer)
        finally:
            self.changed.set()

    def _answer(self, method: str, params: dict[str, Any], token: str) -> dict[str, Any]:
        if method == "apps.connections.open":
            if token not in self.valid_app_tokens:
                return {"ok": False, "error": "invalid_auth"}
            ws = self.base_url.replace("http://", "ws://") + "/socket"
            return {"ok": True, "url": ws}
        if token not in self.valid_bot_tokens:
            return {"ok": False, "error": "not_authed" if not token else "invalid_auth"}
        handler = getattr(self, "_" + method.replace(".", "_"), None)
        if handler is None:
            return {"ok": False, "error": "unknown_method"}
        answer: dict[str, Any] = handler(params)
        return answer

    def _auth_test(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "ok": True,
            "url": "https://fake.slack.com/",
            "team": "Fake Team",
            "user": "flybot",
            "team_id": TEAM,
            "user_id": BOT_USER,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _message_error(self, params: dict[str, Any]) -> str | None:
        blocks = params.get("blocks") or []
        text = params.get("text") or ""
        if not blocks and not text:
            return "no_text"
        if len(text) > MAX_MESSAGE_TEXT:
            return "msg_too_long"
        return _blocks_error(blocks)

    def _new_ts(self) -> str:
        n = next(self._ts)
        return f"{1_700_000_000 + n}.{n:06d}"

    def _chat_postMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        error = self._message_error(params)
        if error:
            return {"ok": False, "error": error}
        channel = params.get("channel") or ""
        if not channel:
            return {"ok": False, "error": "channel_not_found"}
        thread_ts = params.get("thread_ts") or None
        if thread_ts and not any(m.ts == thread_ts for m in self.messages.get(channel, [])):
            return {"ok": False, "error": "thread_not_found"}
        message = Message(
            channel,
            self._new_ts(),
            params.get("text", ""),
            params.get("blocks") or [],
            thread_ts=thread_ts,
        )
        self.messages.setdefault(channel, []).append(message)
        if thread_ts is None:
            message.thread_ts = None
        return {
            "ok": True,
            "channel": channel,
            "ts": message.ts,
            "message": {"text": message.text, "ts": message.ts, "bot_id": BOT_ID},
        }

    def _files_getUploadURLExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        filename, length = params.get("filename"), params.get("length")
        if not filename or not str(length or "").isdigit():
            return {"ok": False, "error": "invalid_arguments"}
        file_id = f"F{next(self._ids):08d}"
        self.files[file_id] = {"filename": filename, "length": int(str(length))}
        return {"ok": True, "upload_url": f"{self.base_url}/upload/{file_id}", "file_id": file_id}

    def _files_completeUploadExternal(self, params: dict[str, Any]) -> dict[str, Any]:
        files = params.get("files")
        if isinstance(files, str):
            files = json.loads(files)
        channel = params.get("channel_id") or ""
        done = []
        for item in files or []:
            found = self.files.get(str(item.get("id")))
            if found is None or "data" not in found:
                return {"ok": False, "error": "file_not_found"}
            if channel not in self.messages:
                return {"ok": False, "error": "channel_not_found"}
            found.update(
                channel=channel, thread_ts=params.get("thread_ts"), title=item.get("title")
            )
            done.append({"id": item["id"], "title": item.get("title"), "name": found["filename"]})
        return {"ok": True, "files": done}

    async def upload(self, request: web.Request) -> web.Response:
        """The upload URL files.getUploadURLExternal hands out: the file's bytes."""
        found = self.files.get(request.match_info["file_id"])
        if found is None:
            return web.Response(status=404, text="no such upload")
        data = await request.read()  # slack_sdk posts the raw bytes
        found["data"] = data
        self.changed.set()
        return web.Response(status=200, text=f"OK - {len(data)}")

    def _chat_update(self, params: dict[str, Any]) -> dict[str, Any]:
        error = self._message_error(params)
        if error:
            return {"ok": False, "error": error}
        channel, ts = params.get("channel", ""), params.get("ts", "")
        found = next((m for m in self.messages.get(channel, []) if m.ts == ts), None)
        if found is None:
            return {"ok": False, "error": "message_not_found"}
        found.text = params.get("text", found.text)
        found.blocks = params.get("blocks") or []
        found.edits += 1
        return {"ok": True, "channel": channel, "ts": ts, "text": found.text}

    def _chat_postEphemeral(self, params: dict[str, Any]) -> dict[str, Any]:
        error = self._message_error(params)
        if error:
            return {"ok": False, "error": error}
        if not params.get("user"):
            return {"ok": False, "error": "user_not_found"}
        self._ephemeral(params.get("user"), params)
        return {"ok": True, "message_ts": self._new_ts()}

    def _ephemeral(self, user: str | None, params: dict[str, Any]) -> None:
        message = Message("", "", params.get("text", ""), params.get("blocks") or [])
        self.ephemerals.append({"user": user, "params": params, "text_all": message.all_text()})

    def _views_open(self, params: dict[str, Any]) -> dict[str, Any]:
        trigger = params.get("trigger_id", "")
        if trigger in self._used_triggers:
            return {"ok": False, "error": "expired_trigger_id"}
        if trigger not in self._triggers:
            return {"ok": False, "error": "invalid_trigger_id"}
        self._triggers.discard(trigger)
        self._used_triggers.add(trigger)
        view = params.get("view") or {}
        if len(view.get("blocks", [])) > 100 or len(view.get("title", {}).get("text", "")) > 24:
            return {"ok": False, "error": "invalid_arguments"}
        view_id = f"V{next(self._ids):08d}"
        stored = {**view, "id": view_id, "team_id": TEAM, "hash": f"h{view_id}"}
        self.views[view_id] = stored
        return {"ok": True, "view": stored}

    def _views_publish(self, params: dict[str, Any]) -> dict[str, Any]:
        view = params.get("view") or {}
        if len(view.get("blocks", [])) > 100:
            return {"ok": False, "error": "invalid_arguments"}
        error = _blocks_error(view.get("blocks", []), max_blocks=100)
        if error:
            return {"ok": False, "error": error}
        self.homes[params.get("user_id", "")] = view
        return {"ok": True, "view": {**view, "id": f"VH{next(self._ids)}"}}

    def _users_info(self, params: dict[str, Any]) -> dict[str, Any]:
        user = params.get("user", "")
        name = self.users.get(user)
        if name is None:
            return {"ok": False, "error": "user_not_found"}
        return {
            "ok": True,
            "user": {
                "id": user,
                "name": name,
                "real_name": name,
                "profile": {"display_name": name},
            },
        }

    # --- response_url ----------------------------------------------------------------------

    async def respond(self, request: web.Request) -> web.Response:
        user = request.match_info["user"]
        params = await self._params(request)
        call = Call("response_url", params, "", answer={"ok": True})
        self.calls.append(call)
        try:
            for fault in self.faults:
                if fault.method == "response_url" and fault.count > 0:
                    fault.count -= 1
                    call.status = fault.status
                    return web.Response(status=fault.status, text="upstream failure")
            error = self._message_error(params)
            if error:
                call.answer = {"ok": False, "error": error}
                return web.json_response(call.answer, status=400)
            if params.get("response_type") == "in_channel":
                self.messages.setdefault("(response_url)", []).append(
                    Message(
                        "(response_url)",
                        self._new_ts(),
                        params.get("text", ""),
                        params.get("blocks") or [],
                    )
                )
            else:
                self._ephemeral(user, params)
            return web.json_response({"ok": True})
        finally:
            self.changed.set()

    # --- Socket Mode -----------------------------------------------------------------------

    async def socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        self.socket_connections += 1
        self.changed.set()
        await ws.send_json({"type": "hello", "num_connections": 1, "debug_info": {}})
        try:
            async for frame in ws:
                if frame.type != aiohttp.WSMsgType.TEXT:
                    continue
                ack = json.loads(frame.data)
                waiter = self._acks.pop(ack.get("envelope_id", ""), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(ack)
        finally:
            self._sockets.remove(ws)
            self.changed.set()
        return ws

    @property
    def socket_connected(self) -> bool:
        return bool(self._sockets)

    async def deliver(
        self,
        kind: str,
        payload: dict[str, Any],
        retry_attempt: int = 0,
        timeout: float = 10.0,
    ) -> dict[str, Any]:
        """Send an envelope over Socket Mode; the app's ack (`{"envelope_id", "payload"?}`)."""
        if not self._sockets:
            raise AssertionError("no Socket Mode connection")
        envelope_id = f"env-{next(self._ids)}"
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._acks[envelope_id] = waiter
        envelope = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": kind != "events_api",
            "retry_attempt": retry_attempt,
            "retry_reason": "timeout" if retry_attempt else "",
        }
        await self._sockets[-1].send_json(envelope)
        return await asyncio.wait_for(waiter, timeout)

    async def close_sockets(self) -> None:
        for ws in list(self._sockets):
            await ws.close()

    # --- the server --------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/{method}", self.api)
        app.router.add_get("/api/{method}", self.api)
        app.router.add_post("/response/{user}/{n}", self.respond)
        app.router.add_post("/upload/{file_id}", self.upload)
        app.router.add_get("/socket", self.socket)
        return app

    # --- building what a view submission carries, from the modal flybot opened --------------

    def submission(
        self, view_id: str, user: str, values: dict[str, str], name: str = ""
    ) -> dict[str, Any]:
        view = self.views[view_id]
        state: dict[str, dict[str, Any]] = {}
        for block in view.get("blocks", []):
            if block.get("type") != "input":
                continue
            element = block["element"]
            label = block["label"]["text"]
            state[block["block_id"]] = {
                element["action_id"]: {"type": element["type"], "value": values.get(label)}
            }
        return {
            "type": "view_submission",
            "team": {"id": TEAM, "domain": "fake"},
            "user": {"id": user, "username": name or user, "name": name or user, "team_id": TEAM},
            "api_app_id": "AFLYBOT",
            "token": "legacy",
            "trigger_id": self.trigger(),
            "view": {**view, "state": {"values": state}},
            "response_urls": [],
            "is_enterprise_install": False,
        }

    def closing(self, view_id: str, user: str) -> dict[str, Any]:
        return {
            "type": "view_closed",
            "team": {"id": TEAM, "domain": "fake"},
            "user": {"id": user, "username": user, "name": user, "team_id": TEAM},
            "api_app_id": "AFLYBOT",
            "token": "legacy",
            "view": self.views[view_id],
            "is_cleared": False,
            "is_enterprise_install": False,
        }


def _blocks_error(blocks: list[dict[str, Any]], max_blocks: int = MAX_BLOCKS) -> str | None:
    if len(blocks) > max_blocks:
        return "invalid_blocks"
    for block in blocks:
        kind = block.get("type")
        if kind == "section":
            text = block.get("text", {}).get("text", "")
            if "text" in block and not 1 <= len(text) <= MAX_SECTION_TEXT:
                return "invalid_blocks"
            if len(block.get("fields", [])) > 10:
                return "invalid_blocks"
            if any(len(f.get("text", "")) > 2000 for f in block.get("fields", [])):
                return "invalid_blocks"
        elif kind == "header":
            if len(block.get("text", {}).get("text", "")) > MAX_HEADER:
                return "invalid_blocks"
        elif kind == "actions":
            for element in block.get("elements", []):
                if len(element.get("text", {}).get("text", "")) > MAX_BUTTON_LABEL:
                    return "invalid_blocks"
        elif kind == "context" and len(block.get("elements", [])) > 10:
            return "invalid_blocks"
    return None


@contextlib.asynccontextmanager
async def running_fake_slack(host: str = "127.0.0.1") -> AsyncIterator[FakeSlack]:
    fake = FakeSlack()
    runner = web.AppRunner(fake.app(), access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = int(runner.addresses[0][1])
    fake.base_url = f"http://{host}:{port}"
    try:
        yield fake
    finally:
        await fake.close_sockets()
        await runner.cleanup()


# --- what Slack sends to a bot ---------------------------------------------------------------


def slash_command(
    fake: FakeSlack,
    text: str,
    user: str,
    name: str = "",
    channel: str = "C0DEPLOY",
    trigger_id: str | None = None,
) -> dict[str, str]:
    return {
        "token": "legacy",
        "team_id": TEAM,
        "team_domain": "fake",
        "channel_id": channel,
        "channel_name": "deploys",
        "user_id": user,
        "user_name": name or user,
        "command": "/fly",
        "text": text,
        "api_app_id": "AFLYBOT",
        "is_enterprise_install": "false",
        "response_url": fake.response_url(user),
        "trigger_id": trigger_id or fake.trigger(),
    }


def button_click(
    fake: FakeSlack, message: Message, action_id: str, user: str, name: str = ""
) -> dict[str, Any]:
    """A click on one of `message`'s buttons, as Slack reports it."""
    button = next(b for b in message.buttons if b["action_id"] == action_id)
    return {
        "type": "block_actions",
        "user": {"id": user, "username": name or user, "name": name or user, "team_id": TEAM},
        "api_app_id": "AFLYBOT",
        "token": "legacy",
        "container": {
            "type": "message",
            "message_ts": message.ts,
            "channel_id": message.channel,
            "is_ephemeral": False,
        },
        "trigger_id": fake.trigger(),
        "team": {"id": TEAM, "domain": "fake"},
        "enterprise": None,
        "is_enterprise_install": False,
        "channel": {"id": message.channel, "name": "deploys"},
        "message": {
            "type": "message",
            "ts": message.ts,
            "text": message.text,
            "blocks": message.blocks,
            "bot_id": BOT_ID,
            **({"thread_ts": message.thread_ts} if message.thread_ts else {}),
        },
        "state": {"values": {}},
        "response_url": fake.response_url(user),
        "actions": [
            {
                "action_id": button["action_id"],
                "block_id": "b",
                "text": button["text"],
                "value": button["value"],
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def home_click(fake: FakeSlack, user: str, action_id: str, value: str) -> dict[str, Any]:
    """A click on a button of `user`'s App Home tab, as Slack reports it (no channel)."""
    view = fake.homes[user]
    button = next(
        element
        for block in view["blocks"]
        if block.get("type") == "actions"
        for element in block["elements"]
        if element["action_id"] == action_id and element["value"] == value
    )
    return {
        "type": "block_actions",
        "user": {"id": user, "username": fake.users.get(user, user), "team_id": TEAM},
        "api_app_id": "AFLYBOT",
        "token": "legacy",
        "container": {"type": "view", "view_id": "VHOME"},
        "trigger_id": fake.trigger(),
        "team": {"id": TEAM, "domain": "fake"},
        "is_enterprise_install": False,
        "view": {**view, "id": "VHOME", "type": "home"},
        "actions": [
            {
                "action_id": button["action_id"],
                "block_id": "b",
                "text": button["text"],
                "value": button["value"],
                "type": "button",
                "action_ts": f"{time.time():.6f}",
            }
        ],
    }


def home_opened(user: str) -> dict[str, Any]:
    return {
        "type": "app_home_opened",
        "user": user,
        "channel": f"D{user}",
        "tab": "home",
        "event_ts": f"{time.time():.6f}",
    }


def home_text(view: dict[str, Any]) -> str:
    return Message("", "", "", view.get("blocks", [])).all_text()


_event_ids = itertools.count(1)


def event_callback(event: dict[str, Any], event_id: str | None = None) -> dict[str, Any]:
    return {
        "token": "legacy",
        "team_id": TEAM,
        "api_app_id": "AFLYBOT",
        "event": event,
        "type": "event_callback",
        "event_id": event_id or f"Ev{next(_event_ids):08d}",
        "event_time": int(time.time()),
        "authorizations": [
            {"team_id": TEAM, "user_id": BOT_USER, "is_bot": True, "is_enterprise_install": False}
        ],
    }


def thread_reply(channel: str, thread_ts: str, user: str, text: str) -> dict[str, Any]:
    ts = f"{time.time():.6f}"
    return {
        "type": "message",
        "channel": channel,
        "user": user,
        "text": text,
        "ts": ts,
        "thread_ts": thread_ts,
        "channel_type": "channel",
        "event_ts": ts,
    }


class SlackSender:
    """Posts to a bot's /slack/events, signed with Slack's algorithm (v0, HMAC-SHA256)."""

    def __init__(self, url: str, signing_secret: str = SIGNING_SECRET) -> None:
        self.url = url
        self.verifier = SignatureVerifier(signing_secret)
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> SlackSender:
        self.session = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.session is not None
        await self.session.close()

    def signed_headers(
        self, body: str, timestamp: int | None = None, content_type: str = ""
    ) -> dict[str, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        return {
            "Content-Type": content_type,
            "X-Slack-Request-Timestamp": ts,
            "X-Slack-Signature": self.verifier.generate_signature(timestamp=ts, body=body),
        }

    async def post(
        self,
        body: str,
        content_type: str,
        headers: dict[str, str] | None = None,
        retry: int = 0,
        timestamp: int | None = None,
    ) -> tuple[int, str]:
        assert self.session is not None
        sent = self.signed_headers(body, timestamp, content_type)
        if retry:
            sent["X-Slack-Retry-Num"] = str(retry)
            sent["X-Slack-Retry-Reason"] = "http_timeout"
        sent.update(headers or {})
        async with self.session.post(self.url, data=body.encode(), headers=sent) as response:
            return response.status, await response.text()

    async def command(self, form: dict[str, str], retry: int = 0) -> tuple[int, str]:
        return await self.post(
            urllib.parse.urlencode(form), "application/x-www-form-urlencoded", retry=retry
        )

    async def interactive(self, payload: dict[str, Any], retry: int = 0) -> tuple[int, str]:
        body = urllib.parse.urlencode({"payload": json.dumps(payload)})
        return await self.post(body, "application/x-www-form-urlencoded", retry=retry)

    async def event(self, envelope: dict[str, Any], retry: int = 0) -> tuple[int, str]:
        return await self.post(json.dumps(envelope), "application/json", retry=retry)
