"""Feed an async byte stream to a synchronous object-store SDK, off the event loop.

The SDKs (``oss2``, ``boto3``) are blocking, and a provider video can be a gigabyte. So:

* the stream is cut into equal ``part_size`` parts (the last one may be shorter: R2 insists on
  equal parts, OSS and S3 accept them);
* a stream that ends within ``threshold`` bytes goes up as one PUT, anything longer as a
  multipart upload with at most ``max_in_flight`` parts uploading at once, each in a worker
  thread of the backend's own executor;
* SHA-256 is computed part by part in that executor too (hashing 1 GiB on the loop would stall
  every other request);
* memory stays near ``part_size * (max_in_flight + 1)``: the next part is read while the others
  upload, and nothing else is buffered;
* any failure (the source raising midway, an SDK error, a size mismatch, cancellation) waits for
  the parts still uploading and then aborts the multipart upload, so nothing is left behind.

A backend supplies an :class:`UploadTarget` (five blocking calls for one object key) and calls
:func:`relay`.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from app.errors import UnavailableError, ValidationError

logger = logging.getLogger(__name__)

P = TypeVar("P")
R = TypeVar("R")


class UploadTarget(Protocol[P]):
    """The blocking SDK calls for one object; each runs in a worker thread.

    ``P`` is whatever the SDK needs back at completion for each part (an ETag, a PartInfo).
    ``complete`` must verify the result (size, checksum) and raise if it does not match.
    """

    def put_object(self, data: bytes | bytearray) -> None: ...

    def create_upload(self) -> str: ...

    def upload_part(self, upload_id: str, number: int, data: bytearray) -> P: ...

    def complete_upload(self, upload_id: str, parts: list[P], size: int) -> None: ...

    def abort_upload(self, upload_id: str) -> None: ...

    def delete_object(self) -> None: ...


@dataclass(frozen=True, kw_only=True)
class RelayResult:
    size: int
    sha256: str
    parts: int  # 0 for a single PUT


async def iter_parts(chunks: AsyncIterable[bytes], part_size: int) -> AsyncIterator[bytearray]:
    """Re-cut ``chunks`` into ``part_size`` pieces (the last one shorter); skips empty chunks.

    Each part is one buffer filled in place: a part costs its size once, not once for the
    chunks and again for joining them.
    """
    if part_size <= 0:
        raise ValueError("part_size must be positive")
    buffer: bytearray | None = None
    have = 0
    async for chunk in chunks:
        view = memoryview(chunk)
        while len(view):
            if buffer is None:
                buffer, have = bytearray(part_size), 0
            take = min(part_size - have, len(view))
            buffer[have : have + take] = view[:take]
            view = view[take:]
            have += take
            if have == part_size:
                yield buffer
                buffer = None
    if buffer is not None:
        del buffer[have:]
        yield buffer


class _Runner:
    """Runs blocking calls in the backend's executor."""

    def __init__(self, executor: Executor | None) -> None:
        self._executor = executor

    async def __call__(self, func: Callable[..., R], *args: object) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(func, *args))


class _SizeGuard:
    """Counts bytes and refuses a stream that disagrees with the announced size."""

    def __init__(self, expected: int | None) -> None:
        self.expected = expected
        self.total = 0

    def add(self, n: int) -> None:
        self.total += n
        if self.expected is not None and self.total > self.expected:
            raise UnavailableError(f"size mismatch: expected {self.expected} bytes, received more")

    def finish(self) -> None:
        if self.expected is not None and self.total != self.expected:
            raise UnavailableError(
                f"size mismatch: expected {self.expected} bytes, received {self.total}"
            )


async def relay(
    chunks: AsyncIterable[bytes],
    target: UploadTarget[P],
    *,
    executor: Executor | None,
    part_size: int,
    threshold: int,
    max_in_flight: int,
    expected_size: int | None = None,
) -> RelayResult:
    """Upload ``chunks`` through ``target``; all or nothing. See the module docstring."""
    if max_in_flight < 1:
        raise ValueError("max_in_flight must be at least 1")
    run = _Runner(executor)
    digest = hashlib.sha256()
    guard = _SizeGuard(expected_size)
    parts = iter_parts(chunks, part_size)
    head: list[bytearray] = []  # parts read before we know whether the object is "small"
    try:
        async for part in parts:
            guard.add(len(part))
            await run(digest.update, part)
            head.append(part)
            if guard.total > threshold:
                break
        else:
            guard.finish()
            await _publish(run, target, target.put_object, b"".join(head))
            return RelayResult(size=guard.total, sha256=digest.hexdigest(), parts=0)
        upload = _Multipart(target, run, max_in_flight)
        count = await upload.run(head, parts, digest, guard)
        return RelayResult(size=guard.total, sha256=digest.hexdigest(), parts=count)
    finally:
        await _aclose(parts)


class _Multipart(Generic[P]):
    def __init__(self, target: UploadTarget[P], run: _Runner, max_in_flight: int) -> None:
        self._target = target
        self._run = run
        self._max = max_in_flight
        self._pending: set[asyncio.Future[None]] = set()
        self._done: dict[int, P] = {}

    async def run(
        self,
        head: list[bytearray],
        rest: AsyncIterator[bytearray],
        digest: hashlib._Hash,
        guard: _SizeGuard,
    ) -> int:
        upload_id = await self._run(self._target.create_upload)
        number = 0
        try:
            for part in head:
                number += 1
                await self._start(upload_id, number, part)
            head.clear()
            async for part in rest:
                guard.add(len(part))
                await self._run(digest.update, part)
                number += 1
                await self._start(upload_id, number, part)
            guard.finish()
            while self._pending:
                await self._reap(asyncio.ALL_COMPLETED)
            parts = [self._done[n] for n in range(1, number + 1)]
            await _publish(
                self._run, self._target, self._target.complete_upload, upload_id, parts, guard.total
            )
        except BaseException:
            # A cancelled task (the client cancelled the video) still aborts the upload, and waits
            # for it: repeated cancellation (anyio cancel scopes) must not leave parts behind.
            # The wait is bounded by the SDK's own timeouts.
            await _finish(asyncio.ensure_future(self._abort(upload_id)))
            raise
        return number

    async def _start(self, upload_id: str, number: int, data: bytearray) -> None:
        while len(self._pending) >= self._max:
            await self._reap(asyncio.FIRST_COMPLETED)
        future = asyncio.ensure_future(self._upload(upload_id, number, data))
        self._pending.add(future)

    async def _upload(self, upload_id: str, number: int, data: bytearray) -> None:
        self._done[number] = await self._run(self._target.upload_part, upload_id, number, data)

    async def _reap(self, when: str) -> None:
        done, self._pending = await asyncio.wait(self._pending, return_when=when)
        # Several parts may fail together: look at every one (an exception nobody retrieved is
        # reported as a bug), then raise the first.
        failures = [e for f in done if not f.cancelled() and (e := f.exception()) is not None]
        if failures:
            raise failures[0]

    async def _abort(self, upload_id: str) -> None:
        # Parts still uploading would race the abort; let their threads finish first.
        if self._pending:
            await asyncio.wait(self._pending)
            for future in self._pending:
                if not future.cancelled():
                    future.exception()  # consume: already reported by the first failure
        try:
            await self._run(self._target.abort_upload, upload_id)
        except Exception:
            logger.warning("could not abort multipart upload %s", upload_id, exc_info=True)


async def _finish(future: asyncio.Future[R]) -> tuple[R, bool]:
    """Await ``future`` to the end even if cancelled; say whether a cancellation came."""
    cancelled = False
    while True:
        try:
            return await asyncio.shield(future), cancelled
        except asyncio.CancelledError:
            if future.done():  # the call itself was cancelled, not us
                raise
            cancelled = True


async def _publish(
    run: _Runner, target: UploadTarget[P], func: Callable[..., None], *args: object
) -> None:
    """Run the call that makes the object visible. If the task is cancelled meanwhile, let the
    call finish (a thread cannot be stopped) and delete the object: cancelled means nothing."""
    _, cancelled = await _finish(asyncio.ensure_future(run(func, *args)))
    if cancelled:
        await _finish(asyncio.ensure_future(run(target.delete_object)))
        raise asyncio.CancelledError


async def _aclose(iterator: AsyncIterator[bytearray]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


def check_key(key: str) -> str:
    """Refuse keys that are not plain relative object names (the same rule as ``local``)."""
    parts = key.split("/")
    if (
        not key
        or len(key.encode()) > 1023
        or key.startswith("/")
        or "\\" in key
        or "\0" in key
        or any(part in ("", ".", "..") for part in parts)
    ):
        raise ValidationError(f"invalid object key: {key!r}")
    return key


def new_executor(name: str, max_in_flight: int) -> ThreadPoolExecutor:
    """The backend's own threads: SDK calls never queue behind unrelated ``to_thread`` work."""
    return ThreadPoolExecutor(max_workers=max(8, 4 * max_in_flight), thread_name_prefix=name)
