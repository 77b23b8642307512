"""The `flybot` command line: part of the composition root, so it may start adapters."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from bot import logs
from bot.settings import Settings, SettingsError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flybot", description="Chat-ops for Fly.io.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser(
        "run",
        help="serve the chat adapters whose tokens are set (Slack, Discord), the scheduler, and "
        "/healthz and /metrics on FLYBOT_HTTP_HOST:FLYBOT_HTTP_PORT",
    )
    shell = sub.add_parser("shell", help="a terminal chat: each line is a /fly command")
    shell.add_argument("--as", dest="user", default="you", help="who is typing (default: you)")
    sandbox = sub.add_parser(
        "sandbox", help="the shell against the built-in Fly simulator, with demo projects"
    )
    sandbox.add_argument(
        "--as",
        dest="user",
        default="alice",
        help="who is typing: alice (admin), bob (deployer), carol (approver)",
    )
    simulator = sub.add_parser("simulator", help="run the Fly simulator alone on loopback")
    simulator.add_argument("--port", type=int, default=4280, help="port (default 4280)")
    simulator.add_argument("--seed", default="demo", help="'demo' (default) or 'empty'")
    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    db_sub.add_parser("upgrade", help="apply the database migrations")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "run":
        # Start-up allocates a lot and frees little, and the cyclic collector's passes over a
        # heap growing past 100k objects were a good part of a cold start: it is off until
        # serve() has frozen what the imports and the services made (bot/runtime/run.py).
        gc.disable()
    try:
        return _main(args)
    finally:
        gc.enable()


def _main(args: argparse.Namespace) -> int:
    from bot.projects import ConfigError  # with the tables: after the collector is off

    # A service says what it does (info); the terminal commands only what went wrong.
    quiet = logging.INFO if args.command == "run" else logging.WARNING
    logs.configure(logging.DEBUG if args.verbose else quiet)
    try:
        settings = Settings.from_env()
        logs.REDACTOR.hold(settings.secret_values())
        if args.command == "db":
            from bot.store import make_engine, upgrade
            from bot.store.migrate import current_revision

            engine = make_engine(settings.database_url)
            upgrade(engine)
            print(f"database at revision {current_revision(engine)}")
            return 0
        if args.command == "run":
            return _run(settings)
        if args.command == "shell":
            from adapters.shell.session import run_shell
            from bot.runtime import Runtime

            history = Path.home() / ".flybot_history"
            asyncio.run(run_shell(Runtime.from_settings(settings), args.user, history_file=history))
            return 0
        if args.command == "sandbox":
            from bot.runtime.sandbox import run_sandbox

            return run_sandbox(args.user)
        if args.command == "simulator":
            from bot.fly.simulator import cli_main

            return cli_main(port=args.port, seed=None if args.seed == "empty" else args.seed)
    except (SettingsError, ConfigError) as exc:
        print(f"flybot: {exc}", file=sys.stderr)
        return 2
    return 1


def _run(settings: Settings) -> int:
    from bot.runtime.adapters import anything_configured, nothing_to_run

    if not anything_configured(settings):
        print(f"flybot: {nothing_to_run(settings)}", file=sys.stderr)
        return 2
    from adapters.discord.errors import DiscordSetupError
    from adapters.slack.app import SlackSetupError
    from adapters.slack.redact import install_on_handlers
    from bot.runtime import Runtime
    from bot.runtime.run import serve
    from bot.store.migrate import MigrationFailed, upgrade_in_child

    install_on_handlers()  # secret values never reach a log line, whatever the level
    try:
        upgrade_in_child(settings.database_url)
    except MigrationFailed as exc:
        print(f"flybot: {exc}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(Runtime.from_settings(settings), settings))
    except (SlackSetupError, DiscordSetupError) as exc:
        print(f"flybot: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the port is taken, or the host is not ours
        print(
            f"flybot: cannot listen on {settings.http_host}:{settings.http_port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
