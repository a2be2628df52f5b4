"""``GET /v1/tasks/{id}`` throughput against a bare FastAPI endpoint on the same machine.

Target: the gateway sustains ≥ 50 % of the bare endpoint's requests/s. Both servers
run in their own process under the same uvicorn settings; one client process drives each in
turn with the same concurrency, so the client's own cost is the same on both sides.

    .venv/bin/python bench/task_read.py [--seconds 5] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from concurrency import ROOT, TOKEN, free_port


def start(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, *args], env={**os.environ, "PYTHONPATH": str(ROOT)})


def wait_up(base: str) -> None:
    for _ in range(200):
        try:
            httpx.get(f"{base}/healthz")
            return
        except httpx.TransportError:
            time.sleep(0.05)


async def load(url: str, headers: dict[str, str], seconds: float, concurrency: int) -> float:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(headers=headers, limits=limits, timeout=30) as client:
        await client.get(url)
        done = 0
        stop = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop:
                response = await client.get(url)
                assert response.status_code == 200, response.text
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    bench = str(ROOT / "bench")
    bare_port, gw_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as data_dir:
        bare = start([f"{bench}/_bare_app.py", str(bare_port)])
        gateway = start([f"{bench}/_sleep_gateway.py", data_dir, str(gw_port), "0.1"])
        try:
            wait_up(f"http://127.0.0.1:{bare_port}")
            wait_up(f"http://127.0.0.1:{gw_port}")
            headers = {"Authorization": f"Bearer {TOKEN}"}
            created = httpx.post(
                f"http://127.0.0.1:{gw_port}/generate-video",
                json={"prompt": "read me", "duration_ms": 1000, "fps": 8},
                headers=headers,
                timeout=30,
            ).json()
            task_url = f"http://127.0.0.1:{gw_port}/v1/tasks/{created['task_id']}"
            bare_rps = asyncio.run(
                load(f"http://127.0.0.1:{bare_port}/v1/tasks/x", {}, args.seconds, args.concurrency)
            )
            gw_rps = asyncio.run(load(task_url, headers, args.seconds, args.concurrency))
        finally:
            for proc in (bare, gateway):
                proc.terminate()
                proc.wait(timeout=30)
    print(
        f"\n{args.concurrency} concurrent keep-alive clients, {args.seconds:.0f} s each;"
        " target >= 50 %\n"
    )
    print(f"{'endpoint':<40} {'req/s':>8} {'share':>7}")
    print("-" * 57)
    print(f"{'bare FastAPI GET':<40} {bare_rps:>8.0f} {'100 %':>7}")
    print(f"{'gateway GET /v1/tasks/{id} (SQLite)':<40} {gw_rps:>8.0f} {gw_rps / bare_rps:>6.0%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
