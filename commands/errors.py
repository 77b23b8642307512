"""Errors a command reports to the person who typed it, in one line."""

from __future__ import annotations


class CommandError(Exception):
    """A refusal or failure the user can act on.

    The text is shown to the user as is: never put a secret in it.
    """


class UsageError(CommandError):
    """The line could not be understood: unknown verb, missing or bad argument, bad flag."""


class PermissionDenied(CommandError):
    """The person lacks the role the command needs on that scope."""
