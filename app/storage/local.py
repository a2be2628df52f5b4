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
import threading
import time
import uuid
from collections.abc import AsyncIterable, Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypeVar
from urllib.parse import parse_qs, quote, unquote, urlsplit

from app.errors import ForbiddenError, NotFoundError, UnavailableError, ValidationError
from app.storage.base import StoredObject
from app.urls import base_url

if TYPE_CHECKING:
    from app.config import Settings
    from app.storage.registry import StorageDeps

T = TypeVar("T")


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
        """The file for ``key``; refuses absolute paths, ``..``, hidden top-level names, and
        anything else that could name a file outside the root.

        The check is on the key's text alone, with no file-system calls: the root is resolved
        once, and a key made only of plain names below it cannot leave it. (Resolving every
        key through ``Path.resolve`` cost a tenth of the event loop's time under load.) A
        symbolic link that someone with access to the data folder places inside it is theirs
        to answer for, as in any file server's document root.
        """
        parts = key.split("/")
        if (
            not key
            or "\\" in key
            or "\0" in key
            or any(part in ("", ".", "..") for part in parts)
            or parts[0].startswith(".")
        ):
            raise ValidationError(f"invalid object key: {key!r}")
        return self.root.joinpath(*parts)

    def _sign(self, key: str, expires_at: int) -> str:
        message = f"{key}\n{expires_at}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()

    def verify(
        self, key: str, exp: str | None, sig: str | None, *, now: float | None = None
    ) -> Path:
        """Check a signed ``/files`` request; return the file path or raise 403/404."""
        # ASCII only: "²".isdigit() holds, and compare_digest refuses non-ASCII text.
        if (
            not exp
            or not sig
            or not (exp.isascii() and exp.isdigit() and len(exp) <= 12)
            or not (sig.isascii() and len(sig) <= 128)
        ):
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
        partial = _PartialFile(self._partial / uuid.uuid4().hex)
        try:
            # Writing and hashing run in a thread: a 1 GiB video must not stall the loop. Each
            # chunk is written once the next has come, and the last together with the rename:
            # a small video is one trip to a thread, not two.
            held: bytes | None = None
            async for chunk in chunks:
                if held is not None:
                    await asyncio.to_thread(partial.write, held)
                held = chunk
            await asyncio.to_thread(partial.publish, final, size, held)
        except BaseException:
            await asyncio.shield(asyncio.to_thread(partial.discard))
            raise
        written, digest = partial.written, partial.digest
        return StoredObject(
            key=key, size=written, sha256=digest.hexdigest(), content_type=content_type
        )

    async def url(self, key: str, *, expires_s: int) -> str:
        expires_at = int(time.time()) + expires_s
        return (
            f"{base_url(self._base_url)}/files/{quote(key)}"
            f"?exp={expires_at}&sig={self._sign(key, expires_at)}"
        )

    def local_path(self, key: str) -> Path:
        """The file itself (``path_for``)."""
        return self.path_for(key)

    def owns(self, url: str) -> bool:
        """A ``/files`` link whose signature this storage made (whatever host it was given
        under: links follow the address a client used)."""
        parts = urlsplit(url)
        if not parts.path.startswith("/files/"):
            return False
        query = parse_qs(parts.query)
        try:
            self.verify(
                unquote(parts.path.removeprefix("/files/")),
                next(iter(query.get("exp", [])), None),
                next(iter(query.get("sig", [])), None),
            )
        except (ForbiddenError, NotFoundError, ValidationError):
            return False
        return True

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


class _PartialFile:
    """A file being written under ``.partial/``; published by an atomic rename, or discarded.

    Each method is one trip to a worker thread (opening rides on the first write). A lock
    orders them: a write still running in a thread after its task was cancelled must not race
    the discard.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.digest = hashlib.sha256()
        self.written = 0
        self._fh: IO[bytes] | None = None
        self._lock = threading.Lock()
        self._discarded = False

    def _file(self) -> IO[bytes]:
        if self._fh is None:
            self._fh = _in_directory(self.path, lambda: self.path.open("wb"))
        return self._fh

    def write(self, chunk: bytes) -> None:
        with self._lock:
            if self._discarded:
                return
            self._file().write(chunk)
            self.digest.update(chunk)
            self.written += len(chunk)

    def publish(self, final: Path, size: int | None, last: bytes | None = None) -> None:
        """Write ``last`` (the final chunk, if any), check the size, and rename into place."""
        if last is not None:
            self.write(last)
        with self._lock:
            self._file().close()
            if size is not None and self.written != size:
                raise UnavailableError(
                    f"size mismatch: expected {size} bytes, received {self.written}"
                )
            _in_directory(final, lambda: os.replace(self.path, final))

    def discard(self) -> None:
        with self._lock:
            self._discarded = True
            if self._fh is not None:
                self._fh.close()
            self.path.unlink(missing_ok=True)


def _in_directory(path: Path, make: Callable[[], T]) -> T:
    """``make()`` the file ``path``, creating its directory only if it is missing: nearly always
    it is there already, and asking first costs two system calls on every video."""
    try:
        return make()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        return make()


def _probe_write(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"ok")
    path.unlink()
