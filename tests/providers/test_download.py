"""Streaming a provider's result URL: bounded chunks, verified size, broken downloads."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from fastapi import FastAPI, Request
from starlette.responses import Response

from app.errors import ProviderError
from app.providers.download import download_client, open_url_stream
from app.tls import tls_context
from tests.emulators.faults import Videos, generated_bytes
from tests.emulators.server import free_port, serve_in_thread

pytestmark = pytest.mark.anyio


@pytest.fixture
def videos() -> Iterator[tuple[str, Videos]]:
    store = Videos(size=3 * 1024 * 1024 + 17)
    app = FastAPI()

    @app.get("/videos/{name}")
    async def video(name: str, request: Request) -> Response:
        return await store.serve(request)

    with serve_in_thread(app) as url:
        yield f"{url}/videos/v.mp4", store


async def test_streams_in_bounded_chunks_with_the_announced_size(
    videos: tuple[str, Videos], http: httpx.AsyncClient
) -> None:
    url, store = videos
    sizes = []
    received = bytearray()
    async with open_url_stream(http, url, provider="p", chunk_size=256 * 1024) as stream:
        assert stream.size == store.size
        async for chunk in stream:
            sizes.append(len(chunk))
            received += chunk
    assert max(sizes) <= 256 * 1024
    assert bytes(received) == generated_bytes(store.size or 0)


async def test_a_download_that_breaks_midway_is_retryable(
    videos: tuple[str, Videos], http: httpx.AsyncClient
) -> None:
    url, store = videos
    store.break_next()
    with pytest.raises(ProviderError) as info:
        async with open_url_stream(http, url, provider="p") as stream:
            async for _ in stream:
                pass
    assert info.value.retryable and "download" in info.value.message


async def test_an_expired_url_is_not_retryable(
    videos: tuple[str, Videos], http: httpx.AsyncClient
) -> None:
    url, store = videos
    store.expired = True
    with pytest.raises(ProviderError) as info:
        async with open_url_stream(http, url, provider="p"):
            pass
    assert not info.value.retryable and "403" in info.value.message


async def test_an_unreachable_url_is_retryable(http: httpx.AsyncClient) -> None:
    with pytest.raises(ProviderError) as info:
        async with open_url_stream(http, f"http://127.0.0.1:{free_port()}/v.mp4", provider="p"):
            pass
    assert info.value.retryable


async def test_a_short_body_without_transport_error_is_caught() -> None:
    """A body shorter than Content-Length (as a lying proxy may send) fails the size check."""

    async def body() -> AsyncIterator[bytes]:
        yield b"12345"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, headers={"content-length": "10"}, content=body())

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(ProviderError) as info:
            async with open_url_stream(client, "http://p.test/v", provider="p") as stream:
                async for _ in stream:
                    pass
    assert info.value.retryable and "5 of 10" in info.value.message


async def test_errors_of_the_consumer_keep_their_kind(
    videos: tuple[str, Videos], http: httpx.AsyncClient
) -> None:
    url, _ = videos
    with pytest.raises(httpx.ConnectError):
        async with open_url_stream(http, url, provider="p"):
            raise httpx.ConnectError("the storage upload failed")


async def test_the_download_client_opens_a_connection_per_url_and_keeps_none() -> None:
    """Result URLs are read once each: kept connections would only lengthen the pool's scans
    (see ``app.providers.download``). A keep-alive client against the same server reuses its
    connection, so the server does keep connections alive."""
    app = FastAPI()
    peers: list[int] = []

    @app.get("/v.mp4")
    async def video(request: Request) -> Response:
        assert request.client is not None
        peers.append(request.client.port)
        return Response(b"video bytes", media_type="video/mp4")

    async def fetch_twice(client: httpx.AsyncClient, url: str) -> None:
        for _ in range(2):
            async with open_url_stream(client, url, provider="p") as stream:
                assert b"".join([chunk async for chunk in stream]) == b"video bytes"

    with serve_in_thread(app) as base:
        async with httpx.AsyncClient() as kept:
            await fetch_twice(kept, f"{base}/v.mp4")
        async with download_client(tls_context()) as downloads:
            await fetch_twice(downloads, f"{base}/v.mp4")
    assert peers[0] == peers[1]  # the ordinary client reused its connection
    assert len({peers[1], peers[2], peers[3]}) == 3  # the download client never did
