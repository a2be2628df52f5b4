"""Relay a large streamed video into each storage backend: peak RSS growth and MB/s.

    python bench/storage_relay.py [--size-mb 1024] [--backends copy,local,oss,s3]

Each backend runs in a fresh child process (so imports and earlier runs do not count). The
source is an async generator of 1 MiB chunks, each a new ``bytes`` object as an HTTP download
would produce. ``copy`` is the baseline: the same stream written to a file with no storage
layer. Peak RSS growth is VmHWM after the relay minus VmRSS before it (VmHWM reset through
``/proc/self/clear_refs``). Servers run in their own processes: the OSS emulator
(``tests.emulators.oss``) and SeaweedFS (``weed mini``). Target: growth ≤ 64 MiB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MiB = 1024 * 1024
OSS_ID, OSS_SECRET, BUCKET = "bench-id", "bench-oss-secret-1", "bench-videos"
S3_ID, S3_SECRET = "bench-access", "bench-s3-secret-1"


def _rss(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(field)


async def source(total: int) -> AsyncIterator[bytes]:
    block = bytearray(os.urandom(MiB))
    sent = 0
    while sent < total:
        n = min(MiB, total - sent)
        block[0:8] = sent.to_bytes(8, "little")  # every chunk differs
        sent += n
        await asyncio.sleep(0)
        yield bytes(block[:n])


async def _copy(total: int, workdir: Path) -> None:
    path = workdir / "copy.bin"
    with path.open("wb") as fh:
        async for chunk in source(total):
            await asyncio.to_thread(fh.write, chunk)
    path.unlink()


def _build(backend: str, workdir: Path, endpoints: dict[str, str]) -> Any:
    from app.config import Settings
    from app.storage.registry import StorageDeps, build_storage

    data: dict[str, Any] = {"storage": {"backend": backend}}
    if backend == "oss":
        data["oss"] = {
            "endpoint": endpoints["oss"], "region": "cn-hangzhou", "bucket": BUCKET,
            "secret_id": OSS_ID, "secret_key": OSS_SECRET,
        }  # fmt: skip
    if backend == "s3":
        data["s3"] = {
            "endpoint_url": endpoints["s3"], "region": "us-east-1", "bucket": BUCKET,
            "access_key": S3_ID, "secret_key": S3_SECRET, "addressing_style": "path",
        }  # fmt: skip
    deps = StorageDeps(data_dir=workdir, public_base_url="http://127.0.0.1:8000")
    return build_storage(Settings.model_validate(data), deps)


def child(backend: str, total: int, workdir: Path, endpoints: dict[str, str]) -> dict[str, Any]:
    from app.storage.base import new_object_key

    storage = None if backend == "copy" else _build(backend, workdir, endpoints)
    key = new_object_key()

    async def run() -> None:
        if storage is None:
            await _copy(total, workdir)
        else:
            stored = await storage.put(key, source(total), size=total)
            assert stored.size == total
            await storage.delete(key)
            await storage.aclose()

    # Warm up thread pools and connections with a small object first.
    if storage is not None:
        asyncio.run(storage.put(key, source(MiB), size=MiB))
    Path("/proc/self/clear_refs").write_text("5")
    before = _rss("VmRSS")
    started = time.perf_counter()
    asyncio.run(run())
    seconds = time.perf_counter() - started
    return {
        "backend": backend,
        "seconds": seconds,
        "growth": _rss("VmHWM") - before,
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.args}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer")


def start_servers(backends: list[str], workdir: Path) -> tuple[dict[str, str], list[Any]]:
    endpoints: dict[str, str] = {}
    processes: list[Any] = []
    if "oss" in backends:
        port = _free_port()
        oss = subprocess.Popen(
            [sys.executable, "-m", "tests.emulators.oss", "--port", str(port), "--bucket", BUCKET,
             "--key", f"{OSS_ID}:{OSS_SECRET}", "--root", str(workdir / "oss")],
            cwd=ROOT, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        processes.append(oss)
        endpoints["oss"] = f"http://127.0.0.1:{port}"
        _wait_http(endpoints["oss"], oss)
    if "s3" in backends:
        import boto3
        from botocore.config import Config

        config = workdir / "s3.json"
        identity = {"name": "bench", "actions": ["Admin", "Read", "Write", "List"],
                    "credentials": [{"accessKey": S3_ID, "secretKey": S3_SECRET}]}  # fmt: skip
        config.write_text(json.dumps({"identities": [identity]}))
        (workdir / "weed").mkdir()
        names = [
            f"{server}.{port}"
            for server in ("master", "volume", "filer", "s3")
            for port in ("port", "port.grpc")
        ] + ["webdav.port"]
        ports = {name: _free_port() for name in names}
        admin = _free_port() % 20000 + 20000
        weed = subprocess.Popen(
            [str(Path(sys.executable).parent / "weed"), "mini", f"-dir={workdir / 'weed'}",
             "-ip=127.0.0.1", "-ip.bind=127.0.0.1", *(f"-{k}={v}" for k, v in ports.items()),
             f"-admin.port={admin}", f"-admin.port.grpc={admin + 10000}", "-s3.port.iceberg=0",
             "-s3.port.lance=0", "-master.telemetry=false", f"-s3.config={config}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        processes.append(weed)
        endpoints["s3"] = f"http://127.0.0.1:{ports['s3.port']}"
        _wait_http(endpoints["s3"], weed)
        client = boto3.client(
            "s3", endpoint_url=endpoints["s3"], region_name="us-east-1",
            aws_access_key_id=S3_ID, aws_secret_access_key=S3_SECRET,
            config=Config(s3={"addressing_style": "path"}),
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while True:
            try:
                client.create_bucket(Bucket=BUCKET)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
    return endpoints, processes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--backends", default="copy,local,oss,s3")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    parser.add_argument("--endpoints", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    total = args.size_mb * MiB
    if args.child:
        result = child(args.child, total, Path(args.workdir), json.loads(args.endpoints))
        print(json.dumps(result))
        return
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    workdir = Path(tempfile.mkdtemp(prefix="storage-relay-"))
    endpoints, processes = start_servers(backends, workdir)
    results = []
    try:
        for backend in backends:
            out = subprocess.run(
                [sys.executable, __file__, "--child", backend, "--size-mb", str(args.size_mb),
                 "--workdir", str(workdir), "--endpoints", json.dumps(endpoints)],
                check=True, capture_output=True, text=True, cwd=ROOT,
            )  # fmt: skip
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)
        shutil.rmtree(workdir, ignore_errors=True)
    base = next((r["seconds"] for r in results if r["backend"] == "copy"), None)
    print(f"relay of {args.size_mb} MiB, 1 MiB chunks, default part size 8 MiB, 3 in flight")
    print(f"{'backend':<8} {'seconds':>8} {'MB/s':>8} {'vs copy':>8} {'peak RSS growth':>16}")
    for r in results:
        mbps = total / 1e6 / r["seconds"]
        ratio = f"{base / r['seconds']:.2f}x" if base else "-"
        growth = r["growth"] / MiB
        flag = "" if growth <= 64 else "  (over 64 MiB target)"
        print(
            f"{r['backend']:<8} {r['seconds']:>8.2f} {mbps:>8.1f} {ratio:>8} "
            f"{growth:>12.1f} MiB{flag}"
        )


if __name__ == "__main__":
    main()
