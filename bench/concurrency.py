"""100 concurrent ``/generate-video`` calls against a provider that takes 2 s per job.

Target: wall time of 100 concurrent calls ≤ 1.2 × the time of one call (the seed's blocking
design takes ~100×). The gateway runs in its own process. Three clients, one after the other,
against a ``sleep`` provider: a minimal asyncio HTTP/1.1 client (so the client library's own
cost, on the same two cores, stays out of the gateway's number), httpx with fresh connections,
and httpx with a keep-alive pool (measured slower than fresh connections on these machines).
Then the same through the real Seedance adapter against the Ark emulator (jobs of the same
length; the emulator in a process of its own), polling only and with Ark's callbacks.

Each burst starts on an idle gateway, as the single call does: after a burst the gateway still
makes its videos' posters (an ffmpeg each, after the answers went out), and the next burst
waits until it has used no CPU for half a second. Every row is the median of ``--repeat``
bursts (3): on two shared cores one burst varies by a tenth of its time from run to run.

    .venv/bin/python bench/concurrency.py [--calls 100] [--seconds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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


def seedance_run(
    calls: int, seconds: float, *, callbacks: bool, repeat: int
) -> tuple[float, float, list[int]]:
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
                pid = gateway.process.pid if gateway.process else 0
                base = gateway.base_url
                asyncio.run(raw_burst(base, 2))  # warm up
                one, codes1 = median_of(repeat, pid, lambda: asyncio.run(raw_burst(base, 1)))
                many, codes = median_of(repeat, pid, lambda: asyncio.run(raw_burst(base, calls)))
            finally:
                gateway.stop()
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)
    return one, many, codes1 + codes


def wait_idle(pid: int, *, quiet_s: float = 0.5, timeout_s: float = 60.0) -> None:
    """Until process ``pid`` (and the children it waited for) used no CPU for ``quiet_s``."""

    def ticks() -> int:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime

    deadline = time.monotonic() + timeout_s
    last = ticks()
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = ticks()
        if now == last:
            return
        last = now


def median_of(
    repeat: int, pid: int, run: Callable[[], tuple[float, list[int]]]
) -> tuple[float, list[int]]:
    """The median wall time of ``repeat`` runs, each from an idle gateway; every status code."""
    walls: list[float] = []
    codes: list[int] = []
    for _ in range(repeat):
        wait_idle(pid)
        wall, got = run()
        walls.append(wall)
        codes += got
    return statistics.median(walls), codes


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
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    calls, repeat = args.calls, args.repeat

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
            pid = server.pid
            single, codes1 = median_of(repeat, pid, lambda: asyncio.run(raw_burst(base, 1)))
            raw, codes_raw = median_of(repeat, pid, lambda: asyncio.run(raw_burst(base, calls)))
            fresh, codes_fresh = median_of(
                repeat, pid, lambda: asyncio.run(burst(base, calls, keepalive=False))
            )
            pooled, codes_pooled = median_of(
                repeat, pid, lambda: asyncio.run(burst(base, calls, keepalive=True))
            )
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
        one, many, seedance_codes = seedance_run(
            args.calls, args.seconds, callbacks=callbacks, repeat=repeat
        )
        codes += seedance_codes
        mode = "callbacks" if callbacks else "polling"
        rows.append((f"seedance ({mode}): 1 call", 1, one, 1.0))
        rows.append((f"seedance ({mode}): {args.calls} calls", args.calls, many, many / one))
    ok = all(code == 200 for code in codes)
    print(
        f"\nprovider job time {args.seconds:.1f} s; median of {repeat} bursts per row; "
        f"all answers 200: {ok}; target ratio <= 1.2\n"
    )
    print(f"{'scenario':<42} {'calls':>6} {'wall s':>8} {'ratio':>7}")
    print("-" * 66)
    for name, calls, wall, ratio in rows:
        print(f"{name:<42} {calls:>6} {wall:>8.2f} {ratio:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
