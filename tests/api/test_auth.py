"""Bearer auth with the seed's semantics, and tenant isolation between tokens."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import LiveGateway

BODY = {"prompt": "tenant test", "duration_ms": 500, "fps": 4}


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "unauthorized"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401, "unauthorized"),
        ({"Authorization": "Bearer"}, 401, "unauthorized"),
        ({"Authorization": "Bearer not-a-known-token"}, 403, "forbidden"),
        ({"Authorization": "Bearer test-token-alpha-000"}, 403, "forbidden"),  # a prefix
    ],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/generate-video"),
        ("POST", "/v1/tasks"),
        ("GET", "/v1/tasks"),
        ("GET", "/v1/tasks/x"),
        ("DELETE", "/v1/tasks/x"),
        ("GET", "/metrics"),
    ],
)
def test_auth_matrix(
    live_gateway: LiveGateway,
    headers: dict[str, str],
    status: int,
    code: str,
    method: str,
    path: str,
) -> None:
    response = httpx.request(
        method,
        live_gateway.base_url + path,
        headers=headers,
        json=BODY if method == "POST" else None,
    )
    assert response.status_code == status
    assert response.json()["error"] == {
        "code": code,
        "message": response.json()["detail"],
        "retryable": False,
    }
    if status == 401:
        assert response.headers["www-authenticate"] == "Bearer"


def test_scheme_is_case_insensitive_and_every_configured_token_works(
    live_gateway: LiveGateway,
) -> None:
    for token in (live_gateway.token, live_gateway.other_token):
        response = httpx.get(
            f"{live_gateway.base_url}/v1/tasks", headers={"Authorization": f"bearer {token}"}
        )
        assert response.status_code == 200


def test_health_endpoints_need_no_token(live_gateway: LiveGateway) -> None:
    health = httpx.get(f"{live_gateway.base_url}/healthz").json()
    assert health == {"status": "ok", "instance": live_gateway.app.state.runner.instance_id}
    ready = httpx.get(f"{live_gateway.base_url}/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready"}  # details only for admin tokens
    detailed = live_gateway.client.get("/readyz").json()
    assert detailed["checks"] == {"store": "ok", "storage": "ok", "provider:preview": "ok"}


def test_each_token_sees_only_its_own_tasks(live_gateway: LiveGateway) -> None:
    mine = live_gateway.client.post("/v1/tasks", json=BODY).json()
    with live_gateway.client_for(live_gateway.other_token) as other:
        theirs = other.post("/v1/tasks", json=BODY).json()
        assert other.get(f"/v1/tasks/{mine['id']}").status_code == 404
        assert other.delete(f"/v1/tasks/{mine['id']}").status_code == 404
        assert [t["id"] for t in other.get("/v1/tasks").json()["data"]] == [theirs["id"]]
    assert [t["id"] for t in live_gateway.client.get("/v1/tasks").json()["data"]] == [mine["id"]]
    not_found = live_gateway.client.get(f"/v1/tasks/{theirs['id']}")
    assert not_found.status_code == 404
    assert not_found.json()["error"]["code"] == "not_found"


def test_dev_token_is_created_once_when_no_tokens_are_configured(gateway_factory, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data_dir = tmp_path / "fresh"
    with gateway_factory({"auth": {"valid_tokens": "[]"}}, data_dir=data_dir) as gateway:
        token = (data_dir / "dev-token").read_text().strip()
        assert token.startswith("vgw-dev-") and len(token) > 30
        assert (data_dir / "dev-token").stat().st_mode & 0o777 == 0o600
        ok = httpx.get(f"{gateway.base_url}/v1/tasks", headers={"Authorization": f"Bearer {token}"})
        assert ok.status_code == 200
        assert (
            gateway.client.get("/v1/tasks").status_code == 403
        )  # the test token is not configured
    with gateway_factory({"auth": {"valid_tokens": "[]"}}, data_dir=data_dir):
        assert (data_dir / "dev-token").read_text().strip() == token
