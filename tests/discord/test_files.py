"""A chart goes to Discord as an attachment, the way Discord takes files: a multipart body
with `payload_json` beside `files[n]`, through a real discord.py client against the fake
Discord, both for a bot channel message (the outbox: scheduled usage reports) and for a slash
command's answer (`/fly metrics` inside `flybot run`, replacing the deferred "thinking…")."""

from __future__ import annotations

import struct
import time
import zlib
from dataclasses import replace
from pathlib import Path

import pytest

from adapters.discord.conversation import DiscordOutbox
from commands.port import ChannelRef, Reply
from commands.reply import Attachment, Button
from tests.discord.harness import BOB, discord_world
from tests.fakes.discord_api import (
    CHANNEL,
    GUILD,
    FakeDiscord,
)

pytestmark = pytest.mark.timeout(90)

CHART = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40  # bytes a text body would mangle


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    width, height = struct.unpack(">II", data[16:24])
    crc = struct.unpack(">I", data[29:33])[0]
    assert zlib.crc32(data[12:29]) == crc, "a broken IHDR chunk"
    return width, height


async def test_a_posted_reply_carries_its_files_as_attachments(
    world: tuple[FakeDiscord, DiscordOutbox],
) -> None:
    fake, outbox = world
    reply = Reply(
        title="Usage of org demo",
        text="",
        lines=("machine-hours 1 488 of 2 232",),
        files=(Attachment("usage-2026-12.png", CHART, title="usage chart"),),
    )
    posted = await outbox.post(ChannelRef("discord", GUILD, CHANNEL), reply)
    [call] = fake.calls_to("POST", "/channels/{id}/messages")
    assert call.status == 200, call.answer
    assert call.files == [("usage-2026-12.png", CHART)]  # byte for byte
    assert call.body["attachments"] == [
        {"id": 0, "filename": "usage-2026-12.png", "description": "usage chart"}
    ]
    assert "Usage of org demo" in call.body["embeds"][0]["title"]
    message = fake.messages[posted.message_id]
    assert message.files == [("usage-2026-12.png", CHART)]


async def test_a_reply_with_files_says_what_the_same_reply_without_them_says(
    world: tuple[FakeDiscord, DiscordOutbox],
) -> None:
    """The multipart body's payload_json carries the embeds, the buttons (an alert's
    scale-down) and the mentions rule of the plain JSON message, beside the files."""
    fake, outbox = world
    reply = Reply(
        title="Allowance alert",
        text="Machine-hours at 83% of the allowance.",
        tone="warning",
        fields=(("forecast", "2 410 of 2 232"),),
        buttons=(Button("Scale dev to 0", "usage.scale", "7", "usage scale 7", "danger"),),
    )
    where = ChannelRef("discord", GUILD, CHANNEL)
    chart = Attachment("usage.png", CHART, title="usage chart")
    await outbox.post(where, reply)
    await outbox.post(where, replace(reply, files=(chart,)))
    plain, upload = fake.calls_to("POST", "/channels/{id}/messages")
    assert plain.files == [] and upload.files == [("usage.png", CHART)]
    [row] = upload.body["components"]
    [expected_row] = plain.body["components"]
    for sent, expected in zip(row["components"], expected_row["components"], strict=True):
        assert {k: sent.get(k) for k in expected} == expected  # (and "disabled": false)
    assert upload.body["allowed_mentions"]["parse"] == plain.body["allowed_mentions"]["parse"] == []
    for sent, expected in zip(upload.body["embeds"], plain.body["embeds"], strict=True):
        assert {k: sent.get(k) for k in expected} == expected


async def test_a_reply_without_files_stays_plain_json(
    world: tuple[FakeDiscord, DiscordOutbox],
) -> None:
    fake, outbox = world
    await outbox.post(ChannelRef("discord", GUILD, CHANNEL), Reply(title="no chart", text=""))
    [call] = fake.calls_to("POST", "/channels/{id}/messages")
    assert call.files == [] and "attachments" not in call.body


async def test_fly_metrics_on_discord_answers_with_its_chart_attached(tmp_path: Path) -> None:
    async with discord_world(tmp_path) as w:
        w.grant(BOB, "viewer")
        w.sim.set_traffic("shop-staging", since=time.time() - 2 * 3600)
        await w.start()
        d = w.discord
        command = await d.slash(BOB, "metrics", project="shop", stage="staging")

        def answered() -> bool:
            return any(m.files for m in d.messages.values())

        await d.wait_for(answered, timeout=60)
        assert command.answers == [{"type": 5}]
        [message] = [m for m in d.messages.values() if m.files]
        assert message.interaction_id == command.id  # the deferred answer, replaced
        [(name, data)] = message.files
        assert name.endswith(".png")
        width, height = png_size(data)
        assert width >= 300 and height >= 150
        assert "shop/staging" in message.plain() or "shop-staging" in message.plain()
        [upload] = [c for c in d.calls if c.files]
        assert upload.method == "PATCH" and upload.path.endswith("/messages/@original")
