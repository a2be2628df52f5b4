"""The storage seam: where finished videos live and how clients download them.

Every backend (``local``, ``oss``, ``s3``) implements :class:`Storage` and passes the shared
contract tests in ``tests/storage/test_contract.py``: a streamed put with size and checksum, a
signed URL that works and expires, ``exists`` and ``delete``; a put that fails midway leaves
nothing behind. Synchronous SDKs run off the event loop.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


@dataclass(frozen=True, kw_only=True)
class StoredObject:
    key: str
    size: int
    sha256: str
    content_type: str


class Storage(Protocol):
    name: str

    async def put(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str = "video/mp4",
        size: int | None = None,
    ) -> StoredObject:
        """Stream ``chunks`` into ``key``; verify ``size`` when given. All or nothing."""
        ...

    async def url(self, key: str, *, expires_s: int) -> str:
        """A URL a client can GET for ``expires_s`` seconds (or a stable public URL)."""
        ...

    def owns(self, url: str) -> bool:
        """Whether ``url`` is a link this storage handed out (an uploaded image, a shot's last
        frame passed on to the next shot): the gateway's own file, not a caller's URL, so the
        guard on callers' URLs does not apply to it. False when the backend cannot tell."""
        ...

    def local_path(self, key: str) -> Path | None:
        """Where ``key`` lies on this host's disk, for a backend that keeps files here (so
        ffmpeg reads the file itself rather than through the gateway's own ``/files``);
        ``None`` for remote stores."""
        ...

    async def exists(self, key: str) -> bool: ...

    async def delete(self, key: str) -> None: ...

    async def check(self) -> None:
        """Raise ``UnavailableError`` with a clear, secret-free message when unusable."""
        ...

    async def aclose(self) -> None: ...


def new_object_key(*, suffix: str = ".mp4", now: dt.datetime | None = None) -> str:
    """Date-partitioned, collision-free, and free of user text: ``videos/2026/11/22/<hex>.mp4``."""
    now = now or dt.datetime.now(dt.UTC)
    return f"videos/{now:%Y/%m/%d}/{uuid.uuid4().hex}{suffix}"
