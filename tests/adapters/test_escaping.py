"""Text that users or Fly control — display names, reasons, error text — is escaped by each
platform's renderer, so `<!channel>`, `@everyone`, mentions and spoofed links are shown,
never acted on; the bot's own markup (its backticks) still formats."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from adapters.discord import render as discord
from adapters.shell.conversation import ShellConversation
from adapters.slack import render as slack
from commands.reply import Reply, markup
from tests.adapters.limits_check import discord_texts, slack_texts
from tests.support import Bot, write_projects

NAME = "<!channel> [docs](https://evil.example) <@U0ADMIN>"
REASON = "@everyone <https://evil.example|click here> <@&123> \x1b[2J"
SLACK = {"platform": "slack", "workspace": "T0001"}


def slack_safe(text: str) -> None:
    for bad in ("<!channel>", "<@U0ADMIN>", "<https://evil", "<@&123>", "@everyone"):
        assert bad not in text, (bad, text)


def discord_safe(text: str) -> None:
    # Inside a code block Discord parses neither mentions nor links; @everyone is still
    # broken up there, in case a client pings on it.
    assert "@everyone" not in text, text
    outside = "".join(text.split("```")[::2])
    unescaped = outside.replace("\\<", "").replace("\\[", "").replace("\\]", "")
    for bad in ("<!channel>", "<@U0ADMIN>", "<@&123>", "](https"):
        assert bad not in unescaped, (bad, text)


async def hostile_replies(tmp_path: Path) -> list[Reply]:
    bot = Bot.start(
        f"sqlite:///{tmp_path / 'db'}", write_projects(tmp_path), admins=("slack:T0001:UA",)
    )
    await bot.run("UA", "perms grant <@UM> deployer ping-go", **SLACK)
    locked, conversation = await bot.run("UM", f"lock ping-go prod '{REASON}'", name=NAME, **SLACK)
    assert locked.status == "ok", conversation.all_text()
    [announcement] = conversation.public
    refused, conversation = await bot.run("UA", "lock ping-go prod", **SLACK)  # names the owner
    assert refused.status == "error"
    [refusal] = conversation.private
    _, conversation = await bot.run("UA", "audit", **SLACK)
    [log] = conversation.private
    return [announcement, refusal, log]


async def test_slack_never_sees_a_hostile_mention_or_link(tmp_path: Path) -> None:
    replies = await hostile_replies(tmp_path)
    assert NAME in replies[0].text and NAME in replies[1].text  # the words are all there
    for reply in replies:
        for payload in slack.messages(reply):
            for text in [payload["text"], *slack_texts(payload)]:
                slack_safe(text)
    [announcement] = slack.messages(replies[0])
    assert "&lt;!channel&gt;" in announcement["blocks"][0]["text"]["text"]


async def test_discord_never_sees_a_hostile_mention_or_link(tmp_path: Path) -> None:
    replies = await hostile_replies(tmp_path)
    for reply in replies:
        for payload in discord.messages(reply):
            assert payload["allowed_mentions"] == {"parse": []}
            for text in discord_texts(payload):
                discord_safe(text)


def test_the_bots_own_markup_formats_while_values_in_it_are_escaped() -> None:
    reply = Reply(text=markup("Not allowed: `{verb}` for {who}.", verb="lock", who="*x* `y`"))
    [s] = slack.messages(reply)
    assert s["blocks"][0]["text"]["text"] == "Not allowed: `lock` for *x* `y`."  # &<> only
    [d] = discord.messages(reply)
    assert d["embeds"][0]["description"] == r"Not allowed: `lock` for \*x\* \`y\`."
    plain = Reply(text="Not allowed: `lock`.")  # a plain str is untrusted throughout
    [d] = discord.messages(plain)
    assert d["embeds"][0]["description"] == r"Not allowed: \`lock\`."


async def test_the_terminal_never_prints_a_control_sequence(tmp_path: Path) -> None:
    screen = io.StringIO()
    shell = ShellConversation(Console(file=screen, width=200, force_terminal=False))
    await shell.reply(Reply(text=markup("lock by {who}: {why}", who=NAME, why=REASON)))
    assert "\x1b" not in screen.getvalue() and "[2J" in screen.getvalue()
