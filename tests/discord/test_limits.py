"""Every message the Discord outbox sends keeps to Discord's limits (the fake Discord refuses
what Discord refuses: 2000 characters of content, embeds of 4096 / 25 fields / 256-character
titles / 6000 in all, 5 buttons a row), through a real discord.py client: a reply far past
all of them is cut, its list ending with "… and N more" and its code continuing in further
messages; an edit and a thread reply alike."""

from __future__ import annotations

import pytest

from adapters.discord.conversation import DiscordOutbox
from commands.port import Button, ChannelRef, Reply
from tests.adapters.limits_check import check_discord
from tests.fakes.discord_api import (
    CHANNEL,
    GUILD,
    FakeDiscord,
    sent,
)

pytestmark = pytest.mark.timeout(60)


HUGE = Reply(
    title="🔐 " + "a very long title @everyone " * 20,
    text="text <@123> " * 600,
    fields=tuple((f"field {i} " * 30, "value " * 400) for i in range(40)),
    lines=tuple(f"• release v{i}: registry.fly.io/shop:v{i} by **bob**" for i in range(600)),
    code=tuple(f"{i:05d} " + "log line ``` " * 12 for i in range(900)),
    buttons=tuple(
        Button(f"B{i} " * 30, "approval.approve", str(i), f"approve {i}") for i in range(7)
    ),
)


async def test_a_reply_past_every_limit_is_cut_to_fit(
    world: tuple[FakeDiscord, DiscordOutbox],
) -> None:
    fake, outbox = world
    posted = await outbox.post(ChannelRef("discord", GUILD, CHANNEL), HUGE)
    await outbox.update(posted, HUGE)
    in_thread = await outbox.post_in_thread(posted, HUGE)
    assert in_thread.channel_id == posted.message_id  # the thread has the message's id
    threads = fake.calls_to("POST", "/channels/{id}/messages/{id}/threads")
    # the edit's continuation started the thread; the thread reply found it there (160004)
    assert [c.status for c in threads] == [201, 400]
    for call in fake.calls:
        assert call.status < 300 or call in threads, (call.path, call.answer)
        if call.body and "embeds" in call.body:
            check_discord(sent(call.body))
    head = fake.messages[posted.message_id]
    assert head.edits == 1
    assert "… and " in head.plain() and " more" in head.plain()
    assert len(head.buttons) == 5
    assert all(len(b["label"]) <= 80 for b in head.buttons)
    continued = [m for m in fake.in_channel(CHANNEL) if m.id != head.id]
    assert continued, "the code goes on in further messages"
    assert "@everyone" not in head.all_text()  # never a ping: escaped
    posts = fake.calls_to("POST", "/channels/{id}/messages")
    assert all(c.body["allowed_mentions"] == {"parse": []} for c in posts)


async def test_rate_limits_and_outages_are_waited_out(
    world: tuple[FakeDiscord, DiscordOutbox],
) -> None:
    """A 429 from Discord's edge (with `Via`, as discord.py expects before it retries) and a
    502 on the way: the post, the edit and the thread reply all get through, once each."""
    fake, outbox = world
    fake.fail_next("POST", "/channels/{id}/messages", 429, retry_after=0.3)
    posted = await outbox.post(ChannelRef("discord", GUILD, CHANNEL), Reply("queued"))
    fake.fail_next("PATCH", "/channels/{id}/messages/{id}", 502)
    await outbox.update(posted, Reply("deploying 1/3"))
    fake.fail_next("POST", "/channels/{id}/messages/{id}/threads", 429, retry_after=0.1)
    await outbox.post_in_thread(posted, Reply("web: batch 1/2"))
    statuses = [(c.method, c.route, c.status) for c in fake.calls if "/@me" not in c.route]
    assert statuses == [
        ("POST", "/channels/{id}/messages", 429),
        ("POST", "/channels/{id}/messages", 200),
        ("PATCH", "/channels/{id}/messages/{id}", 502),
        ("PATCH", "/channels/{id}/messages/{id}", 200),
        ("POST", "/channels/{id}/messages/{id}/threads", 429),
        ("POST", "/channels/{id}/messages/{id}/threads", 201),
        ("POST", "/channels/{id}/messages", 200),
    ]
    assert [m.plain() for m in fake.in_channel(CHANNEL)] == ["deploying 1/3"]
    assert [m.plain() for m in fake.in_channel(posted.message_id)] == ["web: batch 1/2"]
