"""``python -m app batch ideas.csv --out results.csv``: a CSV batch from a terminal.

Uploads the file to a gateway (``POST /v1/batches``), follows the batch with a progress bar
until every row has ended, and writes the results sheet. The batch runs on the gateway: Ctrl-C
stops only the following, and ``--batch-id`` follows it again later. When the output is not a
terminal (a log, a CI job) the progress is printed as one line per change instead of a bar.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from app.config import Settings

POLL_S = 2.0
ENDED = ("succeeded", "failed", "cancelled")


class BatchCliError(Exception):
    """Something the user must fix (no token, a refused file, an unknown batch)."""


def _token(args: argparse.Namespace, settings: Settings | None) -> str:
    if args.token:
        return str(args.token)
    if os.environ.get("VGW_TOKEN"):
        return os.environ["VGW_TOKEN"]
    if settings is not None:
        if settings.auth.valid_tokens:
            return settings.auth.valid_tokens[0].get_secret_value()
        dev = settings.data_dir / "dev-token"
        if dev.is_file():
            return dev.read_text().strip()
    raise BatchCliError("no token: pass --token or set VGW_TOKEN")


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        message = response.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        message = response.text[:300]
    raise BatchCliError(f"the gateway answered {response.status_code}: {message}")


def _done(counts: dict[str, int]) -> int:
    return sum(counts.get(key, 0) for key in ENDED)


def _summary(counts: dict[str, int]) -> str:
    return (
        f"{_done(counts)}/{counts['total']} ended: {counts['succeeded']} succeeded, "
        f"{counts['failed']} failed, {counts['cancelled']} cancelled, "
        f"{counts['running']} running, {counts['queued']} queued"
    )


def _follow(client: httpx.Client, batch_id: str, console: Console, poll_s: float) -> dict[str, Any]:
    def read() -> dict[str, Any]:
        response = client.get(f"/v1/batches/{batch_id}")
        _raise_for(response)
        data: dict[str, Any] = response.json()
        return data

    batch = read()
    if not console.is_terminal:
        last = ""
        while True:
            line = _summary(batch["counts"])
            if line != last:
                console.print(line, highlight=False)
                last = line
            if batch["status"] != "running":
                return batch
            time.sleep(poll_s)
            batch = read()
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task(batch_id, total=batch["counts"]["total"], detail="")
        while True:
            counts = batch["counts"]
            detail = f"✓ {counts['succeeded']}  ✗ {counts['failed'] + counts['cancelled']}"
            progress.update(bar, completed=_done(counts), detail=detail)
            if batch["status"] != "running":
                break
            time.sleep(poll_s)
            batch = read()
    console.print(_summary(batch["counts"]), highlight=False)
    return batch


def run(args: argparse.Namespace, settings: Settings | None, console: Console) -> int:
    """The command; returns the exit code (130 after Ctrl-C, the batch still running)."""
    base_url = (args.url or (settings.server.base_url() if settings else "")).rstrip("/")
    if not base_url:
        base_url = "http://127.0.0.1:8000"
    out = Path(args.out)
    headers = {"Authorization": f"Bearer {_token(args, settings)}"}
    batch_id: str | None = args.batch_id
    with httpx.Client(base_url=base_url, headers=headers, timeout=120) as client:
        try:
            if batch_id is None:
                if not args.file:
                    raise BatchCliError("give a CSV file, or --batch-id to follow a batch")
                path = Path(args.file)
                with path.open("rb") as fh:
                    response = client.post(
                        "/v1/batches", files={"file": (path.name, fh, "text/csv")}
                    )
                _raise_for(response)
                batch_id = str(response.json()["id"])
                total = response.json()["counts"]["total"]
                console.print(f"batch {batch_id}: {total} rows, running on {base_url}")
            else:
                console.print(f"following batch {batch_id} on {base_url}")
            batch = _follow(client, batch_id, console, args.poll_s)
            response = client.get(f"/v1/batches/{batch_id}/results.csv")
            _raise_for(response)
            out.write_bytes(response.content)
        except KeyboardInterrupt:
            if batch_id is None:
                console.print("stopped before the batch was created")
                return 130
            console.print(
                f"\nstopped following; batch {batch_id} keeps running on the gateway. "
                f"Follow it again with:\n  python -m app batch --batch-id {batch_id} "
                f"--out {out}" + (f" --url {args.url}" if args.url else ""),
                highlight=False,
            )
            return 130
    console.print(f"results: {out} (batch {batch['status']})", highlight=False)
    return 0 if batch["status"] == "completed" else 1


def add_parser(commands: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        "batch", help="run a CSV of prompts as a batch on a gateway and save the results"
    )
    parser.add_argument("file", nargs="?", help="the CSV (header: prompt, aspect_ratio, ...)")
    parser.add_argument("--out", required=True, help="where to write the results CSV")
    parser.add_argument("--url", help="the gateway (default: this config's public base URL)")
    parser.add_argument("--token", help="a gateway token (default: $VGW_TOKEN, the config's)")
    parser.add_argument("--batch-id", help="follow a batch started earlier instead of a file")
    parser.add_argument("--poll-s", type=float, default=POLL_S, help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    return parser
