"""Checks of a rendered message against Slack's and Discord's documented limits: any test
that records a payload can run them."""

from __future__ import annotations

from typing import Any

SLACK_MESSAGE_CHARS = 12_000  # Slack rejects blocks near 13 000 (slackapi/bolt-js#2509)


def slack_texts(payload: dict[str, Any]) -> list[str]:
    texts: list[str] = []
    for block in payload["blocks"]:
        if "text" in block:
            texts.append(block["text"]["text"])
        texts.extend(field["text"] for field in block.get("fields", []))
        for element in block.get("elements", []):
            if "text" in element:  # a button's text object, or a context block's mrkdwn
                text = element["text"]
                texts.append(text if isinstance(text, str) else text["text"])
    return texts


def check_slack(payload: dict[str, Any]) -> None:
    blocks = payload["blocks"]
    assert 1 <= len(blocks) <= 50, len(blocks)
    assert len(payload["text"]) <= 40_000
    for block in blocks:
        kind = block["type"]
        if kind == "header":
            assert len(block["text"]["text"]) <= 150
        elif kind == "section":
            if "text" in block:
                assert 1 <= len(block["text"]["text"]) <= 3000, len(block["text"]["text"])
            assert len(block.get("fields", [])) <= 10
            for field in block.get("fields", []):
                assert len(field["text"]) <= 2000
        elif kind == "context":
            assert 1 <= len(block["elements"]) <= 10
            for element in block["elements"]:
                assert len(element["text"]) <= 3000
        elif kind == "actions":
            assert len(block["elements"]) <= 25
            for element in block["elements"]:
                assert len(element["text"]["text"]) <= 75
                assert len(element["action_id"]) <= 255 and len(element["value"]) <= 2000
    assert sum(len(t) for t in slack_texts(payload)) <= SLACK_MESSAGE_CHARS


def discord_texts(payload: dict[str, Any]) -> list[str]:
    texts = [payload.get("content", "")]
    for embed in payload["embeds"]:
        texts.extend([embed.get("title", ""), embed.get("description", "")])
        for field in embed.get("fields", []):
            texts.extend([field["name"], field["value"]])
    return texts


def check_discord(payload: dict[str, Any]) -> None:
    assert len(payload.get("content", "")) <= 2000
    embeds = payload["embeds"]
    assert len(embeds) <= 10
    total = 0
    for embed in embeds:
        assert len(embed.get("title", "")) <= 256
        assert len(embed.get("description", "")) <= 4096, len(embed.get("description", ""))
        assert len(embed.get("fields", [])) <= 25
        for field in embed.get("fields", []):
            assert 1 <= len(field["name"]) <= 256 and 1 <= len(field["value"]) <= 1024
        total += len(embed.get("title", "")) + len(embed.get("description", ""))
        total += sum(len(f["name"]) + len(f["value"]) for f in embed.get("fields", []))
    assert total <= 6000, total
    rows = payload.get("components", [])
    assert len(rows) <= 5
    for row in rows:
        assert len(row["components"]) <= 5
        for button in row["components"]:
            assert len(button["label"]) <= 80 and len(button["custom_id"]) <= 100
