"""The ``local`` backend: files under ``data/files``, served at ``/files/{key}`` with signed URLs.

A URL is ``{public_base_url}/files/{key}?exp=<unix>&sig=<hex>`` where ``sig`` is
HMAC-SHA256(key "\\n" exp) under a per-installation key (``[storage] signing_key``, else a random
key kept in ``data/signing-key``). Tampered or expired URLs are refused with 403.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import secrets
import time
import uuid
from collections.abc import AsyncIterable
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING
from urllib.parse import quote

from app.errors import ForbiddenError, NotFoundError, UnavailableError, ValidationError
from app.storage.base import StoredObject

if TYPE_CHECKING:
    from app.config import Settings
    from app.storage.registry import StorageDeps


def load_or_create_secret(path: Path) -> bytes:
    """A random per-installation secret kept in ``path`` (created 0600 on first use)."""
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value.hex())
    return value


class LocalStorage:
    name = "local"

    def __init__(self, root: Path, *, base_url: str, signing_key: bytes) -> None:
        self.root = root.resolve()
        self._partial = self.root / ".partial"
        self._base_url = base_url.rstrip("/")
        self._key = signing_key

    @classmethod
    def from_settings(cls, settings: Settings, deps: StorageDeps) -> LocalStorage:
        # The seed's [common] video_output_path names the local video folder too.
        root = (
            settings.storage.local_dir
            or settings.common.video_output_path
            or deps.data_dir / "files"
        )
        if settings.storage.signing_key is not None:
            key = settings.storage.signing_key.get_secret_value().encode()
        else:
            key = load_or_create_secret(deps.data_dir / "signing-key")
        root.mkdir(parents=True, exist_ok=True)
        return cls(root, base_url=deps.public_base_url, signing_key=key)

    # -- keys and paths -------------------------------------------------------------------
    def path_for(self, key: str) -> Path:
        """The file for ``key``; refuses absolute paths, ``..``, and anything outside the root."""
        pure = PurePosixPath(key)
        if (
            not key
            or "\\" in key
            or "\0" in key
            or pure.is_absolute()
            or any(part in ("", ".", "..") for part in key.split("/"))
            or pure.parts[0].startswith(".")
        ):
            raise ValidationError(f"invalid object key: {key!r}")
        path = (self.root / pure).resolve()
        if not path.is_relative_to(self.root):
            raise ValidationError(f"invalid object key: {key!r}")
        return path

    def _sign(self, key: str, expires_at: int) -> str:
        message = f"{key}\n{expires_at}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def verify(
        self, key: str, exp: str | None, sig: str | None, *, now: float | None = None
    ) -> Path:
        """Check a signed ``/files`` request; return the file path or raise 403/404."""
        if not exp or not sig or not exp.isdigit():
            raise ForbiddenError("missing or malformed signature")
        if not hmac.compare_digest(self._sign(key, int(exp)), sig):
            raise ForbiddenError("invalid signature")
        if int(exp) < (time.time() if now is None else now):
            raise ForbiddenError("this link has expired")
        path = self.path_for(key)
        if not path.is_file():
            raise NotFoundError("file not found")
        return path

    # -- Storage protocol ----------------------------------------------------------------
    async def put(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str = "video/mp4",
        size: int | None = None,
    ) -> StoredObject:
        final = self.path_for(key)
        self._partial.mkdir(parents=True, exist_ok=True)
        tmp = self._partial / uuid.uuid4().hex
        digest = hashlib.sha256()
        written = 0
        fh: IO[bytes] = await asyncio.to_thread(tmp.open, "wb")
        try:
            async for chunk in chunks:
                # Writing and hashing run in a thread: a 1 GiB video must not stall the loop.
                await asyncio.to_thread(_write_and_hash, fh, digest, chunk)
                written += len(chunk)
            await asyncio.to_thread(fh.close)
            if size is not None and written != size:
                raise UnavailableError(f"size mismatch: expected {size} bytes, received {written}")
            await asyncio.to_thread(_publish, tmp, final)
        except BaseException:
            fh.close()
            tmp.unlink(missing_ok=True)
            raise
        return StoredObject(
            key=key, size=written, sha256=digest.hexdigest(), content_type=content_type
        )

    async def url(self, key: str, *, expires_s: int) -> str:
        expires_at = int(time.time()) + expires_s
        return (
            f"{self._base_url}/files/{quote(key)}"
            f"?exp={expires_at}&sig={self._sign(key, expires_at)}"
        )

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self.path_for(key).is_file)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.path_for(key).unlink, missing_ok=True)

    async def check(self) -> None:
        probe = self._partial / f"probe-{uuid.uuid4().hex}"
        try:
            await asyncio.to_thread(_probe_write, probe)
        except OSError as exc:
            raise UnavailableError(
                f"local storage at {self.root} is not writable: {exc.strerror}"
            ) from exc

    async def aclose(self) -> None:
        return None


def _write_and_hash(fh: IO[bytes], digest: hashlib._Hash, chunk: bytes) -> None:
    fh.write(chunk)
    digest.update(chunk)


def _publish(tmp: Path, final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, final)


def _probe_write(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"ok")
    path.unlink()
