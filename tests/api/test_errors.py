"""Bad input gets a clear 4xx in the one error shape; never a 500."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import LiveGateway


def assert_error(response: httpx.Response, status: int, code: str) -> dict:  # type: ignore[type-arg]
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= {"error", "detail"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["retryable"], bool)
    return body


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "prompt"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"prompt": 42}, "prompt"),
        ({"prompt": "x" * 2001}, "prompt"),
        ({"prompt": "ok", "aspect_ratio": "5:4"}, "aspect_ratio"),
        ({"prompt": "ok", "aspect_ratio": 969}, "aspect_ratio"),  # YAML 1.1's reading of 16:09
        ({"prompt": "ok", "duration_ms": -5}, "duration_ms"),
        ({"prompt": "ok", "duration_ms": "long"}, "duration_ms"),
        ({"prompt": "ok", "fps": 0}, "fps"),
        ({"prompt": "ok", "seed": 2**40}, "seed"),
        ({"prompt": "ok", "image_url": "file:///etc/passwd"}, "image_url"),
        ({"prompt": "ok", "callback_url": "ftp://x"}, "callback_url"),
        ({"prompt": "ok", "aspect-ratio": "16:9"}, "aspect-ratio"),
        ({"prompt": "ok", "metadata": "not an object"}, "metadata"),
    ],
)
@pytest.mark.parametrize("path", ["/generate-video", "/v1/tasks"])
def test_invalid_bodies_get_422_with_fastapi_details(
    live_gateway: LiveGateway,
    body: dict,
    field: str,
    path: str,  # type: ignore[type-arg]
) -> None:
    result = assert_error(live_gateway.client.post(path, json=body), 422, "validation_error")
    assert isinstance(result["detail"], list)
    assert any(field in [str(p) for p in err["loc"]] for err in result["detail"])
    assert field in result["error"]["message"]


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[1, 2]", b'"prompt"', b"\xff\xfe"])
def test_malformed_json_is_a_422_not_a_500(live_gateway: LiveGateway, raw: bytes) -> None:
    response = live_gateway.client.post(
        "/generate-video", content=raw, headers={"Content-Type": "application/json"}
    )
    assert_error(response, 422, "validation_error")


def test_huge_body_is_413(live_gateway: LiveGateway) -> None:
    body = {"prompt": "ok", "metadata": {"blob": "x" * 2_000_000}}
    assert_error(live_gateway.client.post("/v1/tasks", json=body), 413, "payload_too_large")


def test_unknown_provider_is_a_clear_422(live_gateway: LiveGateway) -> None:
    body = assert_error(
        live_gateway.client.post("/v1/tasks", json={"prompt": "ok", "provider": "nope"}),
        422,
        "validation_error",
    )
    assert "nope" in body["error"]["message"] and "preview" in body["error"]["message"]


def test_bad_query_parameters(live_gateway: LiveGateway) -> None:
    assert_error(live_gateway.client.get("/v1/tasks", params={"limit": 0}), 422, "validation_error")
    assert_error(
        live_gateway.client.get("/v1/tasks", params={"status": "done"}), 422, "validation_error"
    )
    assert_error(
        live_gateway.client.get("/v1/tasks/x", params={"wait_s": 61}), 422, "validation_error"
    )


def test_unknown_route_and_method(live_gateway: LiveGateway) -> None:
    assert_error(live_gateway.client.get("/nope"), 404, "not_found")
    assert_error(live_gateway.client.put("/generate-video"), 405, "method_not_allowed")


def test_every_response_carries_a_request_id(live_gateway: LiveGateway) -> None:
    made = live_gateway.client.get("/healthz")
    assert len(made.headers["x-request-id"]) == 32
    echoed = live_gateway.client.get("/healthz", headers={"X-Request-ID": "dify-run-42"})
    assert echoed.headers["x-request-id"] == "dify-run-42"
    unsafe = live_gateway.client.get("/healthz", headers={"X-Request-ID": "bad id\twith tab"})
    assert unsafe.headers["x-request-id"] != "bad id\twith tab"
