"""What the bot says, described once and rendered by each adapter in its own way.

Two ideas keep every platform safe and within its limits:

- **Trusted markup vs untrusted text.** A plain `str` anywhere in a `Reply` is untrusted: a
  renderer escapes all of it for its platform (Slack `&<>`, Discord mentions and markdown,
  control characters in a terminal), so a display name `<!channel>` or a reason `@everyone`
  is shown, never acted on. Only a `Text` built with `markup(template, **values)` carries
  trusted parts: the template is the bot's own words (its backticks format as code), while
  each value is still untrusted and escaped. `Text` is a `str`, so it reads and compares as
  plain text everywhere else.
- **Limits.** An adapter gives `Limits` (Slack's and Discord's are in their adapter folders);
  `fit_reply` shrinks a reply to them: long titles and fields are cut, a list (`lines`) keeps
  what fits and ends with "… and N more", and a code block (`code`) is split into blocks and,
  past one message, into continuation replies.
"""

from __future__ import annotations

import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Tone = Literal["info", "success", "warning", "error"]
ButtonStyle = Literal["primary", "danger", "default"]
Escape = Callable[[str], str]

ELLIPSIS = "…"


class Text(str):
    """Text whose parts are told apart: `(text, trusted)` pairs, in order."""

    parts: tuple[tuple[str, bool], ...]

    def __new__(cls, parts: Iterable[tuple[str, bool]] = ()) -> Text:
        merged: list[tuple[str, bool]] = []
        for piece, trusted in parts:
            if not piece:
                continue
            if merged and merged[-1][1] == trusted:
                merged[-1] = (merged[-1][0] + piece, trusted)
            else:
                merged.append((piece, trusted))
        self = super().__new__(cls, "".join(p for p, _ in merged))
        self.parts = tuple(merged)
        return self

    def __add__(self, other: str) -> Text:
        return Text((*self.parts, *parts_of(other)))

    def __radd__(self, other: str) -> Text:
        return Text((*parts_of(other), *self.parts))

    def slice(self, length: int) -> Text:
        """The first `length` characters, each keeping its trust."""
        kept: list[tuple[str, bool]] = []
        left = length
        for piece, trusted in self.parts:
            if left <= 0:
                break
            kept.append((piece[:left], trusted))
            left -= len(piece)
        return Text(kept)


def parts_of(value: str) -> tuple[tuple[str, bool], ...]:
    """A plain `str` is one untrusted part; a `Text` keeps its own parts."""
    if isinstance(value, Text):
        return value.parts
    return ((value, False),) if value else ()


def markup(template: str, /, **values: object) -> Text:
    """The template is the bot's own markup; every `{name}` value is untrusted text.

    `markup("🔒 {where} locked by {who}", where="ping-go/prod", who=name)`. A value that is a
    `Text` keeps its parts (so trusted pieces compose); anything else is `str()`-ed.
    """
    pieces: list[tuple[str, bool]] = []
    for literal, name, spec, conversion in string.Formatter().parse(template):
        pieces.append((literal, True))
        if name is None:
            continue
        if name not in values:
            raise KeyError(f"markup template needs a value for {{{name}}}")
        value: Any = values[name]
        if isinstance(value, Text) and not spec and not conversion:
            pieces.extend(value.parts)
            continue
        formatted = format(repr(value) if conversion == "r" else value, spec or "")
        pieces.append((formatted, False))
    return Text(pieces)


def trusted(value: str) -> Text:
    """The bot's own markup, with nothing from anyone else in it."""
    return Text(((value, True),))


def render(value: str, escape: Escape) -> str:
    """Trusted parts as they are, untrusted parts escaped for the platform."""
    return "".join(piece if ok else escape(piece) for piece, ok in parts_of(value))


@dataclass(frozen=True)
class Button:
    label: str
    action: str  # stable id, e.g. "approval.approve"
    value: str  # the object it acts on, e.g. a request id
    command: str  # the same action typed out, e.g. "approve 12"
    style: ButtonStyle = "default"

    @property
    def custom_id(self) -> str:
        return f"{self.action}:{self.value}"


@dataclass(frozen=True)
class Attachment:
    """A file that goes with a message (a chart): uploaded beside it where the platform
    takes files, saved to disk by the shell."""

    filename: str
    data: bytes = field(repr=False)
    title: str = ""
    mime: str = "image/png"


@dataclass(frozen=True)
class Reply:
    """A message: a title, a text, name/value fields, a list body (`lines`), a preformatted
    block (`code`, e.g. a table or a log), buttons and files."""

    text: str
    tone: Tone = "info"
    title: str | None = None
    fields: tuple[tuple[str, str], ...] = ()
    buttons: tuple[Button, ...] = ()
    lines: tuple[str, ...] = field(default=())  # a list, one entry per line: cut to fit
    code: tuple[str, ...] = field(default=())  # preformatted lines: split to fit
    # A log's tail: the code stays one block in one message, cut from the top (the oldest
    # lines) to fit, with a first line saying how many were cut.
    code_tail: bool = False
    files: tuple[Attachment, ...] = field(default=())

    def plain(self) -> str:
        parts = [self.title] if self.title else []
        parts.append(self.text)
        parts.extend(f"{name}: {value}" for name, value in self.fields)
        parts.extend(self.lines)
        parts.extend(self.code)
        return "\n".join(p for p in parts if p)


# --- limits ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    """A platform's limits for one message, as its adapter knows them.

    Lengths are measured after escaping (`escape` for text, `escape_code` for code lines),
    since that is what the platform counts.
    """

    title_chars: int
    text_chars: int  # one text object: the text, the list, one code block
    field_name_chars: int
    field_value_chars: int
    fields: int
    blocks: int  # text objects per message besides the title and fields: text, list, code
    message_chars: int  # all text objects of one message together
    button_label_chars: int
    buttons: int
    escape: Escape = str
    escape_code: Escape = str
    code_fence: int = 8  # the characters a code block's fences add ("```\n" + "\n```")


def _measure(value: str, escape: Escape) -> int:
    return len(render(value, escape))


def shorten(value: str, limit: int, escape: Escape = str) -> str:
    """`value`, cut with "…" so that it renders within `limit` characters."""
    if _measure(value, escape) <= limit:
        return value
    text = value if isinstance(value, Text) else Text(parts_of(value))
    low, high = 0, len(text)
    while low < high:  # the longest prefix that fits with the ellipsis
        middle = (low + high + 1) // 2
        if _measure(text.slice(middle), escape) + len(ELLIPSIS) <= limit:
            low = middle
        else:
            high = middle - 1
    return text.slice(low) + trusted(ELLIPSIS)


def more_line(hidden: int) -> Text:
    return trusted(f"{ELLIPSIS} and {hidden} more")


def _fit_list(lines: tuple[str, ...], budget: int, escape: Escape) -> tuple[str, ...]:
    if not lines:
        return ()
    cut = tuple(shorten(line, budget, escape) for line in lines)

    def size(kept: tuple[str, ...]) -> int:
        return sum(_measure(line, escape) for line in kept) + max(len(kept) - 1, 0)

    if size(cut) <= budget:
        return cut
    for count in range(len(cut) - 1, -1, -1):
        kept = (*cut[:count], more_line(len(cut) - count))
        if size(kept) <= budget:
            return kept
    return (more_line(len(cut)),)


def _code_blocks(code: tuple[str, ...], limits: Limits) -> list[tuple[str, ...]]:
    """Split code lines into blocks that each render within one text object."""
    room = limits.text_chars - limits.code_fence
    blocks: list[tuple[str, ...]] = []
    current: list[str] = []
    used = 0
    for raw in code:
        pieces = [raw] if len(limits.escape_code(raw)) <= room else _hard_split(raw, room, limits)
        for line in pieces:
            size = len(limits.escape_code(line)) + (1 if current else 0)
            if current and used + size > room:
                blocks.append(tuple(current))
                current, used = [], 0
                size = len(limits.escape_code(line))
            current.append(line)
            used += size
    if current:
        blocks.append(tuple(current))
    return blocks


def cut_note(count: int) -> str:
    return f"[{count} earlier line{'s' if count != 1 else ''} cut to fit]"


def _tail_block(code: tuple[str, ...], room: int, limits: Limits) -> tuple[str, ...]:
    """The newest lines of `code` that render within `room`, under a note when any were
    cut; a line too long for a block on its own is cut at its end."""
    size = lambda line: len(limits.escape_code(line))  # noqa: E731
    kept: list[str] = []
    used = 0
    for index in range(len(code) - 1, -1, -1):
        line = code[index]
        if size(line) > room // 2:
            line = _hard_split(line, room // 2 - 1, limits)[0] + ELLIPSIS
        cut = index  # lines before this one
        note = size(cut_note(cut)) + 1 if cut else 0
        if used + size(line) + (1 if kept else 0) + note > room:
            break
        kept.insert(0, line)
        used += size(line) + (1 if len(kept) > 1 else 0)
    cut = len(code) - len(kept)
    return (cut_note(cut), *kept) if cut else tuple(kept)


def _hard_split(line: str, room: int, limits: Limits) -> list[str]:
    pieces = []
    while line:
        take = room
        while take > 1 and len(limits.escape_code(line[:take])) > room:
            take -= 1
        pieces.append(line[:take])
        line = line[take:]
    return pieces


@dataclass(frozen=True)
class Fitted:
    """One message of a fitted reply: the reply without its code, and its code blocks."""

    reply: Reply
    code_blocks: tuple[tuple[str, ...], ...] = ()


def _fit_fields(
    fields: tuple[tuple[str, str], ...], limits: Limits, budget: int
) -> tuple[tuple[tuple[str, str], ...], int]:
    """As many fields as the count and `budget` allow, the rest summed up in a last one."""
    esc = limits.escape
    kept: list[tuple[str, str]] = []
    used = 0
    for index, (name, value) in enumerate(fields):
        hidden = len(fields) - index
        last = index == limits.fields - 1 and hidden > 1
        name = shorten(name, limits.field_name_chars, esc)
        room = min(limits.field_value_chars, budget - used - _measure(name, esc) - 40)
        if last or room < 20:
            summary = (ELLIPSIS, str(more_line(hidden)))
            if used + sum(len(x) for x in summary) <= budget:
                kept.append(summary)
                used += sum(len(x) for x in summary)
            break
        value = shorten(value, room, esc)
        kept.append((name, value))
        used += _measure(name, esc) + _measure(value, esc)
    return tuple(kept), used


def fit_reply(reply: Reply, limits: Limits) -> list[Fitted]:
    """The reply shrunk to `limits`: the first message, then any code continuations.

    The first message's budget goes to the title, then the text, the fields and the list,
    in that order; code blocks fill what is left and continue in further messages.
    """
    esc = limits.escape
    title = shorten(reply.title, limits.title_chars, esc) if reply.title else None
    used_chars = _measure(title or "", esc)
    text = shorten(reply.text, min(limits.text_chars, limits.message_chars // 2), esc)
    used_chars += _measure(text, esc)
    fields, fields_chars = _fit_fields(
        reply.fields, limits, (limits.message_chars - used_chars) * 2 // 3
    )
    used_chars += fields_chars
    buttons = tuple(
        replace(b, label=shorten(b.label, limits.button_label_chars))
        for b in reply.buttons[: limits.buttons]
    )
    used_blocks = 1 if text else 0
    list_budget = min(limits.text_chars, limits.message_chars - used_chars)
    lines = _fit_list(reply.lines, max(list_budget, 0), esc)
    if lines:
        used_blocks += 1
        used_chars += sum(_measure(line, esc) + 1 for line in lines)
    head = Reply(
        text=text, tone=reply.tone, title=title, fields=fields, buttons=buttons, lines=lines
    )
    messages: list[tuple[Reply, list[tuple[str, ...]]]] = [(head, [])]
    if reply.code_tail and reply.code:
        room = min(limits.text_chars, limits.message_chars - used_chars) - limits.code_fence
        if used_blocks + 1 <= limits.blocks:
            block = _tail_block(reply.code, room, limits)
            if block:
                messages[0][1].append(block)
        return [Fitted(message, tuple(blocks)) for message, blocks in messages]
    for block in _code_blocks(reply.code, limits):
        size = sum(len(limits.escape_code(line)) + 1 for line in block) + limits.code_fence
        if used_blocks + 1 > limits.blocks or used_chars + size > limits.message_chars:
            messages.append((Reply(text="", tone=reply.tone), []))
            used_blocks, used_chars = 0, 0
        messages[-1][1].append(block)
        used_blocks += 1
        used_chars += size
    return [Fitted(message, tuple(blocks)) for message, blocks in messages]
