"""The async-stream → blocking-SDK bridge, with a hand-written fake target."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.errors import UnavailableError
from app.storage._bridge import iter_parts, relay

pytestmark = pytest.mark.anyio


class FakeTarget:
    """Records calls; ``gate`` (when given) holds every part upload until released."""

    def __init__(self, *, gate: threading.Event | None = None, fail_part: int = 0) -> None:
        self.gate = gate
        self.fail_part = fail_part
        self.lock = threading.Lock()
        self.in_flight = 0
        self.peak = 0
        self.parts: dict[int, bytearray] = {}
        self.calls: list[str] = []
        self.stored: bytes | None = None

    def put_object(self, data: bytes | bytearray) -> None:
        self.calls.append("put")
        self.stored = bytes(data)

    def create_upload(self) -> str:
        self.calls.append("create")
        return "upload-1"

    def upload_part(self, upload_id: str, number: int, data: bytearray) -> int:
        with self.lock:
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            if self.gate is not None:
                self.gate.wait(timeout=10)
            if number == self.fail_part:
                raise ConnectionError(f"part {number} failed")
            self.parts[number] = data
            return number
        finally:
            with self.lock:
                self.in_flight -= 1

    def complete_upload(self, upload_id: str, parts: list[int], size: int) -> None:
        self.calls.append(f"complete:{parts}")
        self.stored = b"".join(self.parts[n] for n in parts)
        assert len(self.stored) == size

    def abort_upload(self, upload_id: str) -> None:
        self.calls.append("abort")

    def delete_object(self) -> None:
        self.calls.append("delete")
        self.stored = None


async def chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.fixture
def executor() -> ThreadPoolExecutor:
    pool = ThreadPoolExecutor(max_workers=8)
    yield pool  # type: ignore[misc]
    pool.shutdown(wait=True)


async def test_iter_parts_cuts_equal_parts_whatever_the_chunking() -> None:
    data = bytes(range(256)) * 40  # 10240 bytes
    for chunk in (1, 7, 1000, 4096, 20000):
        parts = [p async for p in iter_parts(chunks(data, chunk), 3000)]
        assert [len(p) for p in parts] == [3000, 3000, 3000, 1240]
        assert b"".join(parts) == data


async def test_small_stream_is_one_put(executor: ThreadPoolExecutor) -> None:
    target = FakeTarget()
    result = await relay(
        chunks(b"x" * 2500, 100),
        target,
        executor=executor,
        part_size=1000,
        threshold=3000,
        max_in_flight=2,
    )
    assert target.calls == ["put"]
    assert (result.size, result.parts) == (2500, 0)
    assert result.sha256 == hashlib.sha256(b"x" * 2500).hexdigest()


async def test_large_stream_is_multipart_in_order(executor: ThreadPoolExecutor) -> None:
    data = bytes(range(256)) * 50  # 12800 bytes
    target = FakeTarget()
    result = await relay(
        chunks(data, 333),
        target,
        executor=executor,
        part_size=1000,
        threshold=1000,
        max_in_flight=3,
        expected_size=len(data),
    )
    assert target.calls[0] == "create"
    assert target.calls[-1] == f"complete:{list(range(1, 14))}"
    assert target.stored == data
    assert (result.parts, result.sha256) == (13, hashlib.sha256(data).hexdigest())


async def test_parts_in_flight_are_bounded(executor: ThreadPoolExecutor) -> None:
    gate = threading.Event()
    target = FakeTarget(gate=gate)
    consumed = 0

    async def counting() -> AsyncIterator[bytes]:
        nonlocal consumed
        for _ in range(10):
            consumed += 1
            yield b"p" * 1000

    task = asyncio.create_task(
        relay(
            counting(), target, executor=executor, part_size=1000, threshold=1000, max_in_flight=2
        )
    )
    while target.in_flight < 2:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # give a runaway reader the chance to read ahead
    # Two parts uploading, one more read and waiting for a slot: memory is bounded.
    assert target.in_flight == 2
    assert consumed <= 3
    gate.set()
    result = await task
    assert result.parts == 10
    assert target.peak == 2


async def test_failed_part_aborts_and_reraises(executor: ThreadPoolExecutor) -> None:
    target = FakeTarget(fail_part=3)
    with pytest.raises(ConnectionError, match="part 3"):
        await relay(
            chunks(b"z" * 10000, 1000),
            target,
            executor=executor,
            part_size=1000,
            threshold=1000,
            max_in_flight=2,
        )
    assert target.calls[0] == "create"
    assert target.calls[-1] == "abort"
    assert not any(call.startswith("complete") for call in target.calls)


async def test_size_too_large_fails_before_reading_everything(
    executor: ThreadPoolExecutor,
) -> None:
    target = FakeTarget()
    read = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal read
        while True:
            read += 1000
            yield b"e" * 1000

    with pytest.raises(UnavailableError, match="size mismatch"):
        await relay(
            endless(),
            target,
            executor=executor,
            part_size=1000,
            threshold=1000,
            max_in_flight=2,
            expected_size=5000,
        )
    assert read <= 6000
    assert target.calls[-1] == "abort"


async def test_cancellation_during_single_put_deletes_the_object(
    executor: ThreadPoolExecutor,
) -> None:
    started, release = threading.Event(), threading.Event()

    class SlowPut(FakeTarget):
        def put_object(self, data: bytes | bytearray) -> None:
            started.set()
            release.wait(timeout=10)
            super().put_object(data)

    target = SlowPut()
    task = asyncio.create_task(
        relay(
            chunks(b"s" * 10, 5),
            target,
            executor=executor,
            part_size=1000,
            threshold=1000,
            max_in_flight=1,
        )
    )
    while not started.is_set():
        await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.sleep(0.05)
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert target.calls == ["put", "delete"]
    assert target.stored is None
