"""100 concurrent ``/generate-video`` calls against a provider that takes 2 s per job.

Target (DESIGN.md): wall time of 100 concurrent calls ≤ 1.2 × the time of one call (the seed's
blocking design takes ~100×). The gateway runs in its own process; the client opens fresh
connections (measured faster than a pool of ~100 kept-alive ones on these machines) and, for
comparison, a keep-alive pool.

    .venv/bin/python bench/concurrency.py [--calls 100] [--seconds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token-0123456789"
BODY = {"prompt": "benchmark", "duration_ms": 1000, "fps": 8}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def burst(base: str, calls: int, *, keepalive: bool) -> tuple[float, list[int]]:
    pool = calls + 10 if keepalive else 0
    limits = httpx.Limits(max_connections=calls + 10, max_keepalive_connections=pool)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(timeout=120, limits=limits, headers=headers) as client:
        started = time.perf_counter()
        responses = await asyncio.gather(
            *(client.post(f"{base}/generate-video", json=BODY) for _ in range(calls))
        )
        return time.perf_counter() - started, [r.status_code for r in responses]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data_dir:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        server = subprocess.Popen(
            [
                sys.executable,
                str(ROOT / "bench" / "_sleep_gateway.py"),
                data_dir,
                str(port),
                str(args.seconds),
            ],
            env=env,
        )
        try:
            for _ in range(200):
                try:
                    if httpx.get(f"{base}/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.05)
            asyncio.run(burst(base, 5, keepalive=False))  # warm up
            single, codes1 = asyncio.run(burst(base, 1, keepalive=False))
            fresh, codes_fresh = asyncio.run(burst(base, args.calls, keepalive=False))
            pooled, codes_pooled = asyncio.run(burst(base, args.calls, keepalive=True))
        finally:
            server.terminate()
            server.wait(timeout=30)

    ok = all(code == 200 for code in codes1 + codes_fresh + codes_pooled)
    rows = [
        ("1 call", 1, single, 1.0),
        (f"{args.calls} calls, fresh connections", args.calls, fresh, fresh / single),
        (f"{args.calls} calls, keep-alive pool", args.calls, pooled, pooled / single),
    ]
    print(f"\nprovider job time {args.seconds:.1f} s; all answers 200: {ok}; target ratio <= 1.2\n")
    print(f"{'scenario':<36} {'calls':>6} {'wall s':>8} {'ratio':>7}")
    print("-" * 60)
    for name, calls, wall, ratio in rows:
        print(f"{name:<36} {calls:>6} {wall:>8.2f} {ratio:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
