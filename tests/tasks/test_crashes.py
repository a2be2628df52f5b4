"""Gateways killed with SIGKILL: their tasks continue at once, elsewhere or after a restart,
and no job is ever paid for twice.

Every gateway here runs with hour-long leases, so a task that continues within the test can only
have been taken over through the dead process's instance lock (freed by the kernel with the
process on SQLite, by PostgreSQL with its connection) — never by waiting a lease out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.conftest import TOKEN, eventually
from tests.processes import GatewayProcess, running
from tests.tasks.conftest import ArkFactory, seedance_overrides

HOUR_LEASES = {"lease_s": 3600, "takeover_check_s": 0.2}


def overrides(ark_url: str, **sections: dict[str, Any]) -> dict[str, dict[str, Any]]:
    merged = {
        **seedance_overrides(ark_url),
        "auth": {"valid_tokens": f'["{TOKEN}"]'},
        "queue": dict(HOUR_LEASES),
    }
    for name, values in sections.items():
        merged[name] = {**merged.get(name, {}), **values}
    return merged


def submitted(client: httpx.Client, task_ids: list[str]) -> bool:
    return all(client.get(f"/v1/tasks/{i}").json()["provider_task_id"] for i in task_ids)


def final(client: httpx.Client, task_id: str) -> dict[str, Any]:
    for _ in range(30):
        task = client.get(f"/v1/tasks/{task_id}", params={"wait_s": 5}).json()
        if task["status"] in ("succeeded", "failed", "cancelled"):
            return task
    raise AssertionError(f"task {task_id} never ended: {task}")


def test_kill_9_then_restart_resumes_at_once_and_pays_once(
    ark_server: ArkFactory, tmp_path: Path
) -> None:
    with ark_server(queued_s=0.05, running_s=2.0) as emu:
        settings = overrides(emu.url)
        first = GatewayProcess(tmp_path / "data", settings).start()
        with first.client(TOKEN) as client:
            ids = [
                client.post("/v1/tasks", json={"prompt": f"crash test {n}"}).json()["id"]
                for n in range(3)
            ]
            eventually(lambda: submitted(client, ids))
        first.kill()

        with (
            running(GatewayProcess(tmp_path / "data", settings)) as (second,),
            second.client(TOKEN) as client,
        ):
            ended = [final(client, task_id) for task_id in ids]
    assert [task["status"] for task in ended] == ["succeeded"] * 3
    assert [len(emu.state.jobs_for(f"crash test {n}")) for n in range(3)] == [1, 1, 1]


def test_a_task_that_keeps_crashing_its_gateway_fails_with_a_reason(
    ark_server: ArkFactory, tmp_path: Path
) -> None:
    with ark_server(queued_s=0.05, running_s=600) as emu:
        settings = overrides(emu.url, queue={"max_attempts": 2})
        gateway = GatewayProcess(tmp_path / "data", settings).start()
        with gateway.client(TOKEN) as client:
            task_id = client.post("/v1/tasks", json={"prompt": "doomed"}).json()["id"]
            eventually(lambda: submitted(client, [task_id]))
        for _ in range(2):  # crash, restart, and see the job polled again
            gateway.kill()
            polls = len(emu.state.status_reads)
            gateway = GatewayProcess(tmp_path / "data", settings).start()
            eventually(lambda polls=polls: len(emu.state.status_reads) > polls)
        gateway.kill()
        with (
            running(GatewayProcess(tmp_path / "data", settings)) as (last,),
            last.client(TOKEN) as client,
        ):
            ended = final(client, task_id)
    assert ended["status"] == "failed"
    assert "interrupted" in ended["error"]["message"]
    assert len(emu.state.jobs_for("doomed")) == 1


def test_a_killed_replica_tasks_continue_on_the_others(
    ark_server: ArkFactory, fresh_postgres_url: str, tmp_path: Path
) -> None:
    with ark_server(queued_s=0.05, running_s=2.0) as emu:
        settings = overrides(emu.url, database={"url": fresh_postgres_url})
        replicas = [GatewayProcess(tmp_path / name, settings) for name in ("a", "b", "c")]
        with running(*replicas) as (doomed, *survivors):
            with doomed.client(TOKEN) as client:
                ids = [
                    client.post("/v1/tasks", json={"prompt": f"replica {n}"}).json()["id"]
                    for n in range(4)
                ]
                eventually(lambda: submitted(client, ids))
            doomed.kill()
            with survivors[0].client(TOKEN) as client:
                ended = [final(client, task_id) for task_id in ids]
    assert [task["status"] for task in ended] == ["succeeded"] * 4
    assert [len(emu.state.jobs_for(f"replica {n}")) for n in range(4)] == [1] * 4
