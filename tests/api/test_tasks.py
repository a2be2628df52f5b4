"""The asynchronous API: submit, long-poll, list, cancel, idempotent retries."""

from __future__ import annotations

import concurrent.futures
import json
import time

import httpx
from fastapi import FastAPI, Request

from app.errors import ContentRejectedError
from tests.conftest import LiveGateway
from tests.emulators.server import serve_in_thread
from tests.fakes import ControlledProvider

QUICK = {"prompt": "quick", "duration_ms": 500, "fps": 4}


def test_submit_answers_202_at_once_and_long_poll_returns_when_done(
    fake_gateway: LiveGateway, fake: ControlledProvider
) -> None:
    created = fake_gateway.client.post("/v1/tasks", json={**QUICK, "provider": "fake"})
    assert created.status_code == 202
    task = created.json()
    assert task["status"] in ("queued", "running") and task["video_url"] is None
    assert task["provider"] == "fake"
    assert task["route_reason"] == "requested provider 'fake'"

    # Short long-poll: still running (the fake holds the job), with the provider's own word.
    polled = fake_gateway.wait_task(task["id"], lambda t: t["provider_status"] == "cooking")
    assert polled["status"] == "running" and polled["stage"] == "generating"
    assert polled["provider_status"] == "cooking" and polled["progress"] == 40
    assert polled["provider_task_id"] == f"fake-{task['id']}"

    fake.release()
    done = fake_gateway.client.get(f"/v1/tasks/{task['id']}", params={"wait_s": 20}).json()
    assert done["status"] == "succeeded" and done["progress"] == 100 and done["stage"] is None
    assert httpx.get(done["video_url"]).content == fake.video
    assert len(fake.submits) == 1


def test_list_is_newest_first_with_filters(
    fake_gateway: LiveGateway, fake: ControlledProvider
) -> None:
    first = fake_gateway.client.post("/v1/tasks", json={**QUICK, "prompt": "first"}).json()
    fake_gateway.client.get(f"/v1/tasks/{first['id']}", params={"wait_s": 20})
    second = fake_gateway.client.post(
        "/v1/tasks", json={**QUICK, "prompt": "second", "provider": "fake"}
    ).json()

    listed = fake_gateway.client.get("/v1/tasks").json()["data"]
    assert [t["id"] for t in listed] == [second["id"], first["id"]]
    succeeded = fake_gateway.client.get("/v1/tasks", params={"status": "succeeded"}).json()["data"]
    assert [t["id"] for t in succeeded] == [first["id"]]
    assert len(fake_gateway.client.get("/v1/tasks", params={"limit": 1}).json()["data"]) == 1


def test_cancel_a_running_task_also_cancels_at_the_provider(
    fake_gateway: LiveGateway, fake: ControlledProvider
) -> None:
    task = fake_gateway.client.post("/v1/tasks", json={**QUICK, "provider": "fake"}).json()
    fake_gateway.wait_task(task["id"], lambda t: t["provider_task_id"] is not None)
    cancelled = fake_gateway.client.delete(f"/v1/tasks/{task['id']}")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    assert fake.cancelled == [f"fake-{task['id']}"]

    fake.release()  # the provider finishing later must not resurrect the task
    again = fake_gateway.client.get(f"/v1/tasks/{task['id']}", params={"wait_s": 1}).json()
    assert again["status"] == "cancelled" and again["video_url"] is None
    # Cancelling an ended task changes nothing.
    assert fake_gateway.client.delete(f"/v1/tasks/{task['id']}").json()["status"] == "cancelled"


def test_an_admin_cancels_another_tenants_task_only_when_it_asks(
    fake_gateway: LiveGateway, fake: ControlledProvider
) -> None:
    issued = fake_gateway.client.post("/v1/admin/tokens", json={"name": "cancel-team"}).json()
    with fake_gateway.client_for(issued["token"]) as team:
        task = team.post("/v1/tasks", json={**QUICK, "provider": "fake"}).json()
        fake_gateway.wait_task(task["id"], lambda t: t["provider_task_id"] is not None, team)
        # A tenant cannot reach past its own tasks, and an admin does so only when it asks.
        assert team.delete(f"/v1/tasks/{task['id']}", params={"owner": "all"}).status_code == 403
        assert fake_gateway.client.delete(f"/v1/tasks/{task['id']}").status_code == 404
        assert fake.cancelled == []

        cancelled = fake_gateway.client.delete(
            f"/v1/tasks/{task['id']}", params={"owner": "cancel-team"}
        )
        assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
        assert cancelled.json()["owner"] == "cancel-team"
        assert fake.cancelled == [f"fake-{task['id']}"]
        assert team.get(f"/v1/tasks/{task['id']}").json()["status"] == "cancelled"


def test_cancel_of_a_finished_task_keeps_it(live_gateway: LiveGateway) -> None:
    done = live_gateway.client.post("/generate-video", json=QUICK).json()
    after = live_gateway.client.delete(f"/v1/tasks/{done['task_id']}").json()
    assert after["status"] == "succeeded" and after["video_url"]


def test_idempotency_key_returns_the_same_task(
    fake_gateway: LiveGateway, fake: ControlledProvider
) -> None:
    headers = {"Idempotency-Key": "dify-run-1"}
    body = {**QUICK, "provider": "fake"}
    first = fake_gateway.client.post("/v1/tasks", json=body, headers=headers).json()
    again = fake_gateway.client.post("/v1/tasks", json=body, headers=headers).json()
    assert again["id"] == first["id"]
    # wait_s does not change what is generated: a retry with another wait is the same request.
    fake.release()
    sync = fake_gateway.client.post("/generate-video", json={**body, "wait_s": 20}, headers=headers)
    assert sync.status_code == 200 and sync.json()["task_id"] == first["id"]
    assert len(fake.submits) == 1


def test_idempotency_key_with_another_body_is_409(fake_gateway: LiveGateway) -> None:
    headers = {"Idempotency-Key": "k-409"}
    fake_gateway.client.post("/v1/tasks", json=QUICK, headers=headers)
    conflict = fake_gateway.client.post(
        "/v1/tasks", json={**QUICK, "prompt": "other"}, headers=headers
    )
    assert conflict.status_code == 409
    assert conflict.json()["error"]["code"] == "conflict"


def test_idempotency_keys_are_per_token(fake_gateway: LiveGateway) -> None:
    headers = {"Idempotency-Key": "shared-key"}
    mine = fake_gateway.client.post("/v1/tasks", json=QUICK, headers=headers).json()
    with fake_gateway.client_for(fake_gateway.other_token) as other:
        theirs = other.post("/v1/tasks", json=QUICK, headers=headers).json()
    assert mine["id"] != theirs["id"]


def test_concurrent_retries_with_one_key_make_one_task(
    fake_gateway: LiveGateway, fake: ControlledProvider
) -> None:
    body = {**QUICK, "provider": "fake"}

    def post() -> str:
        with fake_gateway.client_for(fake_gateway.token) as client:
            response = client.post("/v1/tasks", json=body, headers={"Idempotency-Key": "race"})
            return str(response.json()["id"])

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        ids = set(pool.map(lambda _: post(), range(8)))
    assert len(ids) == 1
    fake_gateway.client.get(f"/v1/tasks/{ids.pop()}", params={"wait_s": 1})
    assert len(fake.submits) == 1


def test_failed_generation_answers_with_the_error_and_task_id(
    fake_gateway: LiveGateway, fake: ControlledProvider
) -> None:
    fake.fail_with = ContentRejectedError(
        "OutputVideoSensitiveContentDetected: the output was flagged"
    )
    fake.release()
    response = fake_gateway.client.post("/generate-video", json={**QUICK, "provider": "fake"})
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == {
        "code": "content_rejected",
        "message": "OutputVideoSensitiveContentDetected: the output was flagged",
        "retryable": False,
    }
    task = fake_gateway.client.get(f"/v1/tasks/{body['task_id']}").json()
    assert task["status"] == "failed" and task["error"] == body["error"]


def test_provider_deadline_fails_the_task_with_provider_timeout(
    fake_gateway: LiveGateway, fake: ControlledProvider
) -> None:
    fake.deadline_s = 0.5
    response = fake_gateway.client.post("/generate-video", json={**QUICK, "provider": "fake"})
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "provider_timeout"
    assert fake.cancelled  # the job was cancelled at the provider, not left running


def test_callback_url_gets_the_finished_task(
    fake_gateway: LiveGateway, fake: ControlledProvider
) -> None:
    received: list[dict] = []  # type: ignore[type-arg]

    receiver = FastAPI()

    @receiver.post("/done", status_code=204)
    async def done_hook(request: Request) -> None:
        received.append(json.loads(await request.body()))

    with serve_in_thread(receiver) as hook:
        fake.release()
        body = {**QUICK, "provider": "fake", "callback_url": f"{hook}/done", "metadata": {"run": 7}}
        done = fake_gateway.client.post("/generate-video", json=body).json()
        for _ in range(100):
            if received:
                break
            time.sleep(0.05)
    assert received and received[0]["type"] == "task.succeeded"
    task = received[0]["data"]
    assert task["id"] == done["task_id"]
    assert task["status"] == "succeeded" and task["metadata"] == {"run": 7}
