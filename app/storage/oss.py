"""The ``oss`` backend: Aliyun OSS through ``oss2``.

Settings come from ``[oss]``, falling back key by key to the seed's ``[common]`` section
(``endpoint``, ``region``, ``bucket``, ``secret_id``, ``secret_key``), so the seed's
``config.ini`` works as written. V4 signing is the default (``region`` is required for it and is
derived from an ``oss-<region>.aliyuncs.com`` endpoint when unset); ``signature_version = v1``
keeps the legacy scheme.

Uploads stream through :mod:`app.storage._bridge`: one PUT below the multipart threshold,
otherwise equal parts with a bounded number in flight, aborted on failure. ``oss2`` checks the
CRC64 of every request (``crcmod`` is installed) and of the completed object; the size is
checked with a HEAD afterwards.

URLs: a signed GET (``[storage] url_expires_s``, V4 allows at most 7 days) by default, signed on
the custom domain when ``[storage] custom_domain`` is set; with ``[storage] public = true`` the
plain ``https://{bucket}.{endpoint host}/{key}`` or ``{custom_domain}/{key}``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import AsyncIterable, Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote, urlsplit

import oss2
from oss2 import exceptions as oss_errors
from oss2.credentials import StaticCredentialsProvider
from oss2.models import (
    AbortMultipartUpload,
    BucketLifecycle,
    LifecycleRule,
    PartInfo,
    StorageTransition,
)

from app.config import ConfigError
from app.errors import AppError, UnavailableError
from app.storage._bridge import check_key, new_executor, relay
from app.storage.base import StoredObject

if TYPE_CHECKING:
    from app.config import Settings
    from app.storage.registry import StorageDeps

logger = logging.getLogger(__name__)

T = TypeVar("T")
MAX_SIGNED_URL_S = 7 * 86400
LIFECYCLE_RULE_ID = "vgw-archive-videos"
LIFECYCLE_PREFIX = "videos/"
ABORT_MULTIPART_AFTER_DAYS = 7
_MiB = 1024 * 1024
_PROBE_KEY = ".vgw-readyz-probe"
_REGION_HOST = re.compile(r"^oss-(?!accelerate)([a-z0-9-]+?)(?:-internal)?\.aliyuncs\.com$")
_CREDENTIAL_CODES = {"InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidAccessKeySecret"}


def normalize_origin(value: str, *, key: str) -> str:
    """``host`` or ``scheme://host[:port]`` -> ``scheme://host[:port]`` (https by default)."""
    text = value.strip().rstrip("/")
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
        raise ConfigError(f"{key}: expected a host or scheme://host, got {value!r}")
    return f"{parts.scheme}://{parts.netloc}"


def v4_region(region: str | None, endpoint: str) -> str | None:
    """The V4 signing region: ``oss-cn-hangzhou`` and ``cn-hangzhou`` both mean ``cn-hangzhou``.

    Derived from an ``oss-<region>[-internal].aliyuncs.com`` endpoint when unset; a region that
    contradicts such an endpoint is a configuration error (it would only fail later, as an
    opaque signature mismatch).
    """
    match = _REGION_HOST.match(urlsplit(endpoint).hostname or "")
    from_endpoint = match.group(1) if match else None
    if region is None:
        return from_endpoint
    given = region.strip().removeprefix("oss-")
    if from_endpoint is not None and given != from_endpoint:
        raise ConfigError(
            f"[oss] region: {region!r} does not match the endpoint {endpoint!r} "
            f"(region {from_endpoint!r}); fix one of [oss]/[common] region or endpoint"
        )
    return given


def _is_ip_or_localhost(host: str) -> bool:
    if host == "localhost":
        return True
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, host)
        except OSError:
            continue
        return True
    return False


class OssStorage:
    """Aliyun OSS. Every ``oss2`` call with I/O runs in this backend's own threads."""

    name = "oss"

    def __init__(
        self,
        *,
        endpoint: str,
        bucket: str,
        access_key_id: str,
        access_key_secret: str,
        region: str | None,
        signature_version: str = "v4",
        is_cname: bool = False,
        public: bool = False,
        custom_domain: str | None = None,
        object_acl: str = "default",
        part_size: int = 8 * _MiB,
        multipart_threshold: int = 16 * _MiB,
        max_parts_in_flight: int = 3,
        connect_timeout_s: float = 10.0,
        archive_storage_class: str = oss2.BUCKET_STORAGE_CLASS_ARCHIVE,
    ) -> None:
        if signature_version == "v4" and not region:
            raise ConfigError("[oss] region is required for V4 signing (e.g. cn-hangzhou)")
        if part_size < 100 * 1024:
            raise ConfigError("[oss] part_size: OSS parts must be at least 100 KiB")
        self.endpoint = endpoint
        self.bucket_name = bucket
        self.region = region
        self.public = public
        self.custom_domain = custom_domain
        self.object_acl = object_acl
        self.part_size = part_size
        self.multipart_threshold = max(multipart_threshold, part_size)
        self.max_parts_in_flight = max_parts_in_flight
        self.archive_storage_class = archive_storage_class
        self._is_cname = is_cname
        auth: Any
        if signature_version == "v4":
            auth = oss2.ProviderAuthV4(StaticCredentialsProvider(access_key_id, access_key_secret))
        else:
            auth = oss2.Auth(access_key_id, access_key_secret)
        options: dict[str, Any] = {
            "connect_timeout": connect_timeout_s,
            "enable_crc": True,
            "region": region,
        }
        self._bucket = oss2.Bucket(auth, endpoint, bucket, is_cname=is_cname, **options)
        # Private objects behind a custom domain: sign on that domain (OSS accepts signed URLs
        # on a bound CNAME), so browsers play from the domain the operator chose.
        self._signer = self._bucket
        if custom_domain and not public:
            self._signer = oss2.Bucket(auth, custom_domain, bucket, is_cname=True, **options)
        self._executor = new_executor("oss", max_parts_in_flight)

    @classmethod
    def from_settings(cls, settings: Settings, deps: StorageDeps) -> OssStorage:
        oss, common = settings.oss, settings.common

        def pick(name: str) -> Any:
            value = getattr(oss, name)
            return value if value is not None else getattr(common, name)

        missing = [
            name for name in ("endpoint", "bucket", "secret_id", "secret_key") if pick(name) is None
        ]
        if missing:
            raise ConfigError(
                "[storage] backend = oss needs "
                + ", ".join(f"[oss] {name}" for name in missing)
                + " (or the same keys in the seed's [common] section)"
            )
        endpoint = normalize_origin(pick("endpoint"), key="[oss] endpoint")
        region = pick("region")
        if oss.signature_version == "v4":
            region = v4_region(region, endpoint)
            if not region:
                raise ConfigError(
                    "[oss] region is required for V4 signing (e.g. cn-hangzhou), "
                    "or set [oss] signature_version = v1"
                )
        storage = settings.storage
        custom_domain = (
            normalize_origin(storage.custom_domain, key="[storage] custom_domain")
            if storage.custom_domain
            else None
        )
        object_acl = oss.object_acl or ("public-read" if storage.public else "default")
        return cls(
            endpoint=endpoint,
            bucket=pick("bucket"),
            access_key_id=pick("secret_id").get_secret_value(),
            access_key_secret=pick("secret_key").get_secret_value(),
            region=region,
            signature_version=oss.signature_version,
            is_cname=oss.is_cname,
            public=storage.public,
            custom_domain=custom_domain,
            object_acl=object_acl,
            part_size=oss.part_size_mb * _MiB,
            multipart_threshold=oss.multipart_threshold_mb * _MiB,
            max_parts_in_flight=oss.max_parts_in_flight,
            connect_timeout_s=oss.connect_timeout_s,
            archive_storage_class=oss.archive_storage_class,
        )

    # -- Storage protocol ---------------------------------------------------------------------
    async def put(
        self,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str = "video/mp4",
        size: int | None = None,
    ) -> StoredObject:
        check_key(key)
        headers = {"Content-Type": content_type}
        if self.object_acl != "default":
            headers["x-oss-object-acl"] = self.object_acl
        target = _OssTarget(self._bucket, key, headers)
        try:
            result = await relay(
                chunks,
                target,
                executor=self._executor,
                part_size=self.part_size,
                threshold=self.multipart_threshold,
                max_in_flight=self.max_parts_in_flight,
                expected_size=size,
            )
        except AppError:
            raise
        except (oss_errors.OssError, OSError) as exc:
            raise self._translate(exc, f"upload of {key}") from exc
        return StoredObject(
            key=key, size=result.size, sha256=result.sha256, content_type=content_type
        )

    async def url(self, key: str, *, expires_s: int) -> str:
        check_key(key)
        if self.public:
            return f"{self.public_base()}/{quote(key, safe='/')}"
        # Signing is a local HMAC (no I/O), cheap enough to run on the loop.
        expires = max(1, min(expires_s, MAX_SIGNED_URL_S))
        signed: str = self._signer.sign_url("GET", key, expires, slash_safe=True)
        return signed

    def owns(self, url: str) -> bool:
        """Links to the bucket are public-host URLs: the caller-URL guard lets them through."""
        return False

    def local_path(self, key: str) -> None:
        """Objects live in the bucket, not on this host."""
        return None

    async def exists(self, key: str) -> bool:
        check_key(key)
        found: bool = await self._call(self._bucket.object_exists, key, action=f"HEAD {key}")
        return found

    async def delete(self, key: str) -> None:
        check_key(key)
        await self._call(self._bucket.delete_object, key, action=f"delete of {key}")

    async def check(self) -> None:
        # A HEAD of a key that does not exist needs only read permission on objects: 404 means
        # endpoint, bucket and credentials are all good; 403 names the credentials.
        await self._call(self._bucket.object_exists, _PROBE_KEY, action="readiness check")

    async def aclose(self) -> None:
        await asyncio.to_thread(self._executor.shutdown, wait=True)

    # -- helpers ------------------------------------------------------------------------------
    def public_base(self) -> str:
        """The unsigned URL prefix of this bucket's objects."""
        if self.custom_domain:
            return self.custom_domain
        parts = urlsplit(self.endpoint)
        if self._is_cname:
            return self.endpoint
        if _is_ip_or_localhost(parts.hostname or ""):
            return f"{self.endpoint}/{self.bucket_name}"
        return f"{parts.scheme}://{self.bucket_name}.{parts.netloc}"

    async def _call(self, func: Callable[..., T], *args: Any, action: str) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, lambda: func(*args))
        except (oss_errors.OssError, OSError) as exc:
            raise self._translate(exc, action) from exc

    def _translate(self, exc: BaseException, action: str) -> UnavailableError:
        """An ``oss2`` exception as a 503 with a message an operator can act on (no secrets)."""
        where = f"OSS bucket {self.bucket_name!r} at {self.endpoint}"
        if isinstance(exc, oss_errors.ServerError):
            code = exc.code or str(exc.status)
            if exc.status == 403 and code in _CREDENTIAL_CODES:
                message = (
                    f"{where} refused the credentials ({code}) during {action}: "
                    "check [oss] secret_id / secret_key"
                )
                return UnavailableError(message, retryable=False)
            if exc.status == 403:
                message = f"{where} denied {action} ({code}): check the RAM policy of the key"
                return UnavailableError(message, retryable=False)
            if code == "NoSuchBucket":
                message = f"{where} does not exist: check [oss] bucket / endpoint"
                return UnavailableError(message, retryable=False)
            return UnavailableError(f"{where} failed {action}: HTTP {exc.status} {code}")
        if isinstance(exc, oss_errors.InconsistentError):
            return UnavailableError(f"{where}: CRC64 mismatch during {action}")
        if isinstance(exc, oss_errors.RequestError | OSError):
            return UnavailableError(f"{where} is unreachable during {action}")
        return UnavailableError(f"{where} failed {action}: {type(exc).__name__}")

    # -- lifecycle (the `storage lifecycle` command) ------------------------------------------
    def apply_lifecycle(self, *, days: int, dry_run: bool) -> list[str]:
        """Archive ``videos/`` after ``days`` and abort stale multipart uploads; idempotent.

        Blocking (a CLI call). Other rules on the bucket are kept as they are.
        """
        where = f"oss://{self.bucket_name}"
        try:
            try:
                rules = list(self._bucket.get_bucket_lifecycle().rules)
            except oss_errors.NoSuchLifecycle:
                rules = []
            wanted = LifecycleRule(
                LIFECYCLE_RULE_ID,
                LIFECYCLE_PREFIX,
                status=LifecycleRule.ENABLED,
                storage_transitions=[
                    StorageTransition(days=days, storage_class=self.archive_storage_class)
                ],
                abort_multipart_upload=AbortMultipartUpload(days=ABORT_MULTIPART_AFTER_DAYS),
            )
            current = next((r for r in rules if r.id == LIFECYCLE_RULE_ID), None)
            summary = (
                f"rule {LIFECYCLE_RULE_ID!r}: {LIFECYCLE_PREFIX}* -> {self.archive_storage_class} "
                f"after {days} days, abort incomplete multipart uploads after "
                f"{ABORT_MULTIPART_AFTER_DAYS} days"
            )
            if current is not None and _rule_shape(current) == _rule_shape(wanted):
                return [f"{where}: unchanged, {summary}"]
            verb = "add" if current is None else "update"
            if dry_run:
                return [f"{where}: would {verb} {summary} (dry run)"]
            others = [r for r in rules if r.id != LIFECYCLE_RULE_ID]
            self._bucket.put_bucket_lifecycle(BucketLifecycle([*others, wanted]))
        except (oss_errors.OssError, OSError) as exc:
            raise self._translate(exc, "lifecycle update") from exc
        done = "added" if verb == "add" else "updated"
        return [f"{where}: {done} {summary}"]


def _rule_shape(rule: Any) -> tuple[Any, ...]:
    transitions = tuple(sorted((t.days, t.storage_class) for t in (rule.storage_transitions or [])))
    abort = rule.abort_multipart_upload.days if rule.abort_multipart_upload else None
    return (rule.prefix, rule.status, transitions, abort, rule.expiration is not None)


class _PartReader:
    """A part buffer as the file object ``oss2`` reads (it slices only ``bytes``), uncopied."""

    def __init__(self, data: bytearray) -> None:
        self._view = memoryview(data)
        self._offset = 0

    def __len__(self) -> int:
        return len(self._view)

    def read(self, size: int = -1) -> bytes:
        end = len(self._view) if size is None or size < 0 else self._offset + size
        chunk = self._view[self._offset : end].tobytes()
        self._offset += len(chunk)
        return chunk


class _OssTarget:
    """One object's blocking ``oss2`` calls, for :func:`app.storage._bridge.relay`."""

    def __init__(self, bucket: oss2.Bucket, key: str, headers: dict[str, str]) -> None:
        self._bucket = bucket
        self._key = key
        self._headers = headers

    def put_object(self, data: bytes | bytearray) -> None:
        # oss2 compares the CRC64 it computed with x-oss-hash-crc64ecma and raises on mismatch;
        # by then the (corrupt) object is stored, so remove it.
        try:
            self._bucket.put_object(self._key, data, headers=self._headers)
        except oss_errors.InconsistentError:
            self._bucket.delete_object(self._key)
            raise

    def create_upload(self) -> str:
        upload_id: str = self._bucket.init_multipart_upload(
            self._key, headers=self._headers
        ).upload_id
        return upload_id

    def upload_part(self, upload_id: str, number: int, data: bytearray) -> PartInfo:
        result = self._bucket.upload_part(self._key, upload_id, number, _PartReader(data))
        return PartInfo(number, result.etag, size=len(data), part_crc=result.crc)

    def complete_upload(self, upload_id: str, parts: list[PartInfo], size: int) -> None:
        try:
            # With sizes and part CRCs given, oss2 checks the whole object's CRC64 as well.
            self._bucket.complete_multipart_upload(self._key, upload_id, parts)
            stored = self._bucket.get_object_meta(self._key).content_length
        except oss_errors.InconsistentError:
            self._bucket.delete_object(self._key)
            raise
        if stored != size:
            self._bucket.delete_object(self._key)
            raise UnavailableError(
                f"OSS stored {stored} bytes for {self._key}, {size} were sent; object removed"
            )

    def abort_upload(self, upload_id: str) -> None:
        self._bucket.abort_multipart_upload(self._key, upload_id)

    def delete_object(self) -> None:
        self._bucket.delete_object(self._key)
