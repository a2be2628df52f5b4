"""Command line: ``python -m app serve`` (default), ``tokens …``, ``db upgrade|current``,
``webhooks secret``, ``storage lifecycle`` and ``batch FILE.csv --out RESULTS.csv``.
``--config`` works before or after the command."""

from __future__ import annotations

import argparse
import asyncio
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
    return load_settings(getattr(args, "config", None), overrides=overrides)


def serve(args: argparse.Namespace) -> int:
    from app.tls import warm_up

    warm_up()  # alongside the imports below
    import uvicorn

    from app.logs import setup_logging
    from app.main import create_app, dev_token_path, ensure_dev_token

    settings = _load(args)
    setup_logging(settings.server.log_level, settings.server.log_format)
    if not settings.auth.valid_tokens:
        token, created = ensure_dev_token(settings)
        if created:
            # Shown once, when it is made, so a new user can call the API; never logged.
            print(
                f"\n  Dev token (kept in {dev_token_path(settings)}):\n\n    {token}\n\n"
                f"  curl -H 'Authorization: Bearer {token}' \\\n"
                f"       -H 'Content-Type: application/json' \\\n"
                f'       -d \'{{"prompt": "a cat playing piano"}}\' \\\n'
                f"       {settings.server.base_url()}/generate-video\n",
                flush=True,
            )
        else:
            print(f"\n  Dev token: kept in {dev_token_path(settings)}\n", flush=True)
    uvicorn.run(
        # A server's startup objects (modules, schemas, clients) live as long as it does:
        # frozen once it is ready, the collector's full passes no longer walk them.
        create_app(settings, freeze_heap=True),
        host=settings.server.host,
        port=settings.server.port,
        log_level=settings.server.log_level,
        timeout_graceful_shutdown=10,
        access_log=False,  # ours (app.access) leaves out query strings and their signatures
        # X-Forwarded-* are believed from [server] trusted_proxies only (app.urls), not from
        # uvicorn's default of 127.0.0.1.
        proxy_headers=False,
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


def _duration_s(text: str) -> float:
    """``90``, ``90s``, ``15m``, ``24h``, ``7d`` → seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    value = text.strip().lower()
    scale = units.get(value[-1:])
    number = value[:-1] if scale is not None else value
    try:
        seconds = float(number) * (scale or 1)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (e.g. 30m, 24h)") from exc
    if seconds < 0:
        raise argparse.ArgumentTypeError("a duration cannot be negative")
    return seconds


def tokens_command(args: argparse.Namespace) -> int:
    """``tokens create|list|rotate|revoke|update``: the same service as ``/v1/admin/tokens``."""
    from app.db.migrate import upgrade
    from app.main import token_hasher
    from app.tasks.store import TaskStore
    from app.tenants.principal import TokenLimits
    from app.tenants.tokens import TokenService, TokenStore

    settings = _load(args)
    url = settings.database_url()
    upgrade(url)  # the CLI may run before the first gateway start

    async def run() -> int:
        store = TokenStore.from_url(url)
        tasks = TaskStore.from_url(url)
        try:
            service = TokenService(store, token_hasher(settings), counts=tasks)
            return await _tokens(service, args, TokenLimits)
        finally:
            await store.aclose()
            await tasks.aclose()

    return asyncio.run(run())


def _limit_args(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "requests_per_s": args.rate,
        "burst": args.burst,
        "max_active_tasks": args.max_active,
        "tasks_per_day": args.tasks_per_day,
    }


def _providers_arg(value: str | None) -> list[str] | None:
    return None if value is None else [p for p in value.split(",") if p.strip()]


async def _tokens(service: Any, args: argparse.Namespace, limits_type: Any) -> int:
    action = args.tokens_command
    if action == "create":
        record, token = await service.create(
            args.name,
            admin=args.admin,
            limits=limits_type(**_limit_args(args)),
            providers=_providers_arg(args.providers),
        )
        print(f"Token for {record.name} (shown once; store it now):\n\n    {token}\n")
        return 0
    if action == "rotate":
        record, token = await service.rotate(args.name, grace_s=args.grace)
        grace = (
            f"the previous token works until {record.previous_until:%Y-%m-%d %H:%M:%S} UTC"
            if record.previous_until
            else "the previous token no longer works"
        )
        print(f"New token for {record.name} (shown once; {grace}):\n\n    {token}\n")
        return 0
    if action == "revoke":
        record = await service.revoke(args.name)
        print(f"revoked {record.name} (every replica refuses it within the token cache time)")
        return 0
    if action == "update":
        limits = {k: v for k, v in _limit_args(args).items() if v is not None}
        for key in args.default or []:
            limits[key.replace("-", "_")] = None
        record = await service.update(
            args.name,
            limits=limits,
            providers=(None if args.providers == "all" else _providers_arg(args.providers))
            if args.providers is not None
            else False,
            admin=args.admin,
        )
        print(f"updated {record.name}")
        return 0
    rows = []
    for record in await service.listing():
        usage = await service.usage(record) or {}
        public = record.public()
        rows.append(
            [
                public["name"] + (" (admin)" if public["admin"] else ""),
                public["status"],
                _show(public["requests_per_s"]) + "/s" + f" burst {_show(public['burst'])}",
                _show(public["max_active_tasks"]) + f" (now {usage.get('active_tasks', '?')})",
                _show(public["tasks_per_day"]) + f" (today {usage.get('tasks_today', '?')})",
                ",".join(public["providers"] or ["all"]),
                (public["last_used_at"] or "never")[:19],
            ]
        )
    header = ["NAME", "STATUS", "RATE", "MAX ACTIVE", "PER DAY", "PROVIDERS", "LAST USED"]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))
    return 0


def _show(value: Any) -> str:
    return "default" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def _add_limit_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rate", type=float, help="requests per second (0: off)")
    parser.add_argument("--burst", type=int, help="requests at once")
    parser.add_argument("--max-active", type=int, help="queued + running tasks (0: off)")
    parser.add_argument("--tasks-per-day", type=int, help="tasks per UTC day (0: off)")


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

    def config_flag(sub: argparse.ArgumentParser) -> None:
        # SUPPRESS: a sub-command's own --config must not reset one given before it.
        sub.add_argument("--config", help=argparse.SUPPRESS, default=argparse.SUPPRESS)

    serve_cmd = commands.add_parser("serve", help="run the HTTP gateway (default)")
    config_flag(serve_cmd)
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
        config_flag(sub)
        sub.set_defaults(func=func)

    hooks_cmd = commands.add_parser("webhooks", help="completion callbacks")
    hooks_sub = hooks_cmd.add_subparsers(dest="webhooks_command", required=True)
    secret_cmd = hooks_sub.add_parser(
        "secret", help="print the key webhook-signature headers are made with"
    )
    config_flag(secret_cmd)
    secret_cmd.set_defaults(func=webhooks_secret)
    tokens_cmd = commands.add_parser("tokens", help="managed tokens: create, list, rotate, revoke")
    tokens_sub = tokens_cmd.add_subparsers(dest="tokens_command", required=True)
    create = tokens_sub.add_parser("create", help="a new tenant and its token (printed once)")
    create.add_argument("--name", required=True)
    create.add_argument("--admin", action="store_true", help="may read metrics and all tasks")
    create.add_argument("--providers", help="comma-separated allow-list (default: all)")
    _add_limit_flags(create)
    listing = tokens_sub.add_parser("list", help="names, limits, usage, last use (no tokens)")
    rotate = tokens_sub.add_parser("rotate", help="a new token; the old one works for --grace")
    rotate.add_argument("name")
    rotate.add_argument(
        "--grace", type=_duration_s, default=0.0, help="e.g. 30m, 24h (default: 0, at once)"
    )
    revoke = tokens_sub.add_parser("revoke", help="the token stops working")
    revoke.add_argument("name")
    update = tokens_sub.add_parser("update", help="change limits, providers or admin")
    update.add_argument("name")
    update.add_argument("--providers", help="comma-separated allow-list, or 'all'")
    update.add_argument("--admin", action=argparse.BooleanOptionalAction, default=None)
    update.add_argument(
        "--default",
        action="append",
        choices=["requests-per-s", "burst", "max-active-tasks", "tasks-per-day"],
        help="use the [limits] default for this limit again",
    )
    _add_limit_flags(update)
    for sub in (create, listing, rotate, revoke, update):
        config_flag(sub)
        sub.set_defaults(func=tokens_command)

    from app.batches.cli import add_parser as add_batch_parser

    add_batch_parser(commands).set_defaults(func=batch)

    storage_cmd = commands.add_parser("storage", help="object storage maintenance")
    storage_sub = storage_cmd.add_subparsers(dest="storage_command", required=True)
    lifecycle = storage_sub.add_parser(
        "lifecycle", help="archive objects after N days; abort stale multipart uploads"
    )
    config_flag(lifecycle)
    lifecycle.add_argument("--days", type=int, default=30)
    lifecycle.add_argument("--dry-run", action="store_true")
    lifecycle.set_defaults(func=storage_lifecycle)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    if args.command is None:
        args = parser.parse_args([*argv, "serve"])
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
