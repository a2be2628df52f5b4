"""Command line: ``python -m app serve`` (default), ``db upgrade|current``,
``webhooks secret``, ``storage lifecycle`` and ``batch FILE.csv --out RESULTS.csv``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from app.config import ConfigError, Settings, load_settings
from app.errors import AppError


def _load(args: argparse.Namespace) -> Settings:
    overrides: dict[str, dict[str, Any]] = {"server": {}}
    if getattr(args, "host", None):
        overrides["server"]["host"] = args.host
    if getattr(args, "port", None):
        overrides["server"]["port"] = args.port
    return load_settings(args.config, overrides=overrides)


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.logs import setup_logging
    from app.main import configured_tokens, create_app, dev_token_path

    settings = _load(args)
    setup_logging(settings.server.log_level)
    if not settings.auth.valid_tokens:
        token = configured_tokens(settings)[0]
        # Shown once on the console so a new user can call the API; never logged.
        print(
            f"\n  Dev token (kept in {dev_token_path(settings)}):\n\n    {token}\n\n"
            f"  curl -H 'Authorization: Bearer {token}' \\\n"
            f"       -H 'Content-Type: application/json' \\\n"
            f'       -d \'{{"prompt": "a cat playing piano"}}\' \\\n'
            f"       {settings.server.base_url()}/generate-video\n",
            flush=True,
        )
    uvicorn.run(
        create_app(settings),
        host=settings.server.host,
        port=settings.server.port,
        log_level=settings.server.log_level,
        timeout_graceful_shutdown=10,
        access_log=False,  # ours (app.access) leaves out query strings and their signatures
    )
    return 0


def storage_lifecycle(args: argparse.Namespace) -> int:
    from app.storage.lifecycle import run_lifecycle

    settings = _load(args)
    for line in run_lifecycle(settings, days=args.days, dry_run=args.dry_run):
        print(line)
    return 0


def db_upgrade(args: argparse.Namespace) -> int:
    from app.db.migrate import upgrade

    settings = _load(args)
    before, after = upgrade(settings.database_url())
    if before == after:
        print(f"database schema is up to date ({after})")
    else:
        print(f"database schema upgraded: {before or 'empty'} -> {after}")
    return 0


def db_current(args: argparse.Namespace) -> int:
    from app.db.migrate import current_revision, head_revision

    settings = _load(args)
    current, head = current_revision(settings.database_url()), head_revision()
    print(f"current: {current or 'empty'}; newest: {head}")
    return 0 if current == head else 1


def webhooks_secret(args: argparse.Namespace) -> int:
    import asyncio

    from app.db.migrate import upgrade
    from app.tasks.outbox import resolve_secret
    from app.tasks.store import TaskStore

    settings = _load(args)
    configured = settings.webhooks.secret

    async def read() -> str:
        store = TaskStore.from_url(settings.database_url())
        try:
            return await resolve_secret(
                store, configured.get_secret_value() if configured else None
            )
        finally:
            await store.aclose()

    upgrade(settings.database_url())
    # Printed on request only: receivers need it to verify the webhook-signature header.
    print(asyncio.run(read()))
    return 0


def batch(args: argparse.Namespace) -> int:
    import httpx
    from rich.console import Console

    from app.batches.cli import BatchCliError, run

    settings = _load(args)
    console = Console(soft_wrap=True)  # commands it prints stay copy-pasteable
    try:
        return run(args, settings, console)
    except BatchCliError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except httpx.HTTPError as exc:
        print(f"error: cannot talk to the gateway: {exc}", file=sys.stderr)
        return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m app", description="Dify Video Gateway")
    parser.add_argument("--config", help="config.ini path (default: $VGW_CONFIG or ./config.ini)")
    commands = parser.add_subparsers(dest="command")

    serve_cmd = commands.add_parser("serve", help="run the HTTP gateway (default)")
    serve_cmd.add_argument("--config", help=argparse.SUPPRESS)
    serve_cmd.add_argument("--host")
    serve_cmd.add_argument("--port", type=int)
    serve_cmd.set_defaults(func=serve)

    db_cmd = commands.add_parser("db", help="the task database's schema")
    db_sub = db_cmd.add_subparsers(dest="db_command", required=True)
    for name, func, text in (
        ("upgrade", db_upgrade, "apply the schema migrations (also done at start-up)"),
        ("current", db_current, "show the schema revision; exit 1 if not the newest"),
    ):
        sub = db_sub.add_parser(name, help=text)
        sub.add_argument("--config", help=argparse.SUPPRESS)
        sub.set_defaults(func=func)

    hooks_cmd = commands.add_parser("webhooks", help="completion callbacks")
    hooks_sub = hooks_cmd.add_subparsers(dest="webhooks_command", required=True)
    secret_cmd = hooks_sub.add_parser(
        "secret", help="print the key webhook-signature headers are made with"
    )
    secret_cmd.add_argument("--config", help=argparse.SUPPRESS)
    secret_cmd.set_defaults(func=webhooks_secret)

    from app.batches.cli import add_parser as add_batch_parser

    add_batch_parser(commands).set_defaults(func=batch)

    storage_cmd = commands.add_parser("storage", help="object storage maintenance")
    storage_sub = storage_cmd.add_subparsers(dest="storage_command", required=True)
    lifecycle = storage_sub.add_parser(
        "lifecycle", help="archive objects after N days; abort stale multipart uploads"
    )
    lifecycle.add_argument("--config", help=argparse.SUPPRESS)
    lifecycle.add_argument("--days", type=int, default=30)
    lifecycle.add_argument("--dry-run", action="store_true")
    lifecycle.set_defaults(func=storage_lifecycle)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args([*(argv or sys.argv[1:]), "serve"])
    try:
        result: int = args.func(args)
        return result
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except AppError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
