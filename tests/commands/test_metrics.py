"""`/fly metrics` against the simulator's Prometheus over HTTP: a valid PNG (decoded here),
a caption whose numbers equal a hand calculation from the simulated series, the Grafana link;
bad input one line, Fly failures handled."""

from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

import pytest

from bot.ops.metrics import quantile
from tests.flyharness import World, world
from tests.support import snapshot

APP = "shop-staging"


def decode_png(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and the raw scanlines of a PNG, checked chunk by chunk (CRCs too)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) == crc, kind
        if kind == b"IHDR":
            width, height = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
        pos += 12 + length
    raw = zlib.decompress(idat)
    assert width and height and len(raw) >= height  # a filter byte per row, at least
    return width, height, raw


async def metrics(w: World, line: str, user: str = "alice") -> tuple[str, object]:
    outcome, conversation = await w.bot.run(user, line)
    text = conversation.all_text()
    assert outcome.status == "ok", text
    [reply] = conversation.public
    return text, reply


async def test_the_chart_is_a_png_and_its_caption_is_the_hand_calculation(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        w.sim.set_traffic(APP, since=time.time() - 2 * 3600)
        text, reply = await metrics(w, "metrics shop staging")
        [png] = reply.files  # type: ignore[attr-defined]
        width, height, _ = decode_png(png.data)
        assert (width, height) == (1000, 340)
        # By hand: 4 web machines serve (the 2 workers have no services), each 4.0 req/s
        # of 200, 0.5 of 404, 0.1 of 500; latency buckets (le, share): the rank 0.5 lies in
        # (0.025, 0.05] between shares 0.40 and 0.70: 25 + 25 * 0.1/0.3 = 33.3 ms; 0.95 in
        # (0.1, 0.25] between 0.90 and 0.97: 100 + 150 * 0.05/0.07 = 207.1 ms; all 6 up.
        web = 4
        assert f"2xx {4.0 * web:.1f}" in text and f"4xx {0.5 * web:.1f}" in text
        assert f"5xx {0.1 * web:.1f}" in text
        assert f"p50 {25 + 25 * 0.1 / 0.3:.1f} ms" in text
        assert f"p95 {100 + 150 * 0.05 / 0.07:.1f} ms" in text
        assert "machines up 6/6" in text
        assert "https://fly-metrics.net/d/fly-app/fly-app?var-app=shop-staging" in text
        queries = [c.query["query"] for c in w.calls("Prometheus_query_range")]
        assert any("fly_app_http_responses_count" in q for q in queries)
        assert any("fly_app_http_response_time_seconds_bucket" in q for q in queries)
        assert any("fly_instance_up" in q for q in queries)


async def test_statuses_add_up_by_class(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        w.sim.set_traffic(APP, since=time.time() - 3600, rates={"200": 1.0, "503": 2.5})
        text, _ = await metrics(w, "metrics shop staging --since 6h")
        assert "2xx 4.0" in text and "5xx 10.0" in text and "4xx" not in text


@pytest.mark.parametrize("since", ["1h", "6h", "24h", "7d"])
async def test_every_window_draws(tmp_path: Path, since: str) -> None:
    async with world(tmp_path) as w:
        w.sim.set_traffic(APP, since=time.time() - 8 * 86400)
        text, reply = await metrics(w, f"metrics shop staging --since {since}")
        [png] = reply.files  # type: ignore[attr-defined]
        decode_png(png.data)
        assert f"last {since}" in text


async def test_no_traffic_yet_says_so_without_a_chart(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        w.sim.set_traffic(APP, since=time.time() + 3600)  # nothing served in the window
        with w.sim.lock:
            for machine in w.sim.state.apps[APP].machines.values():
                machine.created_at = time.time() + 3600  # nor any machine up
        outcome, conversation = await w.bot.run("alice", "metrics shop staging")
        assert outcome.status == "ok"
        [reply] = conversation.public
        assert not reply.files and "has no series for shop-staging" in conversation.all_text()


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("metrics shop staging --since 2h", "--since must be one of 1h, 6h, 24h, 7d"),
        ("metrics shop nowhere", "stage"),
        ("metrics nope staging", "project"),
    ],
)
async def test_bad_input_is_one_line_and_changes_nothing(
    tmp_path: Path, line: str, says: str
) -> None:
    async with world(tmp_path) as w:
        await w.bot.run("alice", "status shop staging")
        before = snapshot(w.services.engine)
        outcome, conversation = await w.bot.run("alice", line)
        assert outcome.status == "usage", conversation.all_text()
        assert says in conversation.all_text()
        assert w.calls("Prometheus_query_range") == []
        after = snapshot(w.services.engine)
        for table in ("audit_entry", "dedupe_key"):
            before.pop(table, None), after.pop(table, None)
        assert after == before


async def test_fly_429_is_retried_and_a_lasting_500_is_one_line(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        w.sim.set_traffic(APP, since=time.time() - 3600)
        w.sim.inject("Prometheus_query_range", status=429, count=1, retry_after=0)
        text, _ = await metrics(w, "metrics shop staging")
        assert "machines up 6/6" in text
        w.sim.inject("Prometheus_query_range", status=500)
        outcome, conversation = await w.bot.run("alice", "metrics shop staging")
        assert outcome.status == "error"
        assert len(conversation.public + conversation.private) == 1


def test_quantile_matches_prometheus_interpolation() -> None:
    buckets = [(0.1, 10.0), (0.5, 30.0), (float("inf"), 40.0)]
    assert quantile(0.5, buckets) == pytest.approx(0.1 + 0.4 * 10 / 20)
    assert quantile(0.1, buckets) == pytest.approx(0.04)
    assert quantile(0.99, buckets) == 0.5  # in +Inf: the highest finite bound
    assert quantile(0.5, [(0.1, 0.0), (float("inf"), 0.0)]) is None


def test_the_verbs_windows_are_the_ones_the_reader_knows() -> None:
    from bot.ops.metrics import WINDOWS
    from commands.metrics import SINCE

    assert SINCE.choices == tuple(WINDOWS)
