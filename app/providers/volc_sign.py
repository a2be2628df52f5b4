"""Volcengine V4 request signing (``HMAC-SHA256``), as pure functions.

The algorithm, per Volcengine's public signing docs and SDKs::

    canonical request = METHOD \\n PATH \\n QUERY \\n HEADERS \\n SIGNED-HEADER-NAMES \\n
                        hex(sha256(body))
    string to sign    = "HMAC-SHA256" \\n X-Date \\n {date}/{region}/{service}/request \\n
                        hex(sha256(canonical request))
    signing key       = HMAC(HMAC(HMAC(HMAC(SK, date), region), service), "request")
    Authorization     = HMAC-SHA256 Credential={AK}/{scope}, SignedHeaders={names}, Signature={hex}

``QUERY`` is sorted by key and RFC 3986-encoded; ``HEADERS`` is ``name:value\\n`` per signed
header (lower-case names, sorted, values trimmed). Proved against the published test vectors in
``tests/providers/test_volc_sign.py``. No I/O and no clock here: the caller passes ``x_date``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from urllib.parse import quote

ALGORITHM = "HMAC-SHA256"
# What the official SDK signs for JSON calls.
DEFAULT_SIGNED_HEADERS: tuple[str, ...] = ("content-type", "host", "x-content-sha256", "x-date")


def format_x_date(moment: dt.datetime) -> str:
    """``YYYYMMDD'T'HHMMSS'Z'`` in UTC."""
    return moment.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%SZ")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def _encode(value: str) -> str:
    return quote(value, safe="-_.~")


def canonical_query(query: Mapping[str, str] | Sequence[tuple[str, str]]) -> str:
    pairs = list(query.items()) if isinstance(query, Mapping) else list(query)
    encoded = sorted((_encode(key), _encode(value)) for key, value in pairs)
    return "&".join(f"{key}={value}" for key, value in encoded)


def normalize_host(host: str) -> str:
    """The SDK drops the default ports from ``Host`` before signing."""
    for suffix in (":80", ":443"):
        if host.endswith(suffix):
            return host[: -len(suffix)]
    return host


def canonical_request(
    *,
    method: str,
    path: str,
    query: Mapping[str, str] | Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    signed_headers: Sequence[str],
    payload_hash: str,
) -> str:
    lowered = {name.lower(): value for name, value in headers.items()}
    names = sorted(name.lower() for name in signed_headers)
    header_block = "".join(f"{name}:{lowered[name].strip()}\n" for name in names)
    return "\n".join(
        [
            method.upper(),
            path or "/",
            canonical_query(query),
            header_block,
            ";".join(names),
            payload_hash,
        ]
    )


def credential_scope(x_date: str, region: str, service: str) -> str:
    return f"{x_date[:8]}/{region}/{service}/request"


def string_to_sign(*, x_date: str, scope: str, canonical: str) -> str:
    return "\n".join([ALGORITHM, x_date, scope, sha256_hex(canonical.encode("utf-8"))])


def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(secret_key.encode("utf-8"), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "request")


def signature(
    *,
    secret_key: str,
    x_date: str,
    region: str,
    service: str,
    canonical: str,
) -> str:
    scope = credential_scope(x_date, region, service)
    key = signing_key(secret_key, x_date[:8], region, service)
    to_sign = string_to_sign(x_date=x_date, scope=scope, canonical=canonical)
    return hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def sign_headers(
    *,
    method: str,
    host: str,
    path: str = "/",
    query: Mapping[str, str] | Sequence[tuple[str, str]],
    body: bytes,
    access_key: str,
    secret_key: str,
    region: str,
    service: str,
    x_date: str,
    content_type: str | None = "application/json",
    signed_headers: Sequence[str] = DEFAULT_SIGNED_HEADERS,
) -> dict[str, str]:
    """The headers a signed request carries: Host, X-Date, X-Content-Sha256, Authorization.

    ``Content-Type`` is included (and signed when named in ``signed_headers``) if given.
    """
    payload_hash = sha256_hex(body)
    headers: dict[str, str] = {
        "Host": normalize_host(host),
        "X-Date": x_date,
        "X-Content-Sha256": payload_hash,
    }
    if content_type is not None:
        headers["Content-Type"] = content_type
    available = {name.lower() for name in headers}
    names = [name.lower() for name in signed_headers if name.lower() in available]
    canonical = canonical_request(
        method=method,
        path=path,
        query=query,
        headers=headers,
        signed_headers=names,
        payload_hash=payload_hash,
    )
    sig = signature(
        secret_key=secret_key, x_date=x_date, region=region, service=service, canonical=canonical
    )
    scope = credential_scope(x_date, region, service)
    headers["Authorization"] = (
        f"{ALGORITHM} Credential={access_key}/{scope}, "
        f"SignedHeaders={';'.join(sorted(names))}, Signature={sig}"
    )
    return headers
