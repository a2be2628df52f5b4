"""Finish-to-succeeded lag and status requests per second, with many Seedance jobs in flight.

    .venv/bin/python bench/poll_lag.py [--jobs 100 1000] [--job-s 12]

A real gateway process (``python -m app serve``, SQLite, local storage) against the Ark emulator
(in this process), jobs of ``--job-s`` seconds (1 s queued, the rest running). For each size, two
runs: polling only, and with Ark's callbacks (``[server] public_base_url`` set). Lag: from the
moment the emulator's job turned ``succeeded`` to the task's ``finished_at`` in the gateway's
database (the video downloaded and stored), same clock. Requests: status reads (GETs and list
calls) Ark received while jobs were in flight. Targets at 100 jobs: lag p95 ≤ 1.5 s, ≤ 5
status requests per second.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.emulators import ark
from tests.emulators.faults import Videos
from tests.emulators.serve import pattern_mp4
from tests.emulators.server import free_port, serve_in_thread
from tests.processes import GatewayProcess

TOKEN = "bench-token-0123456789"
ARK_KEY = "ark-bench-key-0123456789"
TERMINAL = ("succeeded", "failed", "cancelled")


async def create_all(base_url: str, jobs: int, tag: str) -> list[str]:
    limits = httpx.Limits(max_connections=20, max_keepalive_connections=0)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits) as client:
        gate = asyncio.Semaphore(20)

        async def one(n: int) -> str:
            async with gate:
                body = {"prompt": f"lag {tag} {n}", "duration_ms": 5000}
                response = await client.post("/v1/tasks", json=body, timeout=120)
                response.raise_for_status()
                return str(response.json()["id"])

        return list(await asyncio.gather(*(one(n) for n in range(jobs))))


def finished(db: Path) -> list[tuple[str, str, str | None, str | None, str | None]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
        return conn.execute(
            "SELECT id, status, provider_task_id, finished_at, generated_at FROM vgw_tasks"
        ).fetchall()


def wall(stored: str) -> float:
    return dt.datetime.fromisoformat(stored).replace(tzinfo=dt.UTC).timestamp()


def run(jobs: int, job_s: float, *, callbacks: bool, video: bytes, root: Path) -> dict[str, float]:
    state = ark.ArkState(
        api_key=ARK_KEY, videos=Videos(video), queued_s=1.0, running_s=max(0.1, job_s - 1.0)
    )
    with serve_in_thread(ark.create_app(state)) as ark_url:
        port = free_port()
        data = root / f"gw-{jobs}-{int(callbacks)}"
        server = {"log_level": "warning"}
        if callbacks:
            server["public_base_url"] = f"http://127.0.0.1:{port}"
        settings = {
            "auth": {"valid_tokens": f'["{TOKEN}"]'},
            "providers": {"default": "seedance"},
            "server": server,
            "seedance": {"base_url": ark_url, "api_key": ARK_KEY},
        }
        gateway = GatewayProcess(data, settings, port=port).start()
        try:
            offset = time.time() - time.monotonic()  # the emulator's clock → wall clock
            ids = asyncio.run(create_all(gateway.base_url, jobs, f"{jobs}-{callbacks}"))
            db = data / "gateway.db"
            deadline = time.monotonic() + job_s * 4 + jobs * 0.2 + 60
            rows = finished(db)
            while time.monotonic() < deadline:
                rows = finished(db)
                if sum(1 for row in rows if row[1] in TERMINAL) >= len(ids):
                    break
                time.sleep(0.5)
        finally:
            gateway.stop()
    lags, seen = [], []
    for _, status, job, ended, generated in rows:
        if status != "succeeded" or job is None or ended is None or generated is None:
            continue
        done_wall = state.finished_at(job) + offset
        lags.append(wall(ended) - done_wall)
        seen.append(wall(generated) - done_wall)
    first = min(t.created for t in state.jobs())
    last = max(state.finished_at(t.id) for t in state.jobs())
    per_second = state.reads_per_second(first, last)
    lags.sort()
    return {
        "succeeded": len(lags),
        "p50": statistics.median(lags) if lags else float("nan"),
        "p95": lags[int(0.95 * (len(lags) - 1))] if lags else float("nan"),
        "max": lags[-1] if lags else float("nan"),
        "seen_p50": statistics.median(seen) if seen else float("nan"),
        "seen_p95": sorted(seen)[int(0.95 * (len(seen) - 1))] if seen else float("nan"),
        "rps": sum(per_second) / len(per_second),
        "rps_max": max(per_second),
        "callbacks": len(state.callbacks_sent),
        "gets": state.gets,
        "lists": state.lists,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--job-s", type=float, default=12.0)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        video = pattern_mp4()
        for jobs in args.jobs:
            for callbacks in (False, True):
                result = run(jobs, args.job_s, callbacks=callbacks, video=video, root=root)
                rows.append((jobs, "callbacks" if callbacks else "polling", result))
    print(f"\nArk jobs of {args.job_s:.0f} s; targets at 100 jobs: lag p95 <= 1.5 s, <= 5 req/s\n")
    print("lag: job succeeded at Ark -> task succeeded (video stored); seen: -> status read saw it")
    print(
        f"{'jobs':>5} {'mode':<10} {'ok':>5} {'lag p50':>8} {'p95':>6} {'max':>6}"
        f" {'seen p50':>9} {'p95':>6} {'req/s':>6} {'max/s':>6}"
    )
    print("-" * 76)
    for jobs, mode, r in rows:
        print(
            f"{jobs:>5} {mode:<10} {r['succeeded']:>5.0f} {r['p50']:>8.2f} {r['p95']:>6.2f}"
            f" {r['max']:>6.2f} {r['seen_p50']:>9.2f} {r['seen_p95']:>6.2f}"
            f" {r['rps']:>6.2f} {r['rps_max']:>6.0f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
