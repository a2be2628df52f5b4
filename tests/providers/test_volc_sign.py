"""Volcengine V4 signing against the test vectors Volcengine publishes for its signer."""

from __future__ import annotations

import datetime as dt

import pytest

from app.providers import volc_sign

AK = "AKLTYWViMTVmZGYzM2E0NDI5Mzk2MDZjNjFmMjc2MjRjMzg"
SK = "WkRZeE1EQmxPVGhsWWpWak5HVmtNbUUxTXpZeU9UVXlOMlE1TmpZeVlqTQ=="


@pytest.mark.parametrize(
    ("method", "action", "body", "expected"),
    [
        (
            "POST",
            "ListBill",
            b'{"Limit":10,"BillPeriod":"2023-08"}',
            "5e8480ceea12d0000a23c054151c50dd02c1a7dec835004057d19f13d53a7658",
        ),
        (
            "GET",
            "QueryBalanceAcct",
            b"",
            "1eda9e7e6b1728151a8e8791fdaf67cfbd28bd5c80d0fce2eb208746cf483105",
        ),
    ],
)
def test_published_vectors(method: str, action: str, body: bytes, expected: str) -> None:
    headers = volc_sign.sign_headers(
        method=method,
        host="billing.volcengineapi.com",
        query={"Action": action, "Version": "2022-01-01"},
        body=body,
        access_key=AK,
        secret_key=SK,
        region="cn-beijing",
        service="billing",
        x_date="20250329T180937Z",
        content_type=None,
        signed_headers=("host", "x-date"),
    )
    assert headers["Authorization"] == (
        f"HMAC-SHA256 Credential={AK}/20250329/cn-beijing/billing/request, "
        f"SignedHeaders=host;x-date, Signature={expected}"
    )
    assert headers["X-Content-Sha256"] == volc_sign.sha256_hex(body)


def test_query_is_sorted_and_rfc3986_encoded() -> None:
    query = {"b": "x y", "a": "1/2~*", "Action": "Z"}
    assert volc_sign.canonical_query(query) == "Action=Z&a=1%2F2~%2A&b=x%20y"


def test_default_ports_are_dropped_from_host() -> None:
    assert volc_sign.normalize_host("visual.volcengineapi.com:443") == "visual.volcengineapi.com"
    assert volc_sign.normalize_host("127.0.0.1:8080") == "127.0.0.1:8080"


def test_sdk_style_signature_covers_body_and_content_type() -> None:
    common = {
        "method": "POST",
        "host": "visual.volcengineapi.com",
        "query": {"Action": "CVSync2AsyncSubmitTask", "Version": "2022-08-31"},
        "access_key": AK,
        "secret_key": SK,
        "region": "cn-north-1",
        "service": "cv",
        "x_date": volc_sign.format_x_date(dt.datetime(2025, 3, 29, 18, 9, 37, tzinfo=dt.UTC)),
    }
    one = volc_sign.sign_headers(body=b'{"a":1}', **common)  # type: ignore[arg-type]
    two = volc_sign.sign_headers(body=b'{"a":2}', **common)  # type: ignore[arg-type]
    assert "SignedHeaders=content-type;host;x-content-sha256;x-date" in one["Authorization"]
    assert one["X-Date"] == "20250329T180937Z"
    assert one["Authorization"] != two["Authorization"]
