"""The worker's URL guard: image_url never reaches loopback, private or link-local addresses,
and a failed fetch says only that the image could not be fetched."""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from worker.errors import ValidationFailedError
from worker.images import NOT_FETCHED, fetch_image
from worker.netguard import BlockedAddressError, GuardedBackend, UrlPolicy, guarded_client

REFUSED_HOSTS = [
    "127.0.0.1",
    "2130706433",
    "0x7f000001",
    "127.1",
    "0177.0.0.1",
    "localhost",
    "LOCALHOST.",
    "::1",
    "::ffff:127.0.0.1",
    "::ffff:a9fe:a9fe",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "224.0.0.1",
    "0.0.0.0",
    "fc00::1",
    "fe80::1",
    "loopback.test",  # resolves to 127.0.0.1 (table below)
]


async def _table(host: str, port: int) -> list[str]:
    return {"loopback.test": ["127.0.0.1"], "public.test": ["93.184.216.34"]}[host]


@pytest.mark.parametrize("host", REFUSED_HOSTS)
def test_refused_hosts(host: str) -> None:
    backend = GuardedBackend(UrlPolicy(), resolver=_table)
    with pytest.raises(BlockedAddressError):
        asyncio.run(backend.resolve(host, 80))


def test_public_and_allowed_hosts() -> None:
    assert asyncio.run(GuardedBackend(UrlPolicy(), resolver=_table).resolve("public.test", 80)) == [
        "93.184.216.34"
    ]
    allowed = GuardedBackend(UrlPolicy.from_allowlist(["10.0.0.0/8"]), resolver=_table)
    assert asyncio.run(allowed.resolve("10.1.2.3", 80)) == ["10.1.2.3"]


class _Recording(SimpleHTTPRequestHandler):
    seen: list[str]

    def do_GET(self) -> None:
        self.seen.append(self.path)
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def image_server(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    (tmp_path / "red.png").write_bytes(b"\x89PNG fake bytes")
    seen: list[str] = []
    handler = functools.partial(type("H", (_Recording,), {"seen": seen}), directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def _fetch(policy: UrlPolicy, url: str) -> bytes:
    async def run() -> bytes:
        async with guarded_client(policy, timeout=httpx.Timeout(5.0)) as client:
            return await fetch_image(client, url, max_bytes=1_000_000)

    return asyncio.run(run())


def test_the_default_refuses_loopback_without_a_request(
    image_server: tuple[str, list[str]],
) -> None:
    base, seen = image_server
    for url in (f"{base}/red.png", base.replace("127.0.0.1", "2130706433") + "/red.png"):
        with pytest.raises(ValidationFailedError) as caught:
            _fetch(UrlPolicy(), url)
        assert caught.value.reason == NOT_FETCHED
    assert seen == []


def test_allowed_fetches_and_failures_say_nothing_more(
    image_server: tuple[str, list[str]],
) -> None:
    base, seen = image_server
    policy = UrlPolicy.from_allowlist(["127.0.0.1"])
    assert _fetch(policy, f"{base}/red.png") == b"\x89PNG fake bytes"
    with pytest.raises(ValidationFailedError) as caught:
        _fetch(policy, f"{base}/missing.png")
    assert caught.value.reason == NOT_FETCHED  # not "HTTP 404": no oracle
    assert seen == ["/red.png", "/missing.png"]
