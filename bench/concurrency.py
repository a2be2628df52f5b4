"""100 concurrent ``/generate-video`` calls against a provider that takes 2 s per job.

Target: wall time of 100 concurrent calls ≤ 1.2 × the time of one call (the seed's blocking
design takes ~100×). The gateway runs in its own process. Three clients, one after the other,
against a ``sleep`` provider: a minimal asyncio HTTP/1.1 client (so the client library's own
cost, on the same two cores, stays out of the gateway's number), httpx with fresh connections,
and httpx with a keep-alive pool (measured slower than fresh connections on these machines).
Then the same through the real Seedance adapter against the Ark emulator (jobs of the same
length; the emulator in a process of its own), polling only and with Ark's callbacks.

    .venv/bin/python bench/concurrency.py [--calls 100] [--seconds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.processes import GatewayProcess  # noqa: E402

ARK_KEY = "ark-bench-key-0123456789"
TOKEN = "bench-token-0123456789"
BODY = {"prompt": "benchmark", "duration_ms": 1000, "fps": 8}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def raw_post(host: str, port: int, path: str, body: bytes) -> int:
    """One HTTP/1.1 POST on a fresh connection with asyncio streams: a client that costs
    next to nothing, so the table measures the gateway rather than the client library."""
    reader, writer = await asyncio.open_connection(host, port)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    writer.write(head.encode() + body)
    await writer.drain()
    response = await reader.read()
    writer.close()
    await writer.wait_closed()
    return int(response.split(b" ", 2)[1])


async def raw_burst(base: str, calls: int) -> tuple[float, list[int]]:
    host, _, port = base.removeprefix("http://").partition(":")
    body = json.dumps(BODY).encode()
    started = time.perf_counter()
    codes = await asyncio.gather(
        *(raw_post(host, int(port), "/generate-video", body) for _ in range(calls))
    )
    return time.perf_counter() - started, list(codes)


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


def seedance_run(calls: int, seconds: float, *, callbacks: bool) -> tuple[float, float, list[int]]:
    """(one call, ``calls`` calls, status codes) through the Seedance adapter and the Ark
    emulator, which runs in a process of its own."""
    ark_port = free_port()
    emulator = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "_ark_emulator.py"), str(ark_port), ARK_KEY,
         str(seconds)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        ark_url = f"http://127.0.0.1:{ark_port}"
        wait_healthy(f"{ark_url}/videos/none")
        with tempfile.TemporaryDirectory() as data:
            port = free_port()
            server: dict[str, object] = {"log_level": "warning"}
            if callbacks:
                server["public_base_url"] = f"http://127.0.0.1:{port}"
            settings = {
                "auth": {"valid_tokens": f'["{TOKEN}"]'},
                "providers": {"default": "seedance"},
                "server": server,
                "seedance": {"base_url": ark_url, "api_key": ARK_KEY},
            }
            gateway = GatewayProcess(Path(data) / "gw", settings, port=port).start()
            try:
                asyncio.run(raw_burst(gateway.base_url, 2))  # warm up
                one, codes1 = asyncio.run(raw_burst(gateway.base_url, 1))
                many, codes = asyncio.run(raw_burst(gateway.base_url, calls))
            finally:
                gateway.stop()
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)
    return one, many, codes1 + codes


def wait_healthy(url: str) -> None:
    for _ in range(400):
        try:
            httpx.get(url)
            return
        except httpx.TransportError:
            time.sleep(0.05)


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
            single, codes1 = asyncio.run(raw_burst(base, 1))
            raw, codes_raw = asyncio.run(raw_burst(base, args.calls))
            fresh, codes_fresh = asyncio.run(burst(base, args.calls, keepalive=False))
            pooled, codes_pooled = asyncio.run(burst(base, args.calls, keepalive=True))
        finally:
            server.terminate()
            server.wait(timeout=30)

    codes = codes1 + codes_raw + codes_fresh + codes_pooled
    rows = [
        ("sleep: 1 call", 1, single, 1.0),
        (f"sleep: {args.calls} calls, asyncio client", args.calls, raw, raw / single),
        (f"sleep: {args.calls} calls, httpx, fresh", args.calls, fresh, fresh / single),
        (f"sleep: {args.calls} calls, httpx, keep-alive", args.calls, pooled, pooled / single),
    ]
    for callbacks in (False, True):
        one, many, seedance_codes = seedance_run(args.calls, args.seconds, callbacks=callbacks)
        codes += seedance_codes
        mode = "callbacks" if callbacks else "polling"
        rows.append((f"seedance ({mode}): 1 call", 1, one, 1.0))
        rows.append((f"seedance ({mode}): {args.calls} calls", args.calls, many, many / one))
    ok = all(code == 200 for code in codes)
    print(f"\nprovider job time {args.seconds:.1f} s; all answers 200: {ok}; target ratio <= 1.2\n")
    print(f"{'scenario':<42} {'calls':>6} {'wall s':>8} {'ratio':>7}")
    print("-" * 66)
    for name, calls, wall, ratio in rows:
        print(f"{name:<42} {calls:>6} {wall:>8.2f} {ratio:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
