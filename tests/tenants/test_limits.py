"""Request rates, task quotas and provider allow-lists, per token, over real HTTP."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.conftest import GatewayFactory, LiveGateway, eventually
from tests.fakes import ControlledProvider

BODY = {"prompt": "limits test", "duration_ms": 500, "fps": 4, "provider": "fake"}


def issue(fake_gateway: LiveGateway, name: str, **fields: Any) -> str:
    answer = fake_gateway.client.post("/v1/admin/tokens", json={"name": name, **fields})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["token"])


def get(fake_gateway: LiveGateway, token: str) -> httpx.Response:
    return httpx.get(
        f"{fake_gateway.base_url}/v1/tasks", headers={"Authorization": f"Bearer {token}"}
    )


def test_a_token_over_its_rate_gets_429_and_others_do_not(fake_gateway: LiveGateway) -> None:
    # 2 at once, then one per 20 s: the third request is surely over, however slow the machine.
    limited = issue(fake_gateway, "limited", requests_per_s=0.1, burst=2)
    other = issue(fake_gateway, "other", requests_per_s=0.1, burst=2)
    assert [get(fake_gateway, limited).status_code for _ in range(2)] == [200, 200]
    refused = get(fake_gateway, limited)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert refused.json()["error"]["retryable"] is True
    assert 1 <= int(refused.headers["Retry-After"]) <= 20
    # Another token (and the unlimited configured ones) are untouched.
    assert get(fake_gateway, other).status_code == 200
    assert fake_gateway.client.get("/v1/tasks").status_code == 200


def test_limits_default_from_config_and_a_token_may_switch_them_off(
    gateway_factory: GatewayFactory,
) -> None:
    with gateway_factory({"limits": {"requests_per_s": 0.1, "burst": 2}}) as fake_gateway:
        assert [fake_gateway.client.get("/v1/tasks").status_code for _ in range(3)] == [
            200,
            200,
            429,
        ]
        free = issue_via_other(fake_gateway, "unlimited", requests_per_s=0)
        capped = issue_via_other(fake_gateway, "capped")
        assert all(get(fake_gateway, free).status_code == 200 for _ in range(5))
        assert [get(fake_gateway, capped).status_code for _ in range(3)] == [200, 200, 429]


def issue_via_other(fake_gateway: LiveGateway, name: str, **fields: Any) -> str:
    """Issue with the second configured token (the first one is out of requests)."""
    with fake_gateway.client_for(fake_gateway.other_token) as admin:
        answer = admin.post("/v1/admin/tokens", json={"name": name, **fields})
    assert answer.status_code == 201, answer.text
    return str(answer.json()["token"])


def test_max_active_tasks(fake_gateway: LiveGateway, fake: ControlledProvider) -> None:
    token = issue(fake_gateway, "busy", max_active_tasks=2)
    with fake_gateway.client_for(token) as team:
        first = [team.post("/v1/tasks", json=BODY).json() for _ in range(2)]
        over = team.post("/v1/tasks", json=BODY)
        assert over.status_code == 429
        assert over.json()["error"]["code"] == "quota_exceeded"
        assert "max_active_tasks (2)" in over.json()["error"]["message"]
        # The same request, retried with its Idempotency-Key, is answered, not refused.
        keyed = team.post(
            "/v1/tasks", json={**BODY, "prompt": "keyed"}, headers={"Idempotency-Key": "k"}
        )
        assert keyed.status_code == 429
        fake.release()
        for task in first:
            done = team.get(f"/v1/tasks/{task['id']}", params={"wait_s": 30}).json()
            assert done["status"] == "succeeded"
        last = team.post("/v1/tasks", json=BODY)
        assert last.status_code == 202
        team.get(f"/v1/tasks/{last.json()['id']}", params={"wait_s": 30})
    assert len(fake.submits) == 3  # the refused creates never reached the provider


def test_tasks_per_day(fake_gateway: LiveGateway, fake: ControlledProvider) -> None:
    token = issue(fake_gateway, "daily", tasks_per_day=2)
    with fake_gateway.client_for(token) as team:
        first = team.post("/v1/tasks", json=BODY, headers={"Idempotency-Key": "one"}).json()
        team.post("/v1/tasks", json=BODY)
        over = team.post("/v1/tasks", json=BODY)
        assert over.status_code == 429
        error = over.json()["error"]
        assert error["code"] == "quota_exceeded" and "tasks_per_day (2)" in error["message"]
        assert "resets at" in error["message"] and int(over.headers["Retry-After"]) > 0
        # A retry of a create that went through is not a new task, so not refused.
        again = team.post("/v1/tasks", json=BODY, headers={"Idempotency-Key": "one"})
        assert again.status_code == 202 and again.json()["id"] == first["id"]
    # Quotas are per tenant.
    assert fake_gateway.client.post("/v1/tasks", json=BODY).status_code == 202
    eventually(lambda: len(fake.submits) == 3)


def test_provider_allow_list(fake_gateway: LiveGateway) -> None:
    token = issue(fake_gateway, "preview-only", providers=["preview"])
    with fake_gateway.client_for(token) as team:
        explicit = team.post("/v1/tasks", json=BODY)  # provider "fake"
        assert explicit.status_code == 403
        assert "may not use provider 'fake'" in explicit.json()["error"]["message"]
        routed = team.post("/v1/tasks", json={k: v for k, v in BODY.items() if k != "provider"})
        assert routed.status_code == 202 and routed.json()["provider"] == "preview"
    fake_only = issue(fake_gateway, "fake-only", providers=["fake"])
    with fake_gateway.client_for(fake_only) as team:
        routed = team.post("/v1/tasks", json={k: v for k, v in BODY.items() if k != "provider"})
        assert routed.status_code == 403  # the default route lands on preview
        assert "routed to provider 'preview'" in routed.json()["error"]["message"]
        assert team.post("/v1/tasks", json=BODY).status_code == 202


def test_replicas_share_rates_through_redis(
    gateway_factory: GatewayFactory, redis_url: str, tmp_path: Any
) -> None:
    """Two gateways on one Redis spend one bucket; with memory storage each has its own."""
    prefix = f"vgw-test-{uuid.uuid4().hex[:8]}"
    shared = {
        "limits": {"requests_per_s": 0.1, "burst": 2, "storage": redis_url, "key_prefix": prefix}
    }
    with (
        gateway_factory(shared, data_dir=tmp_path / "a") as a,
        gateway_factory(shared, data_dir=tmp_path / "b") as b,
    ):
        assert a.client.get("/v1/tasks").status_code == 200
        assert b.client.get("/v1/tasks").status_code == 200
        assert a.client.get("/v1/tasks").status_code == 429
        assert b.client.get("/v1/tasks").status_code == 429
        assert b.client.get("/readyz").json()["checks"]["limiter"] == "ok"
    alone = {"limits": {"requests_per_s": 0.1, "burst": 2}}
    with (
        gateway_factory(alone, data_dir=tmp_path / "c") as c,
        gateway_factory(alone, data_dir=tmp_path / "d") as d,
    ):
        assert [c.client.get("/v1/tasks").status_code for _ in range(2)] == [200, 200]
        assert [d.client.get("/v1/tasks").status_code for _ in range(2)] == [200, 200]


def test_an_unreachable_limiter_lets_requests_through(gateway_factory: GatewayFactory) -> None:
    from tests.emulators.server import free_port

    dead = f"redis://127.0.0.1:{free_port()}/0"
    with gateway_factory({"limits": {"requests_per_s": 0.1, "burst": 1, "storage": dead}}) as gw:
        assert [gw.client.get("/v1/tasks").status_code for _ in range(3)] == [200, 200, 200]
        ready = httpx.get(f"{gw.base_url}/readyz")
        assert ready.status_code == 503 and ready.json()["error"]["message"] == "not ready"
