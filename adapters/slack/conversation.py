"""Slack's side of the port.

- `SlackOutbox` posts with the bot token (chat.postMessage, chat.update; a reply's files
  with files_upload_v2): deploy progress, approval cards, the scheduler's notices. A
  `MessageRef` is (team, channel, ts, thread_ts).
- `SlackInteraction` answers one slash command, click, typed thread reply or modal:
  public answers through the outbox, private ones through the delivery's `response_url`
  (ephemeral, works in any channel) or chat.postEphemeral when there is none.

Every outgoing call survives Slack's 429s (Retry-After, slack_sdk's
RateLimitErrorRetryHandler), 5xx answers and dropped connections (`retry_handlers`).
"""

from __future__ import annotations

import logging
import urllib.parse
from typing import Any

from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from slack_sdk.webhook.async_client import AsyncWebhookClient

from adapters.slack import render
from bot import metrics
from commands.port import ChannelRef, Invocation, MessageRef, Reply

log = logging.getLogger(__name__)

PLATFORM = "slack"
SLACK_HOOKS = "https://hooks.slack.com"
TIMEOUT = 15  # seconds per Web API call


def retry_handlers() -> list[AsyncRetryHandler]:
    return [
        AsyncConnectionErrorRetryHandler(max_retry_count=2),
        AsyncRateLimitErrorRetryHandler(max_retry_count=4),
        AsyncServerErrorRetryHandler(max_retry_count=2),
    ]


class _CountedWebClient(AsyncWebClient):
    """Each Web API call (its retries included) counted, and counted again when it fails."""

    async def api_call(self, api_method: str, **kwargs: Any) -> AsyncSlackResponse:
        metrics.CHAT_CALLS.labels(PLATFORM).inc()
        try:
            return await super().api_call(api_method, **kwargs)
        except Exception:
            metrics.CHAT_ERRORS.labels(PLATFORM).inc()
            raise


def web_client(token: str | None, api_url: str) -> AsyncWebClient:
    return _CountedWebClient(
        token=token, base_url=api_url, timeout=TIMEOUT, retry_handlers=retry_handlers()
    )


def origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class SlackOutbox:
    """Durable posts in one workspace, with the bot token."""

    def __init__(self, client: AsyncWebClient, team_id: str) -> None:
        self.client = client
        self.team_id = team_id

    def ref(self, channel: str, ts: str, thread_ts: str | None) -> MessageRef:
        return MessageRef(PLATFORM, self.team_id, channel, ts, thread_ts)

    async def _post(self, channel: str, thread_ts: str | None, reply: Reply) -> str:
        first, *more = render.messages(reply)
        answer = await self.client.chat_postMessage(
            channel=channel, thread_ts=thread_ts, unfurl_links=False, unfurl_media=False, **first
        )
        ts = str(answer["ts"])
        for extra in more:  # a long code block continues in the thread
            await self.client.chat_postMessage(
                channel=channel, thread_ts=thread_ts or ts, unfurl_links=False, **extra
            )
        # Files (a report's chart) go right under the message, where it was posted; the
        # upload needs the channel's id, which the post answered with (a #name works there).
        channel_id = str(answer.get("channel") or channel)
        for attachment in reply.files:
            await self.client.files_upload_v2(
                channel=channel_id,
                thread_ts=thread_ts,
                file=attachment.data,
                filename=attachment.filename,
                title=attachment.title or attachment.filename,
            )
        return ts

    async def post(self, where: ChannelRef, reply: Reply) -> MessageRef:
        ts = await self._post(where.channel_id, where.thread_id, reply)
        return self.ref(where.channel_id, ts, where.thread_id)

    async def post_in_thread(self, thread: MessageRef, reply: Reply) -> MessageRef:
        thread_ts = thread.thread_id or thread.message_id
        ts = await self._post(thread.channel_id, thread_ts, reply)
        return self.ref(thread.channel_id, ts, thread_ts)

    async def update(self, message: MessageRef, reply: Reply) -> None:
        first, *more = render.messages(reply)
        await self.client.chat_update(channel=message.channel_id, ts=message.message_id, **first)
        for extra in more:
            await self.client.chat_postMessage(
                channel=message.channel_id,
                thread_ts=message.thread_id or message.message_id,
                unfurl_links=False,
                **extra,
            )


class SlackInteraction:
    """The answers to one delivery from Slack (see the module docstring)."""

    def __init__(
        self,
        outbox: SlackOutbox,
        invocation: Invocation,
        response_url: str | None,
        allowed_response_origins: tuple[str, ...],
    ) -> None:
        self.outbox = outbox
        self.invocation = invocation
        self.response_url = None
        if response_url:
            if origin(response_url) in allowed_response_origins:
                self.response_url = response_url
            else:  # signed by Slack, but flybot only ever talks to Slack (or its gateway)
                log.warning("ignored a response_url outside %s", allowed_response_origins)

    @property
    def place(self) -> ChannelRef:
        return self.invocation.place

    async def reply(self, reply: Reply) -> MessageRef:
        if not self.invocation.channel_id:  # a click on the Home tab: the app's DM
            return await self.outbox.post(ChannelRef(PLATFORM, "", self.invocation.user_id), reply)
        return await self.outbox.post(self.place, reply)

    async def reply_private(self, reply: Reply) -> None:
        payloads = render.messages(reply)
        if self.response_url is not None:
            hook = AsyncWebhookClient(
                self.response_url, timeout=TIMEOUT, retry_handlers=retry_handlers()
            )
            for payload in payloads:
                metrics.CHAT_CALLS.labels(PLATFORM).inc()
                try:
                    answer = await hook.send(
                        response_type="ephemeral", replace_original=False, **_hook_body(payload)
                    )
                except Exception:
                    metrics.CHAT_ERRORS.labels(PLATFORM).inc()
                    raise
                if answer.status_code >= 300:
                    metrics.CHAT_ERRORS.labels(PLATFORM).inc()
                    raise RuntimeError(f"response_url answered {answer.status_code}")
            return
        if not self.invocation.channel_id:
            await self.outbox.post(ChannelRef(PLATFORM, "", self.invocation.user_id), reply)
            return
        for payload in payloads:
            await self.outbox.client.chat_postEphemeral(
                channel=self.invocation.channel_id,
                user=self.invocation.user_id,
                thread_ts=self.invocation.thread_id,
                **payload,
            )

    async def start_thread(self, reply: Reply) -> MessageRef:
        """A new parent message; typed inside a thread (Slack has no threads in threads),
        the work reports in that thread."""
        posted = await self.reply(reply)
        thread = self.invocation.thread_id or posted.message_id
        return MessageRef(
            PLATFORM, posted.workspace_id, posted.channel_id, posted.message_id, thread
        )


def _hook_body(payload: dict[str, Any]) -> dict[str, Any]:
    return {"text": payload["text"], "blocks": payload["blocks"]}
