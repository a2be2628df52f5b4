"""Local media files into storage: streamed in 1 MiB chunks read off the event loop.

ffmpeg writes results to disk; :func:`store_file` hands them to any
:class:`~app.storage.base.Storage` through its streaming ``put`` — a 60 s 1080p join is never
held in memory, whatever the backend.
"""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import AsyncIterator
from pathlib import Path

from app.storage.base import Storage, StoredObject

CHUNK = 1 << 20
CONTENT_TYPES = {
    ".mp4": "video/mp4",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".png": "image/png",
    ".webp": "image/webp",
    ".vtt": "text/vtt; charset=utf-8",
}


def _read_at(path: Path, offset: int) -> bytes:
    with path.open("rb") as fh:
        fh.seek(offset)
        return fh.read(CHUNK)


class FileStream:
    """Read a local file in 1 MiB chunks off the event loop; ``size`` is its length.

    Each chunk opens and closes the file: a reader that stops half-way (a cancelled upload, a
    shutdown) leaves no open handle behind, whenever its generator is finalised.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size: int | None = path.stat().st_size

    async def __aiter__(self) -> AsyncIterator[bytes]:
        offset = 0
        while chunk := await asyncio.to_thread(_read_at, self.path, offset):
            offset += len(chunk)
            yield chunk


def content_type_for(path: Path) -> str:
    found = CONTENT_TYPES.get(path.suffix.lower())
    return found or mimetypes.guess_type(path.name)[0] or "application/octet-stream"


async def store_file(
    storage: Storage, key: str, path: Path, *, content_type: str | None = None
) -> StoredObject:
    """Stream ``path`` into ``storage`` under ``key`` (size checked by the backend)."""
    stream = await asyncio.to_thread(FileStream, path)
    return await storage.put(
        key, stream, content_type=content_type or content_type_for(path), size=stream.size
    )
