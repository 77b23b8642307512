"""The Slack adapter: a slack-bolt `AsyncApp` whose listeners turn Slack deliveries into
Invocations for the one command pipeline, over HTTP (`handle_http`, mounted at
/slack/events by `flybot run`) or Socket Mode (`SLACK_APP_TOKEN`).

Every listener acknowledges first (Slack gives 3 s) and then hands the work to the process's
job runner, so the HTTP answer never waits for the database, Fly or Slack. Deliveries:

- `/fly <line>`: identity `slack:<team>:<user>`. A verb that declares secret input opens the
  modal at once, from the command's trigger_id, before anything slow.
- a button (`block_actions`): the line the registry declares for the button's action
  (`approve 12`), run as the person who clicked.
- a message in an approval thread that says `approve` / `reject [reason]` (also addressed
  to the bot: `@flybot approve`).
- the secrets modal submitted (the values travel beside the invocation) or closed (cancelled,
  an ephemeral note says so).
- `app_home_opened`: the Home tab (commands/home.py) published for that person.

Retries (X-Slack-Retry-Num, the same trigger twice, another instance) carry the same
delivery id, which the pipeline claims in the database: a retry never runs a command twice.

Stopping (`stop_intake`), nothing new runs, and nothing is dropped without a word. On a Fly
machine a delivery is first handed back to Fly's proxy (`fly-replay: elsewhere=true`), which
delivers it to another machine of the app; when there is none it comes back here, marked
`fly-replay-failed`. Slack retries neither a slash command nor an interaction, so a refusal
would lose them behind Slack's generic error: each is acknowledged with a private "flybot is
restarting, nothing was run" (a command's ack carries it; a click's goes to its
response_url; a modal keeps its values and shows it under the first field, to be sent
again). An event (a thread reply, the Home tab) gets 503: Slack retries events, a minute and
five minutes later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_bolt.logger.messages import warning_client_prioritized_and_token_skipped
from slack_sdk.errors import SlackApiError

from adapters.slack import home, modal
from adapters.slack.conversation import (
    PLATFORM,
    SLACK_HOOKS,
    SlackInteraction,
    SlackOutbox,
    origin,
    web_client,
)
from adapters.slack.redact import SCRUBBER, scrubbed_logger
from bot.runtime import Runtime
from bot.settings import DEFAULT_SLACK_API_URL, Settings
from bot.store.principals import IdentityKey
from commands.approvals import thread_reply_line
from commands.home import overview
from commands.port import RESTARTING, RESTARTING_FORM, Invocation, Reply
from commands.reply import markup

if TYPE_CHECKING:  # Socket Mode's client is imported only when SLACK_APP_TOKEN is set
    from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler

log = logging.getLogger(__name__)

Ack = Callable[..., Awaitable[None]]
THREAD_LOOKUPS = 6  # tries to find the request of a thread an approve/reject was typed in
THREAD_LOOKUP_PAUSE = 0.2  # seconds, times the attempt
# To Fly's proxy: deliver it to another machine; when there is none, back here within 1 s,
# so 2 of Slack's 3 s are left to answer it. One that was replayed already is answered here.
FLY_REPLAY = "elsewhere=true;timeout=1s;fallback=force_self"


class _IgnoredTokenNotice(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != warning_client_prioritized_and_token_skipped()


_TOKEN_NOTICE = _IgnoredTokenNotice()


def _socket_mode(worker: Worker, *args: Any, **kwargs: Any) -> AsyncSocketModeHandler:
    """bolt's Socket Mode handler, telling the worker while an envelope is being acked."""
    from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler

    class SocketMode(AsyncSocketModeHandler):
        async def handle(self, client: Any, req: Any) -> None:
            with worker.answering():
                await super().handle(client, req)

    return SocketMode(*args, **kwargs)


class SlackSetupError(Exception):
    """Slack refused the tokens, or a setting is missing: one line that says which."""


@dataclass(frozen=True)
class BotIdentity:
    team_id: str
    user_id: str
    bot_id: str


class Worker(Protocol):
    """Where the work after an acknowledgement runs: the runtime's job runner, or (in
    `flybot run`) a loop of its own, so no command's database or Fly call delays an ack."""

    def spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> object: ...

    def answering(self) -> AbstractContextManager[None]:
        """Marks one delivery being read and acknowledged."""
        ...


class _SameLoop:
    """The default worker: the runtime's jobs, on the serving loop."""

    def __init__(self, runtime: Runtime) -> None:
        self.jobs = runtime.services.jobs

    def spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> object:
        return self.jobs.spawn(coroutine, name)

    def answering(self) -> AbstractContextManager[None]:
        return contextlib.nullcontext()


class SlackAdapter:
    def __init__(self, runtime: Runtime, settings: Settings, worker: Worker | None = None) -> None:
        if not settings.slack_bot_token:
            raise SlackSetupError("SLACK_BOT_TOKEN is not set (xoxb-…, from OAuth & Permissions).")
        if not settings.slack_app_token and not settings.slack_signing_secret:
            raise SlackSetupError(
                "SLACK_SIGNING_SECRET is not set (Basic Information → App Credentials); "
                "or set SLACK_APP_TOKEN (xapp-…) for Socket Mode."
            )
        self.runtime = runtime
        self.worker: Worker = worker or _SameLoop(runtime)
        self.dispatcher = runtime.dispatcher
        self.services = runtime.services
        self.settings = settings
        self.socket_mode = bool(settings.slack_app_token)
        self.client = web_client(settings.slack_bot_token, settings.slack_api_url)
        origins = [SLACK_HOOKS]
        if settings.slack_api_url != DEFAULT_SLACK_API_URL:
            origins.append(origin(settings.slack_api_url))
        self.response_origins = tuple(origins)
        self.identity: BotIdentity | None = None
        self.outbox: SlackOutbox | None = None
        self.socket: AsyncSocketModeHandler | None = None
        self._names: dict[str, str] = {}
        self.intake = True  # False once stopping: deliveries are answered, never run
        SCRUBBER.guard_verbs(
            c.name for c in self.services.registry.commands.values() if c.sensitive
        )
        self.bolt_logger = scrubbed_logger("adapters.slack.bolt")
        if _TOKEN_NOTICE not in self.bolt_logger.filters:
            # bolt reads SLACK_BOT_TOKEN itself and says it ignores it for `client`: intended
            self.bolt_logger.addFilter(_TOKEN_NOTICE)

        async def authorize(**_: Any) -> AuthorizeResult:
            return self._authorize()

        self.app = AsyncApp(
            # bolt builds a client per request from this one: the API base and the retries
            client=web_client(None, settings.slack_api_url),
            signing_secret=settings.slack_signing_secret or "",
            authorize=authorize,
            logger=self.bolt_logger,
            name="flybot",
        )
        self._listen()

    # --- start and stop --------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        if self.identity is None:
            return False
        if self.socket is not None:
            session = self.socket.client.current_session
            return session is not None and not session.closed
        return True

    async def connect(self) -> None:
        """Check the bot token (auth.test), register the outbox, and open Socket Mode when
        an app token is set. Raises SlackSetupError with one clear line on bad tokens."""
        try:
            auth = await self.client.auth_test()
        except SlackApiError as exc:
            raise SlackSetupError(
                f"Slack refused SLACK_BOT_TOKEN ({exc.response.get('error', exc)}): check the "
                "Bot User OAuth Token under OAuth & Permissions."
            ) from None
        except Exception as exc:
            raise SlackSetupError(
                f"Slack's Web API at {self.settings.slack_api_url} did not answer: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        self.identity = BotIdentity(
            str(auth["team_id"]), str(auth.get("user_id", "")), str(auth.get("bot_id", ""))
        )
        self.outbox = SlackOutbox(self.client, self.identity.team_id)
        self.runtime.attach(PLATFORM, self.outbox)
        if self.socket_mode:
            self.socket = _socket_mode(
                self.worker,
                self.app,
                self.settings.slack_app_token,
                logger=scrubbed_logger("adapters.slack.socket_mode"),
                web_client=self.client,
            )
            try:
                # asked here, not by the Socket Mode client, which retries a refusal forever
                opened = await self.client.apps_connections_open(
                    app_token=self.settings.slack_app_token or ""
                )
            except SlackApiError as exc:
                raise SlackSetupError(
                    f"Slack refused SLACK_APP_TOKEN ({exc.response.get('error', exc)}): it "
                    "needs the connections:write scope (Basic Information → App-Level Tokens)."
                ) from None
            self.socket.client.wss_uri = str(opened["url"])
            await self.socket.connect_async()

    async def stop_intake(self) -> None:
        """No new deliveries (Socket Mode's websocket closed, so Slack sends to another
        connection; over HTTP each one is answered as stopping); posts still work, so running
        work can finish and tell its threads."""
        self.intake = False
        if self.socket is not None:
            await self.socket.close_async()
            self.socket = None

    async def close(self) -> None:
        await self.stop_intake()
        self.runtime.services.router.unregister(PLATFORM)

    async def handle_http(self, request: web.Request) -> web.Response:
        """bolt's endpoint: signature checked, then the listeners below."""
        with self.worker.answering():
            replayed = "fly-replay-src" in request.headers or "fly-replay-failed" in request.headers
            if not self.intake and self.settings.fly_machine_id and not replayed:
                # A 503 to anything that is not Fly's proxy, which reads the header instead.
                return web.Response(
                    status=503,
                    text="flybot is restarting",
                    headers={"fly-replay": FLY_REPLAY, "Retry-After": "60"},
                )
            if not self.intake and request.content_type == "application/json":
                # An Events API delivery: not acknowledged, so Slack delivers it again later.
                return web.Response(
                    status=503, text="flybot is restarting", headers={"Retry-After": "60"}
                )
            response = await self.app.async_dispatch(await to_bolt_request(request))
            return await to_aiohttp_response(response)

    def _authorize(self) -> AuthorizeResult:
        assert self.identity is not None, "connect() first"
        return AuthorizeResult(
            enterprise_id=None,
            team_id=self.identity.team_id,
            bot_token=self.settings.slack_bot_token,
            bot_user_id=self.identity.user_id,
            bot_id=self.identity.bot_id,
        )

    # --- listeners ---------------------------------------------------------------------------

    def _listen(self) -> None:
        self.app.command("/fly")(self._on_command)
        self.app.action(re.compile(r".+"))(self._on_action)
        self.app.view(modal.CALLBACK_ID)(self._on_submit)
        self.app.view_closed(modal.CALLBACK_ID)(self._on_close)
        self.app.event("message")(self._on_message)
        self.app.event("app_home_opened")(self._on_home)

    def _interaction(self, invocation: Invocation, response_url: str | None) -> SlackInteraction:
        assert self.outbox is not None
        return SlackInteraction(self.outbox, invocation, response_url, self.response_origins)

    def _run(
        self,
        invocation: Invocation,
        response_url: str | None,
        values: dict[str, str] | None = None,
        after: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        interaction = self._interaction(invocation, response_url)

        async def work() -> None:
            await self.dispatcher.handle(invocation, interaction, values)
            if after is not None:
                await after()

        self.worker.spawn(work(), name=f"slack {invocation.dedupe_key}")

    async def _on_command(self, ack: Ack, body: dict[str, Any]) -> None:
        if not self.intake:
            await ack(text=RESTARTING, response_type="ephemeral")
            return
        await ack()
        team = str(body.get("team_id", ""))
        invocation = Invocation(
            platform=PLATFORM,
            workspace_id=team,
            channel_id=str(body.get("channel_id", "")),
            user_id=str(body.get("user_id", "")),
            display_name=str(body.get("user_name") or body.get("user_id", "")),
            text=str(body.get("text", "")),
            dedupe_key=f"slack:{team}:command:{body.get('trigger_id', '')}",
        )
        asked = self.dispatcher.secret_request(invocation)
        if asked is not None:
            await self._open_form(invocation, body, asked)
            return
        self._run(invocation, body.get("response_url"))

    async def _open_form(self, invocation: Invocation, body: dict[str, Any], asked: Any) -> None:
        """The modal, opened now: the trigger_id lives 3 s. A repeated delivery opens none."""
        key = invocation.dedupe_key or ""
        claimed = await asyncio.to_thread(self.dispatcher.first_delivery, f"{key}:form")
        if not claimed:
            return
        pending = modal.Pending(
            line=invocation.text,
            channel_id=invocation.channel_id,
            thread_id=invocation.thread_id,
            user_id=invocation.user_id,
            names=asked.names,
            delivery=key,
        )
        try:
            await self.client.views_open(
                trigger_id=str(body.get("trigger_id", "")), view=modal.view(asked, pending)
            )
        except SlackApiError as exc:
            log.warning("could not open the secrets form: %s", exc.response.get("error"))
            note = Reply(
                "Slack did not open the form for the secret values "
                f"({exc.response.get('error', 'error')}); nothing was changed. Try again.",
                tone="error",
            )
            await self._interaction(invocation, body.get("response_url")).reply_private(note)

    async def _on_action(self, ack: Ack, body: dict[str, Any]) -> None:
        await ack()
        actions = body.get("actions") or [{}]
        action = actions[0]
        user = body.get("user") or {}
        team = str((body.get("team") or {}).get("id") or user.get("team_id") or "")
        container = body.get("container") or {}
        message = body.get("message") or {}
        channel = str((body.get("channel") or {}).get("id") or container.get("channel_id") or "")
        thread = message.get("thread_ts") or message.get("ts") or None
        line = self.services.registry.click_line(
            str(action.get("action_id", "")), str(action.get("value", ""))
        )
        invocation = Invocation(
            platform=PLATFORM,
            workspace_id=team,
            channel_id=channel,
            user_id=str(user.get("id", "")),
            display_name=str(user.get("username") or user.get("name") or user.get("id", "")),
            text=line or "",
            thread_id=thread,
            dedupe_key=f"slack:{team}:action:{body.get('trigger_id', '')}",
        )
        response_url = body.get("response_url")
        if not self.intake:
            note = Reply(RESTARTING, tone="warning")
            await self._interaction(invocation, response_url).reply_private(note)
            return
        if line is None:
            note = Reply("That button does nothing any more.", tone="error")
            await self._interaction(invocation, response_url).reply_private(note)
            return
        after = None
        if container.get("type") == "view":  # a click on the Home tab: show the new state
            after = self._home_refresher(invocation.user_id, team, invocation.display_name)
        self._run(invocation, response_url, after=after)

    async def _on_submit(self, ack: Ack, body: dict[str, Any]) -> None:
        view = body.get("view") or {}
        pending = modal.pending_of(view)
        values = modal.values_of(view, pending.names)
        SCRUBBER.hold(values.values())
        if not self.intake and pending.names:
            first = f"{modal.BLOCK_PREFIX}{pending.names[0]}"[:255]
            await ack(response_action="errors", errors={first: RESTARTING_FORM})
            return
        await ack()
        user = body.get("user") or {}
        if str(user.get("id", "")) != pending.user_id:
            log.warning("a secrets form submitted by someone else than who opened it: dropped")
            return
        team = str((body.get("team") or {}).get("id") or user.get("team_id") or "")
        invocation = Invocation(
            platform=PLATFORM,
            workspace_id=team,
            channel_id=pending.channel_id,
            user_id=pending.user_id,
            display_name=str(user.get("username") or user.get("name") or pending.user_id),
            text=pending.line,
            thread_id=pending.thread_id,
            dedupe_key=f"slack:{team}:view:{view.get('id', '')}",
        )
        self._run(invocation, None, values)

    async def _on_close(self, ack: Ack, body: dict[str, Any]) -> None:
        await ack()
        view = body.get("view") or {}
        pending = modal.pending_of(view)
        team = str((body.get("team") or {}).get("id") or "")
        invocation = Invocation(
            platform=PLATFORM,
            workspace_id=team,
            channel_id=pending.channel_id,
            user_id=pending.user_id,
            display_name=pending.user_id,
            text=pending.line,
            thread_id=pending.thread_id,
        )
        line = " ".join(pending.line.split())
        shown = line if len(line) <= 80 else line[:79] + "…"
        note = Reply(
            markup(
                "Cancelled `/fly {line}`: the form was closed, no value was sent and nothing "
                "was changed.",
                line=shown,
            ),
            tone="warning",
        )
        interaction = self._interaction(invocation, None)
        if not self.intake:  # the work loop is finishing its jobs: said from here
            await interaction.reply_private(note)
            return
        self.worker.spawn(interaction.reply_private(note), name="slack form closed")

    async def _on_message(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        # bolt acknowledges events itself; this runs after, and most messages are chat.
        if event.get("subtype") or event.get("bot_id") or not event.get("thread_ts"):
            return
        text = self._addressed(str(event.get("text") or ""))
        first = text.strip().removeprefix("/fly").split(maxsplit=1)
        if not first or first[0].lower() not in ("approve", "reject"):
            return
        channel, thread = str(event.get("channel", "")), str(event["thread_ts"])
        for attempt in range(THREAD_LOOKUPS):
            line = await asyncio.to_thread(
                thread_reply_line, self.services.engine, PLATFORM, channel, thread, text
            )
            if line is not None:
                break
            # The card may have been posted a moment ago and its thread not yet recorded.
            await asyncio.sleep(THREAD_LOOKUP_PAUSE * (attempt + 1))
        else:
            return
        user = str(event.get("user", ""))
        team = str(body.get("team_id") or event.get("team") or "")
        invocation = Invocation(
            platform=PLATFORM,
            workspace_id=team,
            channel_id=channel,
            user_id=user,
            display_name=await self._name_of(user),
            text=line,
            thread_id=thread,
            dedupe_key=f"slack:{team}:event:{body.get('event_id', '')}",
        )
        self._run(invocation, None)

    def _addressed(self, text: str) -> str:
        """A thread reply without a leading mention of this bot: `@flybot approve` (which
        Slack sends as `<@U…> approve`) means what `approve` means. A mention of anyone
        else is left in, so `@dave approve this?` asks dave and approves nothing."""
        if self.identity is None or not self.identity.user_id:
            return text
        mention = re.match(rf"\s*<@{re.escape(self.identity.user_id)}(\|[^>]*)?>", text)
        return text[mention.end() :] if mention else text

    async def _name_of(self, user: str) -> str:
        if user not in self._names:
            try:
                info = await self.client.users_info(user=user)
                profile = info["user"].get("profile") or {}
                self._names[user] = profile.get("display_name") or info["user"].get("name") or user
            except SlackApiError:
                return user
        return self._names[user]

    async def _on_home(self, body: dict[str, Any], event: dict[str, Any]) -> None:
        if event.get("tab", "home") != "home":
            return
        user = str(event.get("user", ""))
        team = str(body.get("team_id", ""))
        name = await self._name_of(user)
        self.worker.spawn(self._home_refresher(user, team, name)(), name="slack home")

    def _home_refresher(
        self, user: str, team: str, name: str
    ) -> Callable[[], Coroutine[Any, Any, None]]:
        async def publish() -> None:
            try:
                shown = await overview(self.services, IdentityKey(PLATFORM, team, user), name)
                await self.client.views_publish(user_id=user, view=home.view(shown))
            except Exception:
                log.exception("could not publish the Home tab of %s", user)

        return publish
