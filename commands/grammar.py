"""The line grammar: `/fly <verb> [args…] [--flag value | --flag=value | --switch]`.

Words are split like a POSIX shell (quotes group words, backslash escapes), after turning the
curly quotes that Slack and phones insert into straight ones. Anything that cannot be parsed
raises `UsageError`, and nothing else.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field

from commands.errors import UsageError

MAX_LINE_LENGTH = 4000
_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'"})


@dataclass(frozen=True)
class ParsedLine:
    words: tuple[str, ...]  # positional words, the verb first
    flags: dict[str, str | None] = field(default_factory=dict)  # --x y -> {"x": "y"}; --x -> None


def split_words(line: str) -> list[str]:
    if len(line) > MAX_LINE_LENGTH:
        raise UsageError(f"That line is {len(line)} characters; the limit is {MAX_LINE_LENGTH}.")
    if "\x00" in line:
        raise UsageError("The line contains a NUL character.")
    text = line.translate(_QUOTES).strip()
    if text.startswith("/fly"):
        text = text[len("/fly") :]
    try:
        lexer = shlex.shlex(text, posix=True, punctuation_chars=False)
        lexer.whitespace_split = True
        lexer.commenters = ""
        return list(lexer)
    except ValueError as exc:  # "No closing quotation", "No escaped character"
        raise UsageError(f"Could not read the line: {str(exc).lower()}.") from None


def parse_line(line: str, switches: frozenset[str] = frozenset()) -> ParsedLine:
    """Split a line into positional words and flags.

    A flag named in `switches` takes no value; any other flag takes the next word (or its
    `=value`). `--` ends the flags, so a positional word may start with dashes after it.
    """
    return parse_tokens(split_words(line), switches)


def parse_tokens(tokens: list[str], switches: frozenset[str] = frozenset()) -> ParsedLine:
    words: list[str] = []
    flags: dict[str, str | None] = {}
    index = 0
    only_positional = False
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if only_positional or not token.startswith("--") or token == "--":
            if token == "--" and not only_positional:
                only_positional = True
                continue
            words.append(token)
            continue
        name, sep, value = token[2:].partition("=")
        name = name.strip().lower()
        if not name or not all(c.isalnum() or c in "-_" for c in name):
            raise UsageError(f"'{token}' is not a valid flag.")
        if name in flags:
            raise UsageError(f"The flag --{name} is given twice.")
        if name in switches:
            if sep:
                raise UsageError(f"--{name} takes no value.")
            flags[name] = None
        elif sep:
            flags[name] = value
        elif index < len(tokens) and not tokens[index].startswith("--"):
            flags[name] = tokens[index]
            index += 1
        else:
            raise UsageError(f"--{name} needs a value, e.g. --{name}=VALUE.")
    return ParsedLine(words=tuple(words), flags=flags)
