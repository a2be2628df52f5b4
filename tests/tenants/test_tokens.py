"""Managed tokens end to end: the CLI a operator types, the HTTP API a client calls."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import GatewayFactory, LiveGateway, eventually
from tests.tenants.conftest import issued_token, run_cli

BODY = {"prompt": "tenant token test", "duration_ms": 500, "fps": 4}


def config_for(gateway: LiveGateway, tmp_path: Path) -> Path:
    """A config.ini that points the CLI at the gateway's database."""
    path = tmp_path / "cli.ini"
    path.write_text(f"[server]\ndata_dir = {gateway.data_dir}\n", encoding="utf-8")
    return path


def status(gateway: LiveGateway, token: str, path: str = "/v1/tasks") -> int:
    response = httpx.get(gateway.base_url + path, headers={"Authorization": f"Bearer {token}"})
    return response.status_code


def test_create_use_rotate_revoke(gateway_factory: GatewayFactory, tmp_path: Path) -> None:
    # cache_s = 0: every request reads the database, so the test needs no waiting for a cache.
    with gateway_factory({"auth": {"cache_s": 0}}) as gateway:
        config = config_for(gateway, tmp_path)
        created = run_cli(
            config, "tokens", "create", "--name", "team-a", "--rate", "100", "--max-active", "20",
            "--tasks-per-day", "500", "--providers", "seedance,preview",
        )  # fmt: skip
        assert created.returncode == 0, created.stderr
        first = issued_token(created.stdout)

        with gateway.client_for(first) as team:
            task = team.post("/v1/tasks", json=BODY).json()
            assert team.get(f"/v1/tasks/{task['id']}").status_code == 200
            assert status(gateway, first, "/metrics") == 403  # not an admin
        # Another tenant does not see it; the configured (admin) token only when it asks.
        assert gateway.client.get(f"/v1/tasks/{task['id']}").status_code == 404
        seen = gateway.client.get("/v1/tasks", params={"owner": "team-a"}).json()["data"]
        assert [t["id"] for t in seen] == [task["id"]]

        listed = run_cli(config, "tokens", "list")
        assert listed.returncode == 0, listed.stderr
        assert "team-a" in listed.stdout and "seedance,preview" in listed.stdout
        assert first not in listed.stdout and first[4:] not in listed.stdout

        rotated = run_cli(config, "tokens", "rotate", "team-a", "--grace", "2s")
        assert rotated.returncode == 0, rotated.stderr
        second = issued_token(rotated.stdout)
        assert second != first
        # The new token sees the tenant's tasks: the owner is the tenant, not the token.
        with gateway.client_for(second) as team:
            assert team.get(f"/v1/tasks/{task['id']}").json()["id"] == task["id"]
        # The old one works during the grace and is refused once it is over.
        assert status(gateway, first) == 200
        eventually(lambda: status(gateway, first) == 403, rounds=200)
        assert status(gateway, second) == 200

        revoked = run_cli(config, "tokens", "revoke", "team-a")
        assert revoked.returncode == 0, revoked.stderr
        assert status(gateway, second) == 403
        assert "revoked" in run_cli(config, "tokens", "list").stdout

        # Rotating a revoked tenant gives it a token again, with its tasks.
        third = issued_token(run_cli(config, "tokens", "rotate", "team-a").stdout)
        with gateway.client_for(third) as team:
            assert [t["id"] for t in team.get("/v1/tasks").json()["data"]] == [task["id"]]


def test_cli_errors_are_clear(live_gateway: LiveGateway, tmp_path: Path) -> None:
    config = config_for(live_gateway, tmp_path)
    assert run_cli(config, "tokens", "create", "--name", "dup").returncode == 0
    again = run_cli(config, "tokens", "create", "--name", "dup")
    assert again.returncode == 1 and "already exists" in again.stderr
    missing = run_cli(config, "tokens", "revoke", "nobody")
    assert missing.returncode == 1 and "no token named 'nobody'" in missing.stderr
    bad = run_cli(config, "tokens", "create", "--name", "../etc")
    assert bad.returncode == 1 and "token name" in bad.stderr


def test_a_revoke_reaches_a_replica_within_the_cache_time(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    with gateway_factory({"auth": {"cache_s": 1}}) as gateway:
        issued = gateway.client.post("/v1/admin/tokens", json={"name": "cached"}).json()
        token = issued["token"]
        assert status(gateway, token) == 200  # now cached on this replica
        run_cli(config_for(gateway, tmp_path), "tokens", "revoke", "cached")
        eventually(lambda: status(gateway, token) == 403, rounds=200)


def test_admin_api(live_gateway: LiveGateway) -> None:
    admin = live_gateway.client  # configured tokens are the operator's: admins
    created = admin.post(
        "/v1/admin/tokens",
        json={"name": "console-team", "max_active_tasks": 3, "providers": ["preview"]},
    )
    assert created.status_code == 201, created.text
    issued = created.json()
    token = issued.pop("token")
    assert token.startswith("vgw_") and issued["hint"] == token[:8] + "…"
    assert issued["usage"] == {"active_tasks": 0, "tasks_today": 0}

    with live_gateway.client_for(token) as team:
        teams = team.post("/v1/tasks", json=BODY)
        assert teams.status_code == 202 and teams.json()["owner"] is None
        assert team.get("/v1/admin/tokens").status_code == 403
        assert team.get("/v1/tasks", params={"owner": "all"}).status_code == 403

    listed = admin.get("/v1/admin/tokens").json()["data"]
    assert [t["name"] for t in listed] == ["console-team"]
    assert listed[0]["usage"]["tasks_today"] == 1 and "token" not in listed[0]
    assert all(token not in str(v) for v in listed[0].values())

    changed = admin.patch("/v1/admin/tokens/console-team", json={"max_active_tasks": None})
    assert changed.json()["max_active_tasks"] is None
    assert changed.json()["providers"] == ["preview"]

    rotated = admin.post("/v1/admin/tokens/console-team/rotate", json={"grace_s": 60}).json()
    assert rotated["token"] != token and rotated["previous_valid_until"] is not None
    assert status(live_gateway, token) == 200 and status(live_gateway, rotated["token"]) == 200
    revoked = admin.post("/v1/admin/tokens/console-team/revoke").json()
    assert revoked["status"] == "revoked"
    assert status(live_gateway, token) == 403 and status(live_gateway, rotated["token"]) == 403

    own = admin.post("/v1/tasks", json=BODY).json()
    everyone = admin.get("/v1/tasks", params={"owner": "all"}).json()["data"]
    # Each task says whose it is, by the name the admin knows (a revoked tenant's too).
    me = admin.get("/v1/me").json()["name"]
    owners = {t["id"]: t["owner"] for t in everyone}
    assert owners == {own["id"]: me, teams.json()["id"]: "console-team"}
    one = admin.get(f"/v1/tasks/{teams.json()['id']}", params={"owner": "all"}).json()
    assert one["owner"] == "console-team"
    assert admin.get(f"/v1/tasks/{own['id']}").json()["owner"] is None  # not asked: not said
    assert admin.get("/v1/tasks", params={"owner": "no-such-team"}).status_code == 404
    assert admin.post("/v1/admin/tokens", json={"name": "console-team"}).status_code == 409
    assert admin.post("/v1/admin/tokens", json={"name": "bad name"}).status_code == 422
    assert admin.post("/v1/admin/tokens/nobody/revoke").status_code == 404


def test_ops_endpoints(live_gateway: LiveGateway) -> None:
    team = live_gateway.client.post("/v1/admin/tokens", json={"name": "ops-team"}).json()
    assert status(live_gateway, team["token"], "/metrics") == 403
    assert live_gateway.client.get("/metrics").status_code == 200
    anonymous = httpx.get(f"{live_gateway.base_url}/readyz").json()
    assert anonymous == {"status": "ready"}
    as_team = httpx.get(
        f"{live_gateway.base_url}/readyz", headers={"Authorization": f"Bearer {team['token']}"}
    ).json()
    assert as_team == {"status": "ready"}
    assert "checks" in live_gateway.client.get("/readyz").json()


def test_readiness_is_probed_once_per_interval(live_gateway: LiveGateway) -> None:
    calls = []
    readiness = live_gateway.app.state.readiness

    async def counted() -> None:
        calls.append(1)

    readiness._checks = {"store": counted}
    readiness._results = None
    for _ in range(20):
        assert httpx.get(f"{live_gateway.base_url}/readyz").status_code == 200
    assert len(calls) == 1


def test_not_ready_says_no_more_than_that(live_gateway: LiveGateway) -> None:
    readiness = live_gateway.app.state.readiness

    async def broken() -> None:
        raise ConnectionError("redis://secret-host:6379 refused")

    readiness._checks = {"store": broken}
    readiness._results = None
    anonymous = httpx.get(f"{live_gateway.base_url}/readyz")
    assert anonymous.status_code == 503
    assert anonymous.json()["error"] == {
        "code": "unavailable",
        "message": "not ready",
        "retryable": True,
    }
    assert "secret-host" not in anonymous.text and "store" not in anonymous.text
    admin = live_gateway.client.get("/readyz")
    assert admin.status_code == 503 and admin.json()["detail"] == {"store": "ConnectionError"}
