"""The ``s3`` backend: AWS S3 and S3-compatible stores (MinIO, Huawei OBS, Tencent COS, R2).

One ``boto3`` client with SigV4, the configured addressing style, and the checksum settings that
non-AWS stores need (``when_required``: boto3 ≥ 1.36 otherwise sends CRC32 trailers many of them
reject). Uploads stream through :mod:`app.storage._bridge` with this backend's own multipart
calls rather than ``upload_fileobj``: all parts but the last are exactly ``part_size`` (R2
requires equal parts), at most ``max_concurrency`` are in flight, the upload is aborted on any
failure, and the stored size is checked with a HEAD afterwards.

URLs are presigned GETs (at most 7 days, SigV4's limit); with ``[storage] public = true`` the
plain object URL, or ``{custom_domain}/{key}``. With ``[s3] public_endpoint_url`` (clients reach
the store at another address than the gateway does, e.g. through a reverse proxy that keeps the
Host header) URLs are signed for, and point at, that address.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast
from urllib.parse import quote, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from app.config import ConfigError
from app.errors import AppError, UnavailableError
from app.storage._bridge import check_key, new_executor, relay
from app.storage.base import StoredObject
from app.storage.oss import normalize_origin

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_s3.literals import TransitionStorageClassType
    from mypy_boto3_s3.type_defs import (
        CompletedPartTypeDef,
        LifecycleRuleOutputTypeDef,
        LifecycleRuleTypeDef,
    )

    from app.config import Settings
    from app.storage.registry import StorageDeps

logger = logging.getLogger(__name__)

T = TypeVar("T")
MAX_PRESIGNED_S = 7 * 86400
MIN_PART_SIZE = 5 * 1024 * 1024
LIFECYCLE_RULE_ID = "vgw-archive-videos"
LIFECYCLE_PREFIX = "videos/"
ABORT_MULTIPART_AFTER_DAYS = 7
_MiB = 1024 * 1024
_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "AuthorizationHeaderMalformed",
}


class S3Storage:
    """An S3-compatible bucket. Every ``boto3`` call with I/O runs in this backend's threads."""

    name = "s3"

    def __init__(
        self,
        *,
        bucket: str,
        access_key: str,
        secret_key: str,
        endpoint_url: str | None = None,
        public_endpoint_url: str | None = None,
        region: str = "us-east-1",
        addressing_style: Literal["auto", "path", "virtual"] = "auto",
        checksum: Literal["when_required", "when_supported"] = "when_required",
        public: bool = False,
        custom_domain: str | None = None,
        part_size: int = 8 * _MiB,
        multipart_threshold: int = 16 * _MiB,
        max_concurrency: int = 3,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 60.0,
        archive_storage_class: str | None = "GLACIER",
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ConfigError("[s3] part_size_mb: S3 parts must be at least 5 MiB")
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.public_endpoint_url = public_endpoint_url
        self.region = region
        self.addressing_style = addressing_style
        self.public = public
        self.custom_domain = custom_domain
        self.part_size = part_size
        self.multipart_threshold = max(multipart_threshold, part_size)
        self.max_concurrency = max_concurrency
        self.archive_storage_class = archive_storage_class
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": addressing_style},
            request_checksum_calculation=checksum,
            response_checksum_validation=checksum,
            connect_timeout=connect_timeout_s,
            read_timeout=read_timeout_s,
            retries={"max_attempts": 3, "mode": "standard"},
            max_pool_connections=max(10, 4 * max_concurrency),
        )
        # A private session: no ambient AWS_PROFILE or shared config decides where videos go.
        session = boto3.session.Session(
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=region,
        )
        self._client: S3Client = session.client("s3", endpoint_url=endpoint_url, config=config)
        # Presigning is local: a second client only so the URLs carry the public origin.
        self._presigner: S3Client = (
            session.client("s3", endpoint_url=public_endpoint_url, config=config)
            if public_endpoint_url
            else self._client
        )
        self._executor = new_executor("s3", max_concurrency)

    @classmethod
    def from_settings(cls, settings: Settings, deps: StorageDeps) -> S3Storage:
        s3, storage = settings.s3, settings.storage
        missing = [
            name for name in ("bucket", "access_key", "secret_key") if getattr(s3, name) is None
        ]
        if missing:
            raise ConfigError(
                "[storage] backend = s3 needs " + ", ".join(f"[s3] {name}" for name in missing)
            )
        assert s3.bucket and s3.access_key and s3.secret_key
        endpoint_url = (
            normalize_origin(s3.endpoint_url, key="[s3] endpoint_url") if s3.endpoint_url else None
        )
        public_endpoint_url = (
            normalize_origin(s3.public_endpoint_url, key="[s3] public_endpoint_url")
            if s3.public_endpoint_url
            else None
        )
        custom_domain = (
            normalize_origin(storage.custom_domain, key="[storage] custom_domain")
            if storage.custom_domain
            else None
        )
        archive = s3.archive_storage_class.strip()
        return cls(
            bucket=s3.bucket,
            access_key=s3.access_key.get_secret_value(),
            secret_key=s3.secret_key.get_secret_value(),
            endpoint_url=endpoint_url,
            public_endpoint_url=public_endpoint_url,
            region=s3.region or "us-east-1",
            addressing_style=s3.addressing_style,
            checksum=s3.checksum,
            public=storage.public,
            custom_domain=custom_domain,
            part_size=s3.part_size_mb * _MiB,
            multipart_threshold=s3.multipart_threshold_mb * _MiB,
            max_concurrency=s3.max_concurrency,
            connect_timeout_s=s3.connect_timeout_s,
            read_timeout_s=s3.read_timeout_s,
            archive_storage_class=None if archive.lower() in ("", "none", "off") else archive,
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
        target = _S3Target(self._client, self.bucket, key, content_type)
        try:
            result = await relay(
                chunks,
                target,
                executor=self._executor,
                part_size=self.part_size,
                threshold=self.multipart_threshold,
                max_in_flight=self.max_concurrency,
                expected_size=size,
            )
        except AppError:
            raise
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(exc, f"upload of {key}") from exc
        return StoredObject(
            key=key, size=result.size, sha256=result.sha256, content_type=content_type
        )

    async def url(self, key: str, *, expires_s: int) -> str:
        check_key(key)
        if self.public:
            return f"{self.public_base()}/{quote(key, safe='/')}"
        # Presigning is a local HMAC (no I/O), cheap enough to run on the loop.
        url: str = self._presigner.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": key},
            ExpiresIn=max(1, min(expires_s, MAX_PRESIGNED_S)),
        )
        return url

    def owns(self, url: str) -> bool:
        """Links to the bucket are public-host URLs: the caller-URL guard lets them through."""
        return False

    def local_path(self, key: str) -> None:
        """Objects live in the bucket, not on this host."""
        return None

    async def exists(self, key: str) -> bool:
        check_key(key)
        try:
            await self._call(
                self._client.head_object, action=f"HEAD {key}", Bucket=self.bucket, Key=key
            )
        except UnavailableError as exc:
            cause = exc.__cause__
            if isinstance(cause, ClientError) and _status(cause) == 404:
                return False
            raise
        return True

    async def delete(self, key: str) -> None:
        check_key(key)
        await self._call(
            self._client.delete_object, action=f"delete of {key}", Bucket=self.bucket, Key=key
        )

    async def check(self) -> None:
        await self._call(self._client.head_bucket, action="readiness check", Bucket=self.bucket)

    async def aclose(self) -> None:
        await asyncio.to_thread(self._executor.shutdown, wait=True)
        self._client.close()
        if self._presigner is not self._client:
            self._presigner.close()

    # -- helpers ------------------------------------------------------------------------------
    def public_base(self) -> str:
        """The unsigned URL prefix of this bucket's objects."""
        if self.custom_domain:
            return self.custom_domain
        endpoint = self.public_endpoint_url or self.endpoint_url
        if endpoint is None:
            return f"https://{self.bucket}.s3.{self.region}.amazonaws.com"
        if self.addressing_style == "virtual":
            parts = urlsplit(endpoint)
            return f"{parts.scheme}://{self.bucket}.{parts.netloc}"
        return f"{endpoint}/{self.bucket}"

    @property
    def _where(self) -> str:
        return f"S3 bucket {self.bucket!r} at {self.endpoint_url or f'AWS {self.region}'}"

    async def _call(self, func: Callable[..., T], *, action: str, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, lambda: func(**kwargs))
        except (BotoCoreError, ClientError) as exc:
            raise self._translate(exc, action) from exc

    def _translate(self, exc: Exception, action: str) -> UnavailableError:
        """A ``botocore`` exception as a 503 with a message an operator can act on (no secrets)."""
        where = self._where
        if isinstance(exc, ClientError):
            code = str(exc.response.get("Error", {}).get("Code") or _status(exc))
            status = _status(exc)
            if code in _CREDENTIAL_CODES:
                message = (
                    f"{where} refused the credentials ({code}) during {action}: "
                    "check [s3] access_key / secret_key"
                )
                return UnavailableError(message, retryable=False)
            if status == 403:
                message = (
                    f"{where} denied {action} (403): check [s3] access_key / secret_key "
                    "and the bucket policy"
                )
                return UnavailableError(message, retryable=False)
            if code in ("NoSuchBucket", "404") and action == "readiness check":
                message = f"{where} does not exist: check [s3] bucket / endpoint_url"
                return UnavailableError(message, retryable=False)
            return UnavailableError(f"{where} failed {action}: HTTP {status} {code}")
        if isinstance(exc, EndpointConnectionError):
            return UnavailableError(f"{where} is unreachable during {action}")
        return UnavailableError(f"{where} failed {action}: {type(exc).__name__}")

    # -- lifecycle (the `storage lifecycle` command) ------------------------------------------
    def apply_lifecycle(self, *, days: int, dry_run: bool) -> list[str]:
        """Archive ``videos/`` after ``days`` and abort stale multipart uploads; idempotent.

        Blocking (a CLI call). Other rules on the bucket are kept as they are. With
        ``[s3] archive_storage_class = none`` only the abort rule is applied.
        """
        where = f"s3://{self.bucket}"
        wanted: LifecycleRuleTypeDef = {
            "ID": LIFECYCLE_RULE_ID,
            "Filter": {"Prefix": LIFECYCLE_PREFIX},
            "Status": "Enabled",
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": ABORT_MULTIPART_AFTER_DAYS},
        }
        summary = (
            f"rule {LIFECYCLE_RULE_ID!r}: abort incomplete multipart uploads after "
            f"{ABORT_MULTIPART_AFTER_DAYS} days"
        )
        if self.archive_storage_class:
            storage_class = cast("TransitionStorageClassType", self.archive_storage_class)
            wanted["Transitions"] = [{"Days": days, "StorageClass": storage_class}]
            summary += f", {LIFECYCLE_PREFIX}* -> {self.archive_storage_class} after {days} days"
        try:
            try:
                response = self._client.get_bucket_lifecycle_configuration(Bucket=self.bucket)
                rules: list[LifecycleRuleOutputTypeDef] = list(response.get("Rules", []))
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "NoSuchLifecycleConfiguration":
                    raise
                rules = []
            current = next((r for r in rules if r.get("ID") == LIFECYCLE_RULE_ID), None)
            if current is not None and _rule_shape(current) == _rule_shape(wanted):
                return [f"{where}: unchanged, {summary}"]
            verb = "add" if current is None else "update"
            if dry_run:
                return [f"{where}: would {verb} {summary} (dry run)"]
            others: list[Any] = [r for r in rules if r.get("ID") != LIFECYCLE_RULE_ID]
            self._client.put_bucket_lifecycle_configuration(
                Bucket=self.bucket, LifecycleConfiguration={"Rules": [*others, wanted]}
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NotImplemented" and (
                self.archive_storage_class
            ):
                raise UnavailableError(
                    f"{where}: this store does not support storage-class transitions; set "
                    "[s3] archive_storage_class to a class it offers, or to none",
                    retryable=False,
                ) from exc
            raise self._translate(exc, "lifecycle update") from exc
        except BotoCoreError as exc:
            raise self._translate(exc, "lifecycle update") from exc
        done = "added" if verb == "add" else "updated"
        return [f"{where}: {done} {summary}"]


def _status(exc: ClientError) -> int:
    return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


def _rule_shape(rule: Any) -> tuple[Any, ...]:
    prefix = (rule.get("Filter") or {}).get("Prefix", rule.get("Prefix"))
    transitions = tuple(
        sorted((t.get("Days"), t.get("StorageClass")) for t in rule.get("Transitions", []))
    )
    abort = (rule.get("AbortIncompleteMultipartUpload") or {}).get("DaysAfterInitiation")
    return (prefix, rule.get("Status"), transitions, abort, "Expiration" in rule)


class _S3Target:
    """One object's blocking ``boto3`` calls, for :func:`app.storage._bridge.relay`."""

    def __init__(self, client: S3Client, bucket: str, key: str, content_type: str) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self._content_type = content_type

    def put_object(self, data: bytes | bytearray) -> None:
        # botocore takes a bytearray as a body as it is; the stubs only say bytes.
        self._client.put_object(
            Bucket=self._bucket,
            Key=self._key,
            Body=cast(bytes, data),
            ContentType=self._content_type,
        )
        self._verify(len(data))

    def create_upload(self) -> str:
        response = self._client.create_multipart_upload(
            Bucket=self._bucket, Key=self._key, ContentType=self._content_type
        )
        return response["UploadId"]

    def upload_part(self, upload_id: str, number: int, data: bytearray) -> CompletedPartTypeDef:
        response = self._client.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=upload_id,
            PartNumber=number,
            Body=cast(bytes, data),
        )
        return {"ETag": response["ETag"], "PartNumber": number}

    def complete_upload(self, upload_id: str, parts: list[CompletedPartTypeDef], size: int) -> None:
        self._client.complete_multipart_upload(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=upload_id,
            MultipartUpload={"Parts": parts},
        )
        self._verify(size)

    def abort_upload(self, upload_id: str) -> None:
        self._client.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=upload_id)

    def delete_object(self) -> None:
        self._client.delete_object(Bucket=self._bucket, Key=self._key)

    def _verify(self, size: int) -> None:
        stored = self._client.head_object(Bucket=self._bucket, Key=self._key)["ContentLength"]
        if stored != size:
            self._client.delete_object(Bucket=self._bucket, Key=self._key)
            raise UnavailableError(
                f"S3 stored {stored} bytes for {self._key}, {size} were sent; object removed"
            )
