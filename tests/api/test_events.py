"""Live task events over Server-Sent Events (``httpx-sse``) and WebSockets (``websockets``),
against a live fake_gateway: every change in order, the terminal event last, a reconnect with
``Last-Event-ID`` that misses nothing, tenancy, and a stream through another replica."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from tests.conftest import GatewayFactory, LiveGateway
from tests.fakes import ControlledProvider

BODY = {"prompt": "watch me", "duration_ms": 500, "fps": 4, "provider": "fake"}
TERMINAL = {"succeeded", "failed", "cancelled"}


def read_sse(
    client: httpx.Client, task_id: str, *, last_event_id: str | None = None, stop: int = 0
) -> list[tuple[str, str, dict[str, Any]]]:
    """(type, id, data) of each event until the terminal one (or ``stop`` events)."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id is not None else {}
    seen = []
    with connect_sse(client, "GET", f"/v1/tasks/{task_id}/events", headers=headers) as source:
        assert source.response.headers["content-type"].startswith("text/event-stream")
        for sse in source.iter_sse():
            seen.append((sse.event, sse.id, json.loads(sse.data)))
            if sse.event in TERMINAL or len(seen) == stop:
                break
    return seen


def test_sse_streams_every_change_and_ends_with_the_terminal_event(
    fake_gateway: LiveGateway, fake: ControlledProvider
) -> None:
    task = fake_gateway.client.post("/v1/tasks", json=BODY).json()
    fake_gateway.wait_task(task["id"], lambda t: t["progress"] == 40)  # the job is cooking
    first = read_sse(fake_gateway.client, task["id"], stop=1)
    threading.Timer(0.2, fake.release).start()
    events = read_sse(fake_gateway.client, task["id"], last_event_id=first[0][1])
    types = [kind for kind, _, _ in events]
    assert first[0][0] == "status" and first[0][2]["progress"] == 40
    assert types[-1] == "succeeded" and set(types[:-1]) <= {"status", "progress"}
    stages = [data["stage"] for _, _, data in events]
    assert "downloading" in stages and "uploading" in stages
    final = events[-1][2]
    assert final["id"] == task["id"] and final["video_url"] and final["progress"] == 100
    ids = [int(event_id) for _, event_id, _ in events]
    assert ids == sorted(set(ids)) and ids[0] > int(first[0][1])
    # Mid-way events show the task as it was then, not its end.
    assert all(data["video_url"] is None for kind, _, data in events if kind != "succeeded")


def test_a_reconnect_with_last_event_id_misses_nothing(
    fake_gateway: LiveGateway, fake: ControlledProvider
) -> None:
    task = fake_gateway.client.post("/v1/tasks", json=BODY).json()
    fake.release()
    fake_gateway.wait_task(task["id"], lambda t: t["status"] == "succeeded")
    everything = read_sse(fake_gateway.client, task["id"], last_event_id="0")
    assert everything[-1][0] == "succeeded" and len(everything) >= 4
    # A client that had seen the first two events and lost its connection.
    resumed = read_sse(fake_gateway.client, task["id"], last_event_id=everything[1][1])
    assert [(k, i) for k, i, _ in resumed] == [(k, i) for k, i, _ in everything[2:]]
    # A client connecting after the end gets the end at once.
    assert [k for k, _, _ in read_sse(fake_gateway.client, task["id"])] == ["succeeded"]


def test_streams_are_for_the_tasks_owner_only(fake_gateway: LiveGateway) -> None:
    task = fake_gateway.client.post("/v1/tasks", json=BODY).json()
    with fake_gateway.client_for(fake_gateway.other_token) as other:
        answer = other.get(f"/v1/tasks/{task['id']}/events")
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"
    assert httpx.get(f"{fake_gateway.base_url}/v1/tasks/{task['id']}/events").status_code == 401
    bad = fake_gateway.client.get(
        f"/v1/tasks/{task['id']}/events", headers={"Last-Event-ID": "nonsense"}
    )
    assert bad.status_code == 422
    ws_url = fake_gateway.base_url.replace("http", "ws") + f"/v1/tasks/{task['id']}/ws"
    for url, headers, status in (
        (f"{ws_url}?token={fake_gateway.other_token}", {}, 404),
        (ws_url, {}, 401),
        (ws_url, {"Authorization": "Bearer not-a-token-at-all"}, 403),
    ):
        with pytest.raises(InvalidStatus) as refused:
            ws_connect(url, additional_headers=headers).close()
        assert refused.value.response.status_code == status


@pytest.mark.parametrize("token_in", ["header", "query"])
def test_the_websocket_streams_the_same_events(
    fake_gateway: LiveGateway, fake: ControlledProvider, token_in: str
) -> None:
    task = fake_gateway.client.post("/v1/tasks", json=BODY).json()
    fake_gateway.wait_task(task["id"], lambda t: t["progress"] == 40)
    url = fake_gateway.base_url.replace("http", "ws") + f"/v1/tasks/{task['id']}/ws"
    headers = {}
    if token_in == "header":
        headers["Authorization"] = f"Bearer {fake_gateway.token}"
    else:
        url += f"?token={fake_gateway.token}"
    messages = []
    with ws_connect(url, additional_headers=headers) as ws:
        messages.append(json.loads(ws.recv(timeout=30)))
        fake.release()
        for raw in ws:  # ends when the server closes after the terminal event
            messages.append(json.loads(raw))
    assert messages[0]["type"] == "status" and messages[0]["data"]["id"] == task["id"]
    assert messages[-1]["type"] == "succeeded" and messages[-1]["data"]["video_url"]
    sse = read_sse(fake_gateway.client, task["id"], last_event_id=str(messages[0]["id"]))
    assert [(m["type"], str(m["id"])) for m in messages[1:]] == [(k, i) for k, i, _ in sse]


def test_a_stream_through_another_replica(
    gateway_factory: GatewayFactory, postgres_url: str, tmp_path: Path, fake: ControlledProvider
) -> None:
    overrides = {"database": {"url": postgres_url}, "queue": {"lease_s": 2}}
    extra = {"extra_providers": {"fake": fake}}
    with (
        gateway_factory(overrides, data_dir=tmp_path / "a", **extra) as a,
        gateway_factory(overrides, data_dir=tmp_path / "b", **extra) as b,
    ):
        task = a.client.post("/v1/tasks", json=BODY).json()
        a.wait_task(task["id"], lambda t: t["progress"] == 40)
        assert a.app.state.runner.active == 1 and b.app.state.runner.active == 0
        first = read_sse(b.client, task["id"], stop=1)
        threading.Timer(0.3, fake.release).start()
        rest = read_sse(b.client, task["id"], last_event_id=first[0][1])
        assert b.app.state.runner.active == 0  # B only watched; A did the work
    types = [kind for kind, _, _ in rest]
    assert types[-1] == "succeeded" and "status" in types
    assert rest[-1][2]["video_url"]
