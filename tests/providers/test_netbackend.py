"""The providers' clients on asyncio's own transports (``app.providers.netbackend``), against
real servers: plain and TLS, keep-alive and a server that closes idle connections, bodies
larger than the read-ahead bound both ways, and each failure as the exception httpx gives
with its default network layer. Every test runs on asyncio's loop and on uvloop, which
``python -m app serve`` uses."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from fastapi import FastAPI, Request
from starlette.responses import Response, StreamingResponse

from app.providers.download import download_client
from app.providers.http import never_connected, provider_client
from app.providers.netbackend import HIGH_WATER, AsyncioStream
from app.tls import tls_context
from tests.emulators.server import free_port, serve_in_thread

pytestmark = pytest.mark.anyio

BIG = 5 * 1024 * 1024 + 3  # well over the read-ahead bound
assert BIG > 4 * HIGH_WATER


@pytest.fixture(params=["asyncio", "uvloop"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return ("asyncio", {"use_uvloop": request.param == "uvloop"})


def body_of(size: int) -> bytes:
    return bytes(i % 251 for i in range(size))


def make_app() -> tuple[FastAPI, list[int]]:
    app = FastAPI()
    peers: list[int] = []

    @app.middleware("http")
    async def note_peer(request: Request, call_next: Any) -> Any:
        assert request.client is not None
        peers.append(request.client.port)
        return await call_next(request)

    @app.get("/small")
    async def small() -> Response:
        return Response(b"hello", media_type="text/plain")

    @app.get("/big")
    async def big() -> Response:
        async def chunks() -> AsyncIterator[bytes]:
            data = body_of(BIG)
            for start in range(0, len(data), 64 * 1024):
                yield data[start : start + 64 * 1024]

        return StreamingResponse(chunks(), media_type="application/octet-stream")

    @app.post("/digest")
    async def digest(request: Request) -> Response:
        hasher = hashlib.sha256()
        size = 0
        async for chunk in request.stream():
            hasher.update(chunk)
            size += len(chunk)
            await asyncio.sleep(0)  # a reader slower than the writer
        return Response(f"{size} {hasher.hexdigest()}", media_type="text/plain")

    @app.get("/slow")
    async def slow() -> Response:
        await asyncio.sleep(2)
        return Response(b"late")

    return app, peers


@pytest.fixture
def server() -> Iterator[tuple[str, list[int]]]:
    app, peers = make_app()
    # Idle connections closed by the server after 0.3 s, as servers do (uvicorn's default: 5).
    with serve_in_thread(app, timeout_keep_alive=0.3) as url:
        yield url, peers


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def tls_server(ca: trustme.CA, tmp_path: Path) -> Iterator[str]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    key_file, cert_file = tmp_path / "key.pem", tmp_path / "cert.pem"
    cert.private_key_pem.write_to_path(str(key_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    app, _ = make_app()
    with serve_in_thread(app, ssl_keyfile=str(key_file), ssl_certfile=str(cert_file)) as url:
        yield url


def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


async def test_requests_and_bodies_both_ways_arrive_whole(server: tuple[str, list[int]]) -> None:
    url, _ = server
    async with provider_client(tls_context()) as client:
        small = await client.get(f"{url}/small")
        assert (small.status_code, small.content) == (200, b"hello")
        # The client is on this module's streams, not anyio's.
        assert isinstance(small.extensions["network_stream"], AsyncioStream)

        received = hashlib.sha256()
        size = 0
        async with client.stream("GET", f"{url}/big") as response:
            async for chunk in response.aiter_raw():
                if not size:  # a slow reader: more arrives than is read ahead, reading pauses
                    await asyncio.sleep(0.3)
                received.update(chunk)
                size += len(chunk)
        assert size == BIG
        assert received.hexdigest() == hashlib.sha256(body_of(BIG)).hexdigest()

        upload = body_of(BIG)
        answer = await client.post(f"{url}/digest", content=upload)
        assert answer.text == f"{BIG} {hashlib.sha256(upload).hexdigest()}"


async def test_a_kept_connection_is_reused_until_the_server_closes_it(
    server: tuple[str, list[int]],
) -> None:
    url, peers = server
    async with provider_client(tls_context()) as client:
        await client.get(f"{url}/small")
        await client.get(f"{url}/small")
        assert peers[0] == peers[1]
        await asyncio.sleep(0.8)  # the server closes the idle connection meanwhile
        # Known to be closed without asking the kernel: a new connection, and no error.
        third = await client.get(f"{url}/small")
        assert third.status_code == 200
        assert peers[2] != peers[1]


async def test_the_download_client_keeps_no_connection(server: tuple[str, list[int]]) -> None:
    url, peers = server
    async with download_client(tls_context()) as client:
        for _ in range(2):
            response = await client.get(f"{url}/small")
            assert isinstance(response.extensions["network_stream"], AsyncioStream)
    assert peers[0] != peers[1]


async def test_a_slow_answer_is_a_read_timeout(server: tuple[str, list[int]]) -> None:
    url, _ = server
    async with provider_client(tls_context()) as client:
        with pytest.raises(httpx.ReadTimeout):
            await client.get(f"{url}/slow", timeout=httpx.Timeout(5.0, read=0.2))


async def test_a_refused_connection_never_connected() -> None:
    async with provider_client(tls_context()) as client:
        with pytest.raises(httpx.ConnectError) as raised:
            await client.get(f"http://127.0.0.1:{free_port()}/")
    assert never_connected(raised.value)  # so even a create may be sent again


async def test_a_connection_dropped_mid_answer_is_a_read_error() -> None:
    """A server that answers with a length and closes half way: the body is cut short."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve_once() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)

    thread = threading.Thread(target=serve_once, daemon=True)
    thread.start()
    try:
        async with provider_client(tls_context()) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await client.get(f"http://127.0.0.1:{port}/")
    finally:
        thread.join(timeout=5)
        listener.close()


async def test_tls_is_verified_and_carries_the_exchange(ca: trustme.CA, tls_server: str) -> None:
    async with provider_client(trusting(ca)) as client:
        response = await client.get(f"{tls_server}/small")
        assert response.content == b"hello"
        stream = response.extensions["network_stream"]
        assert isinstance(stream, AsyncioStream)
        assert stream.get_extra_info("ssl_object") is not None
        received = await client.get(f"{tls_server}/big")
        assert hashlib.sha256(received.content).digest() == hashlib.sha256(body_of(BIG)).digest()
    async with provider_client(ssl.create_default_context()) as stranger:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await stranger.get(f"{tls_server}/small")


async def test_a_tls_handshake_that_never_answers_is_a_connect_timeout() -> None:
    listener = socket.create_server(("127.0.0.1", 0))  # accepts, then says nothing
    port = listener.getsockname()[1]
    try:
        async with provider_client(tls_context()) as client:
            with pytest.raises(httpx.ConnectTimeout):
                await client.get(
                    f"https://127.0.0.1:{port}/", timeout=httpx.Timeout(5.0, connect=0.3)
                )
    finally:
        listener.close()
