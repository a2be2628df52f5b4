"""``GET /v1/admin/stats`` (every tenant's tasks, counted in the database) and ``GET /v1/me``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from app.errors import ContentRejectedError, ProviderAuthError
from tests.conftest import GatewayFactory, LiveGateway
from tests.fakes import ControlledProvider

QUICK = {"duration_ms": 500, "fps": 4}


def providers() -> dict[str, ControlledProvider]:
    """slow: runs until released (never, here); broken: its credentials are refused at submit;
    refused: takes the job, then its screening refuses the video."""
    slow, broken, refused = (ControlledProvider(n) for n in ("slow", "broken", "refused"))
    broken.submit_error = ProviderAuthError("broken refused the credentials", provider="broken")
    refused.fail_with = ContentRejectedError("the provider's screening refused the video")
    refused.release()
    return {"slow": slow, "broken": broken, "refused": refused}


def create(client: httpx.Client, prompt: str, provider: str | None = None) -> str:
    body: dict[str, Any] = {"prompt": prompt, **QUICK}
    if provider:
        body["provider"] = provider
    response = client.post("/v1/tasks", json=body)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def settle(gateway: LiveGateway, client: httpx.Client, task_id: str, status: str) -> None:
    """Wait (bounded long-polls) until the task has ``status``."""
    for _ in range(100):
        task = client.get(f"/v1/tasks/{task_id}", params={"wait_s": 1}).json()
        if task["status"] == status and (status != "running" or task["provider_task_id"]):
            return
    raise AssertionError(f"{task_id} never reached {status}: {task}")


def without_window_start(stats: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in stats.items() if key != "since"}


def test_stats_count_every_tenant_the_same_on_every_replica(
    gateway_factory: GatewayFactory, fresh_postgres_url: str, tmp_path: Path
) -> None:
    fakes = providers()
    overrides = {"database": {"url": fresh_postgres_url}}

    def replica(name: str) -> Any:
        return gateway_factory(overrides, data_dir=tmp_path / name, extra_providers=fakes)

    with replica("a") as a, replica("b") as b:
        issued = a.client.post("/v1/admin/tokens", json={"name": "team-b"})
        team = b.client_for(issued.json()["token"])  # a tenant of its own, on the other replica
        ours = [create(a.client, "fine one"), create(a.client, "fine two")]
        running = create(a.client, "takes forever", "slow")
        auth_failures = [create(a.client, "no access", "broken") for _ in range(2)]
        theirs = create(team, "their fine one")
        rejected = create(team, "refused later", "refused")
        for task_id in [*ours]:
            settle(a, a.client, task_id, "succeeded")
        settle(b, team, theirs, "succeeded")
        settle(a, a.client, running, "running")
        for task_id in auth_failures:
            settle(a, a.client, task_id, "failed")
        settle(b, team, rejected, "failed")

        assert team.get("/v1/admin/stats").status_code == 403
        assert httpx.get(f"{a.base_url}/v1/admin/stats").status_code == 401
        bad = a.client.get("/v1/admin/stats", params={"hours": 0})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error"

        stats = a.client.get("/v1/admin/stats").json()
        assert without_window_start(b.client.get("/v1/admin/stats").json()) == (
            without_window_start(stats)
        )
        assert stats["window_h"] == 24 and stats["total"] == 7
        assert stats["by_status"] == {"succeeded": 3, "failed": 3, "running": 1}
        assert stats["by_provider"] == {
            "preview": {"succeeded": 3},
            "slow": {"running": 1},
            "broken": {"failed": 2},
            "refused": {"failed": 1},
        }
        instance = a.client.get("/healthz").json()["instance"]
        assert stats["active"] == {
            "queued": 0,
            "running": 1,
            "by_provider": {"slow": {"queued": 0, "running": 1}},
            "by_instance": {instance: 1},
        }
        newest_auth = a.client.get(f"/v1/tasks/{auth_failures[1]}").json()
        assert stats["failures"] == [
            {
                "code": "provider_auth",
                "count": 2,
                "last_at": stats["failures"][0]["last_at"],
                "example": {
                    "task_id": auth_failures[1],
                    "message": newest_auth["error"]["message"],
                    "provider": "broken",
                },
            },
            {
                "code": "content_rejected",
                "count": 1,
                "last_at": stats["failures"][1]["last_at"],
                "example": {
                    "task_id": rejected,
                    "message": "the provider's screening refused the video",
                    "provider": "refused",
                },
            },
        ]
        assert "broken refused the credentials" in newest_auth["error"]["message"]
        team.close()
    fakes["slow"].release()


def test_me_and_stats_on_sqlite(gateway_factory: GatewayFactory) -> None:
    fakes = providers()
    with gateway_factory(
        {"limits": {"requests_per_s": 50, "burst": 100}}, extra_providers=fakes
    ) as gateway:
        me = gateway.client.get("/v1/me").json()
        assert me["admin"] is True and me["name"].startswith("config-")
        assert me["limits"] == {
            "requests_per_s": 50.0,
            "burst": 100,
            "max_active_tasks": None,
            "tasks_per_day": None,
        }
        assert me["providers"] is None
        assert me["usage"] == {"active_tasks": 0, "tasks_today": 0}

        issued = gateway.client.post(
            "/v1/admin/tokens",
            json={"name": "viewer", "tasks_per_day": 10, "providers": ["preview", "refused"]},
        ).json()
        with gateway.client_for(issued["token"]) as viewer:
            done = create(viewer, "counted today")
            failed = create(viewer, "refused later", "refused")
            settle(gateway, viewer, done, "succeeded")
            settle(gateway, viewer, failed, "failed")
            mine = viewer.get("/v1/me").json()
            assert viewer.get("/v1/admin/stats").status_code == 403
        assert mine == {
            "name": "viewer",
            "admin": False,
            "limits": {
                "requests_per_s": 50.0,
                "burst": 100,
                "max_active_tasks": None,
                "tasks_per_day": 10,
            },
            "providers": ["preview", "refused"],
            "usage": {"active_tasks": 0, "tasks_today": 2},
        }
        assert httpx.get(f"{gateway.base_url}/v1/me").status_code == 401

        stats = gateway.client.get("/v1/admin/stats", params={"hours": 1}).json()
        assert stats["window_h"] == 1 and stats["by_status"] == {"succeeded": 1, "failed": 1}
        assert [(f["code"], f["count"], f["example"]["task_id"]) for f in stats["failures"]] == [
            ("content_rejected", 1, failed)
        ]
        assert stats["active"]["running"] == 0 and stats["active"]["by_instance"] == {}
