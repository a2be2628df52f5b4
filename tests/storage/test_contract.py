"""The storage contract: every backend (local, oss, s3) passes the same tests, against real
servers (see ``conftest.py``). A new backend joins by adding itself to the ``backend`` fixture.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator

import httpx
import pytest

from app.errors import UnavailableError, ValidationError
from app.storage.base import new_object_key
from tests.storage.conftest import Backend

pytestmark = pytest.mark.anyio


async def stream(data: bytes, chunk: int = 64 * 1024 + 7) -> AsyncIterator[bytes]:
    """``data`` in odd-sized chunks, yielding to the loop between them like a download does."""
    for start in range(0, len(data), chunk):
        await asyncio.sleep(0)
        yield data[start : start + chunk]


async def failing_stream(data: bytes, fail_after: int) -> AsyncIterator[bytes]:
    sent = 0
    async for chunk in stream(data):
        if sent >= fail_after:
            raise RuntimeError("provider connection reset")
        sent += len(chunk)
        yield chunk


class TestStorageContract:
    async def test_streamed_put_of_several_parts_reads_back(
        self, backend: Backend, http: httpx.AsyncClient
    ) -> None:
        data = os.urandom(backend.part_size * 2 + 12345)
        key = new_object_key()
        stored = await backend.storage.put(key, stream(data), size=len(data))
        assert stored.key == key
        assert stored.size == len(data)
        assert stored.sha256 == hashlib.sha256(data).hexdigest()
        assert stored.content_type == "video/mp4"
        assert await backend.storage.exists(key)
        response = await http.get(await backend.storage.url(key, expires_s=600))
        assert response.status_code == 200
        assert response.content == data
        assert response.headers["content-type"] == "video/mp4"

    async def test_small_put_without_size(self, backend: Backend, http: httpx.AsyncClient) -> None:
        key = new_object_key()
        stored = await backend.storage.put(key, stream(b"tiny video"))
        assert (stored.size, stored.sha256) == (10, hashlib.sha256(b"tiny video").hexdigest())
        response = await http.get(await backend.storage.url(key, expires_s=600))
        assert response.content == b"tiny video"

    async def test_empty_stream_stores_an_empty_object(self, backend: Backend) -> None:
        key = new_object_key()
        stored = await backend.storage.put(key, stream(b""), size=0)
        assert stored.size == 0
        assert await backend.storage.exists(key)

    async def test_missing_key_does_not_exist(self, backend: Backend) -> None:
        assert not await backend.storage.exists(new_object_key())

    async def test_url_expires(self, backend: Backend, http: httpx.AsyncClient) -> None:
        key = new_object_key()
        await backend.storage.put(key, stream(b"short-lived"))
        url = await backend.storage.url(key, expires_s=1)
        # Signed URLs carry whole seconds: two seconds later this one is past its expiry.
        await asyncio.sleep(2.1)
        response = await http.get(url)
        assert response.status_code == 403
        fresh = await http.get(await backend.storage.url(key, expires_s=600))
        assert fresh.status_code == 200

    async def test_tampered_url_is_refused(self, backend: Backend, http: httpx.AsyncClient) -> None:
        key = new_object_key()
        other = new_object_key()
        await backend.storage.put(key, stream(b"mine"))
        await backend.storage.put(other, stream(b"someone else's"))
        url = await backend.storage.url(key, expires_s=600)
        # The same signature on another object must not open it.
        forged = url.replace(key.rsplit("/", 1)[1], other.rsplit("/", 1)[1])
        assert forged != url
        assert (await http.get(forged)).status_code == 403

    async def test_delete(self, backend: Backend, http: httpx.AsyncClient) -> None:
        key = new_object_key()
        await backend.storage.put(key, stream(b"to be deleted"))
        url = await backend.storage.url(key, expires_s=600)
        await backend.storage.delete(key)
        assert not await backend.storage.exists(key)
        assert (await http.get(url)).status_code in (403, 404)
        assert backend.leftovers(key) == []
        await backend.storage.delete(key)  # deleting twice is fine

    async def test_failure_midway_leaves_nothing(self, backend: Backend) -> None:
        data = os.urandom(backend.part_size * 3)
        key = new_object_key()
        with pytest.raises(RuntimeError, match="connection reset"):
            await backend.storage.put(
                key, failing_stream(data, fail_after=backend.part_size * 2 + 1), size=len(data)
            )
        assert not await backend.storage.exists(key)
        assert backend.leftovers(key) == []

    async def test_failure_in_the_first_part_leaves_nothing(self, backend: Backend) -> None:
        key = new_object_key()
        with pytest.raises(RuntimeError):
            await backend.storage.put(key, failing_stream(os.urandom(300_000), fail_after=1))
        assert backend.leftovers(key) == []

    async def test_cancelled_put_leaves_nothing(self, backend: Backend) -> None:
        key = new_object_key()
        reached = asyncio.Event()

        async def stalls() -> AsyncIterator[bytes]:
            async for chunk in stream(os.urandom(backend.part_size * 2 + 1)):
                yield chunk
            reached.set()
            await asyncio.Event().wait()  # the provider stalls; the client cancels the video
            yield b""

        task = asyncio.create_task(backend.storage.put(key, stalls()))
        await reached.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert backend.leftovers(key) == []

    @pytest.mark.parametrize("delta", [1, -1])
    async def test_size_mismatch_is_rejected(self, backend: Backend, delta: int) -> None:
        data = os.urandom(backend.part_size + 100)
        key = new_object_key()
        with pytest.raises(UnavailableError, match="size mismatch"):
            await backend.storage.put(key, stream(data), size=len(data) + delta)
        assert not await backend.storage.exists(key)
        assert backend.leftovers(key) == []

    @pytest.mark.parametrize("key", ["", "/abs.mp4", "videos/../../etc/passwd", "a//b.mp4"])
    async def test_unsafe_keys_are_refused(self, backend: Backend, key: str) -> None:
        with pytest.raises(ValidationError):
            await backend.storage.put(key, stream(b"x"))

    async def test_check_passes_when_healthy(self, backend: Backend) -> None:
        await backend.storage.check()
