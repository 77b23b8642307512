"""/metrics of a running `flybot run`, scraped after real work through Slack: a guarded
deploy waits for approval (pending 1), is approved (pending 0, one approval wait), rolls out
(one succeeded rolling deploy with its duration), and every Fly exchange the simulator served
is counted under its operation and status, none labelled with an app or a machine."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.metrics import fly_operation
from tests.fakes.slack_api import button_click, slash_command
from tests.flyharness import NEW
from tests.slack.harness import BOB, CAROL, CHANNEL, FlybotProcess, slack_world
from tests.slack.test_story import card_of

pytestmark = pytest.mark.timeout(150)

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


async def scrape(bot: FlybotProcess) -> Samples:
    async with aiohttp.ClientSession() as session, session.get(f"{bot.url}/metrics") as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = await r.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


async def scrape_until(bot: FlybotProcess, ready: Callable[[Samples], bool]) -> Samples:
    """Counters move when the work is done, a moment after Slack hears about it."""
    for _ in range(100):
        samples = await scrape(bot)
        if ready(samples):
            return samples
        await asyncio.sleep(0.1)
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


async def test_metrics_after_an_approved_deploy_show_the_deploy_and_every_fly_call(
    tmp_path: Path,
) -> None:
    async with slack_world(tmp_path) as w:
        w.grant(BOB, "deployer")
        w.grant(CAROL, "approver")
        bot = await w.start()
        slack = w.slack
        before = await scrape(bot)
        assert value(before, "flybot_ready") == 1
        assert value(before, "flybot_pending_approvals") == 0
        async with bot.sender() as send:
            await send.command(slash_command(slack, f"deploy shop prod {NEW}", BOB, "bob"))
            await slack.wait_for(lambda: any(m.buttons for m in slack.channel(CHANNEL)))
            waiting = await scrape_until(
                bot, lambda s: value(s, "flybot_commands_total", verb="deploy", outcome="awaiting")
            )
            assert value(waiting, "flybot_pending_approvals") == 1
            assert value(waiting, "flybot_commands_total", verb="deploy", outcome="awaiting") == 1
            card = card_of(slack)
            await send.interactive(button_click(slack, card, "approval.approve", CAROL, "carol"))
            await slack.wait_for(
                lambda: "succeeded" in slack.message(CHANNEL, card.ts).all_text(), timeout=60
            )
        after = await scrape_until(
            bot, lambda s: value(s, "flybot_commands_total", verb="approve", outcome="ok") > 0
        )
        sim_calls = list(w.sim.calls)
        chat_calls = len(slack.calls)
        assert await bot.stop() == 0

    assert value(after, "flybot_pending_approvals") == 0
    assert value(after, "flybot_commands_total", verb="approve", outcome="ok") == 1
    assert value(after, "flybot_approval_wait_seconds_count", outcome="approved") == 1
    assert value(after, "flybot_deploys_total", strategy="rolling", outcome="succeeded") == 1
    assert total(after, "flybot_deploys_total") == 1
    assert value(after, "flybot_deploy_duration_seconds_count", strategy="rolling") == 1
    assert value(after, "flybot_deploy_duration_seconds_sum", strategy="rolling") > 0

    # Every exchange the simulator served, and nothing else, under its operation and status.
    served = Counter((fly_operation(c.method, c.path), str(c.status)) for c in sim_calls)
    counted = {
        (dict(labels)["operation"], dict(labels)["status"]): v
        for (name, labels), v in after.items()
        if name == "flybot_fly_api_calls_total"
    }
    assert counted == dict(served), (counted, served)
    assert any(op.endswith("/machines/:id/lease") for op, _ in counted), counted
    latency = {
        dict(labels)["operation"]: v
        for (name, labels), v in after.items()
        if name == "flybot_fly_api_latency_seconds_count"
    }
    assert latency == dict(Counter(fly_operation(c.method, c.path) for c in sim_calls))
    for (_, labels), _v in after.items():
        for _key, label in labels:
            assert "shop" not in label, labels  # no app name, so no unbounded series

    # Slack: every Web API call counted (the fake records each), none failed.
    assert value(after, "flybot_chat_api_calls_total", platform="slack") == chat_calls
    assert value(after, "flybot_chat_api_errors_total", platform="slack") == 0
    assert value(after, "process_resident_memory_bytes") > 0
