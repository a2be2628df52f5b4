"""An Aliyun-OSS-protocol server for tests: the subset the gateway uses, with real signatures.

No registry ships an OSS server, so this one is written from the protocol (standard library
HTTP server; CRC64-ECMA through ``crcmod``, a gateway dependency). It is driven by the real
``oss2`` client in the tests, so a client that signs wrongly is refused here as it would be by
OSS. What it implements:

* bucket-in-path addressing (``http://127.0.0.1:PORT/{bucket}/{key}``, what ``oss2`` uses for an
  IP endpoint);
* authentication: V1 (``Authorization: OSS ak:sig``, HMAC-SHA1) and V4
  (``OSS4-HMAC-SHA256 Credential=…, Signature=…``) header signatures, V1 and V4 signed URLs with
  expiry, anonymous GET/HEAD of ``public-read`` objects; ``403 SignatureDoesNotMatch`` on a wrong
  signature, ``403 InvalidAccessKeyId``, ``403 AccessDenied`` for expired URLs,
  ``403 RequestTimeTooSkewed`` for stale header signatures;
* objects: PUT (with ``x-oss-object-acl``), GET, HEAD (``?objectMeta`` too), DELETE, object ACL;
* multipart: initiate, upload part, list parts, complete (``EntityTooSmall`` below 100 KiB),
  abort, list multipart uploads;
* listing objects (V1) and bucket lifecycle XML (put/get/delete);
* ``x-oss-hash-crc64ecma`` on uploads and downloads, so ``oss2`` verifies CRC64.

Objects live in files under a directory, so a gigabyte does not sit in memory. Run standalone
(for benchmarks) with ``python -m tests.emulators.oss --port 9000 --bucket b --key AK:SK``.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import email.utils
import hashlib
import hmac
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from xml.etree import ElementTree as ET

import crcmod

MIN_PART_SIZE = 100 * 1024
MAX_SKEW_S = 15 * 60
_CRC64_POLY = 0x142F0E1EBA9EA3693
_CRC64_XOROUT = 0xFFFFFFFFFFFFFFFF
_BLOCK = 1 << 20

# Query parameters that are part of the V1 "canonicalized resource" (the OSS subresources the
# gateway's requests can carry; others, like prefix or max-keys, are not signed in V1).
_V1_SUBRESOURCES = frozenset(
    {
        "acl", "uploads", "uploadId", "partNumber", "lifecycle", "objectMeta", "location",
        "bucketInfo", "stat", "delete", "security-token", "x-oss-process", "tagging",
        "versionId", "versioning", "versions", "symlink", "restore", "append", "position",
        "response-content-type", "response-content-language", "response-expires",
        "response-cache-control", "response-content-disposition", "response-content-encoding",
    }
)  # fmt: skip


def new_crc64() -> Any:
    return crcmod.Crc(_CRC64_POLY, initCrc=0, rev=True, xorOut=_CRC64_XOROUT)


class OssError(Exception):
    def __init__(self, status: int, code: str, message: str, **extra: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra


@dataclass
class Blob:
    path: Path
    size: int
    md5: str
    crc64: int
    mtime: float = field(default_factory=time.time)


@dataclass
class StoredObject:
    blob: Blob
    content_type: str
    acl: str = "default"


@dataclass
class Upload:
    key: str
    upload_id: str
    content_type: str
    acl: str
    initiated: float = field(default_factory=time.time)
    parts: dict[int, Blob] = field(default_factory=dict)


@dataclass
class Bucket:
    name: str
    acl: str = "private"
    objects: dict[str, StoredObject] = field(default_factory=dict)
    uploads: dict[str, Upload] = field(default_factory=dict)
    lifecycle: bytes | None = None


@dataclass(frozen=True)
class RequestRecord:
    method: str
    bucket: str
    key: str
    params: tuple[str, ...]
    auth: str  # "v1", "v4", "v1-url", "v4-url", "anonymous", "refused"
    status: int


class OssEmulator:
    """The server and its state. Use as a context manager; ``endpoint`` is its base URL."""

    def __init__(
        self,
        *,
        credentials: dict[str, str],
        buckets: Iterable[str] = (),
        region: str = "cn-hangzhou",
        root: Path | None = None,
        port: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.credentials = dict(credentials)
        self.region = region
        self.clock = clock
        self._own_root = root is None
        self.root = Path(tempfile.mkdtemp(prefix="oss-emulator-")) if root is None else root
        self.root.mkdir(parents=True, exist_ok=True)
        self.buckets = {name: Bucket(name) for name in buckets}
        self.lock = threading.Lock()
        self.requests: list[RequestRecord] = []
        # Test hooks: part numbers whose upload fails with 500, a delay per uploaded part, and
        # the highest number of part uploads seen at once.
        self.fail_parts: set[int] = set()
        self.part_delay_s = 0.0
        self.corrupt_crc = False  # answer with a wrong x-oss-hash-crc64ecma on uploads
        self.parts_in_flight = 0
        self.peak_parts_in_flight = 0
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.daemon_threads = True
        self._server.emulator = self  # type: ignore[attr-defined]
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> OssEmulator:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="oss-emulator", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._own_root:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> OssEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers for tests ------------------------------------------------------------------
    def bucket(self, name: str) -> Bucket:
        return self.buckets[name]

    def reset(self) -> None:
        """Forget every object, upload, lifecycle rule and recorded request (keep buckets)."""
        with self.lock:
            for name in list(self.buckets):
                self.buckets[name] = Bucket(name)
            self.requests.clear()
            self.fail_parts.clear()
            self.part_delay_s = 0.0
            self.corrupt_crc = False
            self.peak_parts_in_flight = 0

    def new_blob_path(self) -> Path:
        return self.root / uuid.uuid4().hex


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up (a cancelled upload, a benchmark exiting) is not an error.
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError):
            super().handle_error(request, client_address)


class _Request:
    """What the handler parsed: method, decoded bucket/key, query pairs and lower-case headers."""

    def __init__(self, handler: BaseHTTPRequestHandler) -> None:
        self.method = handler.command
        split = urlsplit(handler.path)
        path = unquote(split.path)
        bucket, _, key = path.lstrip("/").partition("/")
        self.bucket = bucket
        self.key = key
        self.query: list[tuple[str, str]] = parse_qsl(split.query, keep_blank_values=True)
        self.params = dict(self.query)
        self.headers = {k.lower(): v for k, v in handler.headers.items()}
        self.body_started = False
        self.body_done = False


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "OssEmulator"

    def log_message(self, format: str, *args: Any) -> None:
        return None

    @property
    def emu(self) -> OssEmulator:
        emulator: OssEmulator = self.server.emulator  # type: ignore[attr-defined]
        return emulator

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    # -- plumbing -----------------------------------------------------------------------------
    def _dispatch(self) -> None:
        request_id = uuid.uuid4().hex.upper()[:24]
        req = _Request(self)
        self._current = (req, "refused")
        try:
            auth = _authenticate(self.emu, req)
            self._current = (req, auth)
            _Operations(self, req, request_id, auth).run()
        except OssError as exc:
            self._drain(req)
            self._send_error(exc, req, request_id)
        except Exception as exc:  # a bug in the emulator: answer, don't hang the client
            self._drain(req)
            self._send_error(OssError(500, "InternalError", repr(exc)), req, request_id)

    def _drain(self, req: _Request) -> None:
        # Read an unread request body so the kept-alive connection stays in sync; a body read
        # halfway (the error came from inside it) ends the connection instead.
        if req.body_done:
            return
        if req.body_started:
            self.close_connection = True
            return
        try:
            for _ in self._body_chunks(req):
                pass
        except OssError:
            self.close_connection = True

    def _send_error(self, exc: OssError, req: _Request, request_id: str) -> None:
        root = ET.Element("Error")
        for tag, text in (
            ("Code", exc.code),
            ("Message", exc.message),
            ("RequestId", request_id),
            ("HostId", "127.0.0.1"),
            *exc.extra.items(),
        ):
            ET.SubElement(root, tag).text = text
        body = b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root)
        headers = {"x-oss-request-id": request_id, "Content-Type": "application/xml"}
        if req.method == "HEAD":
            headers["x-oss-err"] = base64.b64encode(body).decode()
        self.respond(exc.status, body, headers)

    def respond(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        file: Path | None = None,
        length: int | None = None,
    ) -> None:
        # Recorded before the client can see the answer, so a test reading the log after its
        # call returns always finds the request there.
        req, auth = self._current
        with self.emu.lock:
            self.emu.requests.append(
                RequestRecord(req.method, req.bucket, req.key, tuple(req.params), auth, status)
            )
        self.send_response(status)
        if self.close_connection:  # say so: a client must not send its next request here
            self.send_header("Connection", "close")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        size = len(body) if length is None else length
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(size))
        self.end_headers()
        if self.command == "HEAD":
            return
        if file is not None:
            with file.open("rb") as fh:
                shutil.copyfileobj(fh, self.wfile, _BLOCK)
        elif body:
            self.wfile.write(body)

    def _body_chunks(self, req: _Request) -> Iterator[bytes]:
        """The request body: Content-Length, chunked, or (neither) empty."""
        req.body_started = True
        if "chunked" in req.headers.get("transfer-encoding", "").lower():
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    req.body_done = True
                    return
                yield self.rfile.read(size)
                self.rfile.readline()
        remaining = int(req.headers.get("content-length") or 0)
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, _BLOCK))
            if not chunk:
                raise OssError(400, "IncompleteBody", "The request body is shorter than declared.")
            remaining -= len(chunk)
            yield chunk
        req.body_done = True

    def read_body_to_blob(self, req: _Request) -> Blob:
        path = self.emu.new_blob_path()
        md5 = hashlib.md5()
        crc = new_crc64()
        size = 0
        try:
            with path.open("wb") as fh:
                for chunk in self._body_chunks(req):
                    fh.write(chunk)
                    md5.update(chunk)
                    crc.update(chunk)
                    size += len(chunk)
        except OssError:
            path.unlink(missing_ok=True)
            raise
        expected_md5 = req.headers.get("content-md5")
        if expected_md5 and base64.b64encode(md5.digest()).decode() != expected_md5:
            path.unlink(missing_ok=True)
            raise OssError(400, "InvalidDigest", "The Content-MD5 you specified is not valid.")
        return Blob(path=path, size=size, md5=md5.hexdigest().upper(), crc64=crc.crcValue)

    def read_body(self, req: _Request, limit: int = 1 << 20) -> bytes:
        if int(req.headers.get("content-length") or 0) > limit:
            raise OssError(400, "EntityTooLarge", "Request body too large.")
        return b"".join(self._body_chunks(req))


# -- authentication ---------------------------------------------------------------------------
def _authenticate(emu: OssEmulator, req: _Request) -> str:
    authorization = req.headers.get("authorization", "")
    now = emu.clock()
    if authorization.startswith("OSS4-HMAC-SHA256 "):
        _check_v4_header(emu, req, authorization, now)
        return "v4"
    if authorization.startswith("OSS "):
        _check_v1_header(emu, req, authorization, now)
        return "v1"
    if "x-oss-signature" in req.params:
        _check_v4_url(emu, req, now)
        return "v4-url"
    if "Signature" in req.params:
        _check_v1_url(emu, req, now)
        return "v1-url"
    if req.method in ("GET", "HEAD") and req.key and not (set(req.params) & _V1_SUBRESOURCES):
        bucket = emu.buckets.get(req.bucket)
        obj = bucket.objects.get(req.key) if bucket else None
        if bucket is not None and obj is not None:
            acl = bucket.acl if obj.acl == "default" else obj.acl
            if acl in ("public-read", "public-read-write"):
                return "anonymous"
    raise OssError(403, "AccessDenied", "You have no right to access this object.")


def _secret_for(emu: OssEmulator, access_key_id: str) -> str:
    secret = emu.credentials.get(access_key_id)
    if secret is None:
        raise OssError(
            403, "InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist."
        )
    return secret


def _mismatch(string_to_sign: str) -> OssError:
    return OssError(
        403,
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided.",
        StringToSign=string_to_sign,
    )


def _v1_string_to_sign(req: _Request, date: str) -> str:
    oss_headers = sorted((k, v) for k, v in req.headers.items() if k.startswith("x-oss-"))
    canonical_headers = "".join(f"{k}:{v}\n" for k, v in oss_headers)
    subresources = sorted((k, v) for k, v in req.query if k in _V1_SUBRESOURCES)
    resource = f"/{req.bucket}/{req.key}" if req.bucket else "/"
    if subresources:
        resource += "?" + "&".join(f"{k}={v}" if v else k for k, v in subresources)
    return "\n".join(
        [
            req.method,
            req.headers.get("content-md5", ""),
            req.headers.get("content-type", ""),
            date,
            canonical_headers + resource,
        ]
    )


def _v1_signature(secret: str, string_to_sign: str) -> str:
    digest = hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _check_v1_header(emu: OssEmulator, req: _Request, authorization: str, now: float) -> None:
    access_key_id, _, signature = authorization[4:].strip().partition(":")
    secret = _secret_for(emu, access_key_id)
    date = req.headers.get("x-oss-date") or req.headers.get("date", "")
    try:
        when = email.utils.parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError) as exc:
        raise OssError(403, "AccessDenied", "Invalid or missing Date header.") from exc
    if abs(now - when) > MAX_SKEW_S:
        raise OssError(403, "RequestTimeTooSkewed", "The difference between times is too large.")
    string_to_sign = _v1_string_to_sign(req, date)
    if not hmac.compare_digest(_v1_signature(secret, string_to_sign), signature):
        raise _mismatch(string_to_sign)


def _check_v1_url(emu: OssEmulator, req: _Request, now: float) -> None:
    secret = _secret_for(emu, req.params.get("OSSAccessKeyId", ""))
    expires = req.params.get("Expires", "")
    if not expires.isdigit():
        raise OssError(403, "AccessDenied", "Invalid Expires parameter.")
    string_to_sign = _v1_string_to_sign(req, expires)
    if not hmac.compare_digest(_v1_signature(secret, string_to_sign), req.params["Signature"]):
        raise _mismatch(string_to_sign)
    if now > int(expires):
        raise OssError(403, "AccessDenied", "Request has expired.")


def _v4_encode(text: str, *, keep_slash: bool) -> str:
    return quote(text, safe="/~" if keep_slash else "~")


def _v4_signature(
    emu: OssEmulator,
    req: _Request,
    *,
    credential: str,
    stamp: str,
    additional: list[str],
    exclude_params: frozenset[str],
) -> tuple[str, str]:
    """Return (expected signature, string to sign) for a V4 header or URL signature."""
    parts = credential.split("/")
    if len(parts) != 5 or parts[4] != "aliyun_v4_request" or parts[3] != "oss":
        raise OssError(403, "AccessDenied", "Invalid credential scope.")
    access_key_id, date, region = parts[0], parts[1], parts[2]
    secret = _secret_for(emu, access_key_id)
    if date != stamp[:8]:
        raise OssError(403, "AccessDenied", "The credential date does not match x-oss-date.")
    if region != emu.region:
        raise OssError(
            403, "AccessDenied", f"Invalid signing region {region!r}, expected {emu.region!r}."
        )
    query = sorted(
        (_v4_encode(k, keep_slash=False), _v4_encode(v, keep_slash=False))
        for k, v in req.query
        if k not in exclude_params
    )
    signed = {"content-type", "content-md5", *additional}
    headers = sorted(
        (k, v) for k, v in req.headers.items() if k.startswith("x-oss-") or k in signed
    )
    canonical_request = "\n".join(
        [
            req.method,
            _v4_encode(f"/{req.bucket}/{req.key}" if req.bucket else "/", keep_slash=True),
            "&".join(f"{k}={v}" if v else k for k, v in query),
            "".join(f"{k}:{v}\n" for k, v in headers),
            ";".join(additional),
            req.headers.get("x-oss-content-sha256", "UNSIGNED-PAYLOAD"),
        ]
    )
    scope = f"{date}/{region}/oss/aliyun_v4_request"
    string_to_sign = "\n".join(
        [
            "OSS4-HMAC-SHA256",
            stamp,
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = ("aliyun_v4" + secret).encode()
    for step in (date, region, "oss", "aliyun_v4_request"):
        key = hmac.new(key, step.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return signature, string_to_sign


def _parse_stamp(stamp: str) -> float:
    try:
        return dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC).timestamp()
    except ValueError as exc:
        raise OssError(403, "AccessDenied", "Invalid x-oss-date.") from exc


def _check_v4_header(emu: OssEmulator, req: _Request, authorization: str, now: float) -> None:
    fields: dict[str, str] = {}
    for item in authorization[len("OSS4-HMAC-SHA256 ") :].split(","):
        name, _, value = item.strip().partition("=")
        fields[name] = value
    stamp = req.headers.get("x-oss-date", "")
    if abs(now - _parse_stamp(stamp)) > MAX_SKEW_S:
        raise OssError(403, "RequestTimeTooSkewed", "The difference between times is too large.")
    additional = [h for h in fields.get("AdditionalHeaders", "").split(";") if h]
    expected, string_to_sign = _v4_signature(
        emu,
        req,
        credential=fields.get("Credential", ""),
        stamp=stamp,
        additional=additional,
        exclude_params=frozenset(),
    )
    if not hmac.compare_digest(expected, fields.get("Signature", "")):
        raise _mismatch(string_to_sign)


def _check_v4_url(emu: OssEmulator, req: _Request, now: float) -> None:
    if req.params.get("x-oss-signature-version") != "OSS4-HMAC-SHA256":
        raise OssError(403, "AccessDenied", "Unsupported signature version.")
    stamp = req.params.get("x-oss-date", "")
    expires = req.params.get("x-oss-expires", "")
    if not expires.isdigit() or not 1 <= int(expires) <= 7 * 86400:
        raise OssError(403, "AccessDenied", "x-oss-expires must be within 1 s and 7 days.")
    additional = [h for h in req.params.get("x-oss-additional-headers", "").split(";") if h]
    expected, string_to_sign = _v4_signature(
        emu,
        req,
        credential=req.params.get("x-oss-credential", ""),
        stamp=stamp,
        additional=additional,
        exclude_params=frozenset({"x-oss-signature"}),
    )
    if not hmac.compare_digest(expected, req.params["x-oss-signature"]):
        raise _mismatch(string_to_sign)
    if now > _parse_stamp(stamp) + int(expires):
        raise OssError(403, "AccessDenied", "Request has expired.")


# -- operations -------------------------------------------------------------------------------
def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _xml(root: ET.Element) -> bytes:
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root)


def _sub(parent: ET.Element, tag: str, text: object = None) -> ET.Element:
    element = ET.SubElement(parent, tag)
    if text is not None:
        element.text = str(text)
    return element


_ACLS = {"default", "private", "public-read", "public-read-write"}


class _Operations:
    def __init__(self, handler: _Handler, req: _Request, request_id: str, auth: str) -> None:
        self.h = handler
        self.req = req
        self.emu = handler.emu
        self.request_id = request_id
        self.auth = auth

    def send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> int:
        all_headers = {"x-oss-request-id": self.request_id}
        if body:
            all_headers["Content-Type"] = "application/xml"
        all_headers.update(headers or {})
        self.h.respond(status, body, all_headers)
        return status

    def run(self) -> int:
        req, p = self.req, self.req.params
        bucket = self.emu.buckets.get(req.bucket)
        if bucket is None:
            raise OssError(
                404, "NoSuchBucket", "The specified bucket does not exist.", BucketName=req.bucket
            )
        m = req.method
        if not req.key:
            if "lifecycle" in p:
                return self.lifecycle(bucket)
            if m == "GET" and "uploads" in p:
                return self.list_uploads(bucket)
            if m == "GET":
                return self.list_objects(bucket)
        elif "acl" in p and m in ("GET", "PUT"):
            return self.object_acl(bucket)
        elif m == "POST" and "uploads" in p:
            return self.initiate(bucket)
        elif "uploadId" in p:
            upload = bucket.uploads.get(p["uploadId"])
            if upload is None or upload.key != req.key:
                raise OssError(
                    404,
                    "NoSuchUpload",
                    "The specified upload does not exist.",
                    UploadId=p["uploadId"],
                )
            if m == "PUT" and "partNumber" in p:
                return self.upload_part(upload)
            if m == "GET":
                return self.list_parts(bucket, upload)
            if m == "POST":
                return self.complete(bucket, upload)
            if m == "DELETE":
                with self.emu.lock:
                    bucket.uploads.pop(upload.upload_id, None)
                for blob in upload.parts.values():
                    blob.path.unlink(missing_ok=True)
                return self.send(204)
        elif m == "PUT":
            return self.put_object(bucket)
        elif m in ("GET", "HEAD"):
            return self.get_object(bucket)
        elif m == "DELETE":
            with self.emu.lock:
                obj = bucket.objects.pop(req.key, None)
            if obj is not None:
                obj.blob.path.unlink(missing_ok=True)
            return self.send(204)
        raise OssError(400, "NotImplemented", f"{m} with {sorted(p)} is not emulated.")

    def _crc(self, value: int) -> str:
        return str((value + 1) % (1 << 64) if self.emu.corrupt_crc else value)

    def _acl_header(self, default: str = "default") -> str:
        acl = self.req.headers.get("x-oss-object-acl", default)
        if acl not in _ACLS:
            raise OssError(400, "InvalidArgument", f"Invalid object ACL {acl!r}.")
        return acl

    def _content_type(self) -> str:
        return self.req.headers.get("content-type") or "application/octet-stream"

    def put_object(self, bucket: Bucket) -> int:
        acl = self._acl_header()
        blob = self.h.read_body_to_blob(self.req)
        obj = StoredObject(blob=blob, content_type=self._content_type(), acl=acl)
        with self.emu.lock:
            old = bucket.objects.get(self.req.key)
            bucket.objects[self.req.key] = obj
        if old is not None:
            old.blob.path.unlink(missing_ok=True)
        return self.send(
            200, headers={"ETag": f'"{blob.md5}"', "x-oss-hash-crc64ecma": self._crc(blob.crc64)}
        )

    def get_object(self, bucket: Bucket) -> int:
        obj = bucket.objects.get(self.req.key)
        if obj is None:
            raise OssError(404, "NoSuchKey", "The specified key does not exist.", Key=self.req.key)
        headers = {
            "x-oss-request-id": self.request_id,
            "Content-Type": obj.content_type,
            "ETag": f'"{obj.blob.md5}"',
            "Last-Modified": email.utils.formatdate(obj.blob.mtime, usegmt=True),
            "x-oss-hash-crc64ecma": str(obj.blob.crc64),
            "x-oss-object-type": "Normal",
            "x-oss-storage-class": "Standard",
        }
        if "objectMeta" in self.req.params:
            # GetObjectMeta: the size is in Content-Length, nothing in the body.
            self.h.respond(200, headers=headers, length=obj.blob.size)
            return 200
        self.h.respond(200, headers=headers, file=obj.blob.path, length=obj.blob.size)
        return 200

    def object_acl(self, bucket: Bucket) -> int:
        obj = bucket.objects.get(self.req.key)
        if obj is None:
            raise OssError(404, "NoSuchKey", "The specified key does not exist.")
        if self.req.method == "PUT":
            obj.acl = self._acl_header(obj.acl)
            return self.send(200)
        root = ET.Element("AccessControlPolicy")
        owner = _sub(root, "Owner")
        _sub(owner, "ID", "0")
        _sub(owner, "DisplayName", "0")
        _sub(_sub(root, "AccessControlList"), "Grant", obj.acl)
        return self.send(200, _xml(root))

    def initiate(self, bucket: Bucket) -> int:
        upload = Upload(
            key=self.req.key,
            upload_id=uuid.uuid4().hex.upper(),
            content_type=self._content_type(),
            acl=self._acl_header(),
        )
        with self.emu.lock:
            bucket.uploads[upload.upload_id] = upload
        root = ET.Element("InitiateMultipartUploadResult")
        _sub(root, "Bucket", bucket.name)
        _sub(root, "Key", upload.key)
        _sub(root, "UploadId", upload.upload_id)
        return self.send(200, _xml(root))

    def upload_part(self, upload: Upload) -> int:
        number_text = self.req.params["partNumber"]
        if not number_text.isdigit() or not 1 <= int(number_text) <= 10000:
            raise OssError(400, "InvalidArgument", "Part number must be between 1 and 10000.")
        number = int(number_text)
        with self.emu.lock:
            self.emu.parts_in_flight += 1
            self.emu.peak_parts_in_flight = max(
                self.emu.peak_parts_in_flight, self.emu.parts_in_flight
            )
        try:
            blob = self.h.read_body_to_blob(self.req)
            if self.emu.part_delay_s:
                time.sleep(self.emu.part_delay_s)
        finally:
            with self.emu.lock:
                self.emu.parts_in_flight -= 1
        if number in self.emu.fail_parts:
            blob.path.unlink(missing_ok=True)
            raise OssError(500, "InternalError", "Injected failure for this part.")
        with self.emu.lock:
            old = upload.parts.get(number)
            upload.parts[number] = blob
        if old is not None:
            old.path.unlink(missing_ok=True)
        return self.send(
            200, headers={"ETag": f'"{blob.md5}"', "x-oss-hash-crc64ecma": self._crc(blob.crc64)}
        )

    def list_parts(self, bucket: Bucket, upload: Upload) -> int:
        root = ET.Element("ListPartsResult")
        _sub(root, "Bucket", bucket.name)
        _sub(root, "Key", upload.key)
        _sub(root, "UploadId", upload.upload_id)
        _sub(root, "PartNumberMarker", 0)
        _sub(root, "NextPartNumberMarker", max(upload.parts, default=0))
        _sub(root, "MaxParts", 1000)
        _sub(root, "IsTruncated", "false")
        for number in sorted(upload.parts):
            blob = upload.parts[number]
            node = _sub(root, "Part")
            _sub(node, "PartNumber", number)
            _sub(node, "LastModified", _iso(blob.mtime))
            _sub(node, "ETag", f'"{blob.md5}"')
            _sub(node, "HashCrc64ecma", blob.crc64)
            _sub(node, "Size", blob.size)
        return self.send(200, _xml(root))

    def complete(self, bucket: Bucket, upload: Upload) -> int:
        try:
            doc = ET.fromstring(self.h.read_body(self.req))
        except ET.ParseError as exc:
            raise OssError(
                400, "MalformedXML", "The XML you provided was not well-formed."
            ) from exc
        wanted = [
            (int(node.findtext("PartNumber", "0")), node.findtext("ETag", "").strip('"'))
            for node in doc.findall("Part")
        ]
        if not wanted:
            raise OssError(400, "MalformedXML", "No parts in CompleteMultipartUpload.")
        numbers = [n for n, _ in wanted]
        if numbers != sorted(set(numbers)):
            raise OssError(400, "InvalidPartOrder", "Parts must be in ascending order.")
        blobs: list[Blob] = []
        for index, (number, etag) in enumerate(wanted):
            blob = upload.parts.get(number)
            if blob is None or blob.md5 != etag.upper():
                raise OssError(400, "InvalidPart", f"Part {number} was not uploaded as given.")
            if index < len(wanted) - 1 and blob.size < MIN_PART_SIZE:
                raise OssError(400, "EntityTooSmall", "Your proposed upload is too small.")
            blobs.append(blob)
        path = self.emu.new_blob_path()
        md5_of_md5s = hashlib.md5()
        crc = new_crc64()
        with path.open("wb") as out:
            for blob in blobs:
                md5_of_md5s.update(bytes.fromhex(blob.md5))
                with blob.path.open("rb") as fh:
                    while chunk := fh.read(_BLOCK):
                        out.write(chunk)
                        crc.update(chunk)
        etag = f"{md5_of_md5s.hexdigest().upper()}-{len(blobs)}"
        final = Blob(path=path, size=sum(b.size for b in blobs), md5=etag, crc64=crc.crcValue)
        with self.emu.lock:
            bucket.uploads.pop(upload.upload_id, None)
            old = bucket.objects.get(upload.key)
            bucket.objects[upload.key] = StoredObject(
                blob=final, content_type=upload.content_type, acl=upload.acl
            )
        for blob in upload.parts.values():
            blob.path.unlink(missing_ok=True)
        if old is not None:
            old.blob.path.unlink(missing_ok=True)
        root = ET.Element("CompleteMultipartUploadResult")
        _sub(root, "Bucket", bucket.name)
        _sub(root, "Key", upload.key)
        _sub(root, "ETag", f'"{etag}"')
        return self.send(
            200, _xml(root), {"ETag": f'"{etag}"', "x-oss-hash-crc64ecma": self._crc(final.crc64)}
        )

    def list_uploads(self, bucket: Bucket) -> int:
        prefix = self.req.params.get("prefix", "")
        root = ET.Element("ListMultipartUploadsResult")
        _sub(root, "Bucket", bucket.name)
        _sub(root, "IsTruncated", "false")
        _sub(root, "NextKeyMarker", "")
        _sub(root, "NextUploadIdMarker", "")
        for upload in sorted(bucket.uploads.values(), key=lambda u: (u.key, u.initiated)):
            if upload.key.startswith(prefix):
                node = _sub(root, "Upload")
                _sub(node, "Key", upload.key)
                _sub(node, "UploadId", upload.upload_id)
                _sub(node, "Initiated", _iso(upload.initiated))
        return self.send(200, _xml(root))

    def list_objects(self, bucket: Bucket) -> int:
        prefix = self.req.params.get("prefix", "")
        root = ET.Element("ListBucketResult")
        _sub(root, "Name", bucket.name)
        _sub(root, "Prefix", prefix)
        _sub(root, "IsTruncated", "false")
        for key in sorted(bucket.objects):
            if key.startswith(prefix):
                obj = bucket.objects[key]
                node = _sub(root, "Contents")
                _sub(node, "Key", key)
                _sub(node, "LastModified", _iso(obj.blob.mtime))
                _sub(node, "ETag", f'"{obj.blob.md5}"')
                _sub(node, "Type", "Normal")
                _sub(node, "Size", obj.blob.size)
                _sub(node, "StorageClass", "Standard")
        return self.send(200, _xml(root))

    def lifecycle(self, bucket: Bucket) -> int:
        m = self.req.method
        if m == "PUT":
            body = self.h.read_body(self.req)
            try:
                doc = ET.fromstring(body)
            except ET.ParseError as exc:
                raise OssError(
                    400, "MalformedXML", "The XML you provided was not well-formed."
                ) from exc
            if doc.tag != "LifecycleConfiguration" or not doc.findall("Rule"):
                raise OssError(400, "MalformedXML", "Expected LifecycleConfiguration with rules.")
            with self.emu.lock:
                bucket.lifecycle = body
            return self.send(200)
        if m == "GET":
            if bucket.lifecycle is None:
                raise OssError(404, "NoSuchLifecycle", "No Row found in Lifecycle Table.")
            return self.send(200, bucket.lifecycle)
        if m == "DELETE":
            with self.emu.lock:
                bucket.lifecycle = None
            return self.send(204)
        raise OssError(405, "MethodNotAllowed", "The specified method is not allowed.")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--bucket", action="append", default=[])
    parser.add_argument("--key", action="append", default=[], help="ACCESS_KEY_ID:SECRET")
    parser.add_argument("--region", default="cn-hangzhou")
    parser.add_argument("--root", type=Path)
    args = parser.parse_args(argv)
    credentials = dict(item.split(":", 1) for item in args.key)
    emulator = OssEmulator(
        credentials=credentials,
        buckets=args.bucket,
        region=args.region,
        root=args.root,
        port=args.port,
    )
    with emulator:
        print(emulator.endpoint, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
