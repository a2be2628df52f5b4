"""Webhooks: signed per Standard Webhooks (verified with the ``standardwebhooks`` package),
retried under one webhook-id with the same body, chosen by ``callback_events``, and kept in an
outbox that outlives a SIGKILL."""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI, Request, Response
from standardwebhooks.webhooks import Webhook

from app.tasks.outbox import outbox_table
from tests.conftest import TOKEN, GatewayFactory, eventually
from tests.emulators.server import free_port, serve_in_thread
from tests.fakes import ControlledProvider
from tests.processes import GatewayProcess, running

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
QUICK = {"prompt": "call me back", "duration_ms": 500, "fps": 4}


@dataclass
class Delivery:
    headers: dict[str, str]
    body: bytes

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    def verified(self) -> Any:
        return Webhook(SECRET).verify(self.body, self.headers)


@dataclass
class Receiver:
    url: str
    deliveries: list[Delivery] = field(default_factory=list)
    fail_first: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


@contextlib.contextmanager
def receiver(*, fail_first: int = 0, port: int | None = None) -> Iterator[Receiver]:
    app = FastAPI()
    state = Receiver(url="", fail_first=fail_first)

    @app.post("/hook")
    async def hook(request: Request) -> Response:
        delivery = Delivery(dict(request.headers), await request.body())
        with state.lock:
            state.deliveries.append(delivery)
            failing = len(state.deliveries) <= state.fail_first
        return Response(status_code=503 if failing else 204)

    with serve_in_thread(app, port=port) as url:
        state.url = f"{url}/hook"
        yield state


@pytest.fixture
def fake() -> ControlledProvider:
    fake = ControlledProvider()
    fake.release()
    return fake


def signed(factory: GatewayFactory, fake: ControlledProvider) -> Any:
    return factory({"webhooks": {"secret": SECRET}}, extra_providers={"fake": fake})


def test_a_delivery_is_signed_and_carries_the_task(
    gateway_factory: GatewayFactory, fake: ControlledProvider
) -> None:
    with receiver() as hook, signed(gateway_factory, fake) as gateway:
        body = {**QUICK, "provider": "fake", "callback_url": hook.url, "metadata": {"run": 7}}
        task = gateway.client.post("/v1/tasks", json=body).json()
        eventually(lambda: len(hook.deliveries) == 1)
        shown = gateway.client.get(f"/v1/tasks/{task['id']}").json()
    [delivery] = hook.deliveries
    event = delivery.verified()  # raises unless the signature and timestamp check out
    assert event["type"] == "task.succeeded" and event["timestamp"]
    assert event["data"]["id"] == task["id"] and event["data"]["metadata"] == {"run": 7}
    assert event["data"]["status"] == "succeeded" and event["data"]["video_url"]
    assert delivery.id.startswith("msg_")
    assert {k: v for k, v in event["data"].items() if k not in ("video_url", "expires_at")} == {
        k: v for k, v in shown.items() if k not in ("video_url", "expires_at")
    }
    forged = Delivery({**delivery.headers}, delivery.body.replace(b"succeeded", b"failed"))
    with pytest.raises(Exception, match="signature"):
        forged.verified()


def test_retries_keep_one_webhook_id_and_the_same_body(
    gateway_factory: GatewayFactory, fake: ControlledProvider
) -> None:
    with receiver(fail_first=2) as hook, signed(gateway_factory, fake) as gateway:
        body = {**QUICK, "provider": "fake", "callback_url": hook.url}
        gateway.client.post("/v1/tasks", json=body)
        eventually(lambda: len(hook.deliveries) == 3, rounds=300)
    ids = {delivery.id for delivery in hook.deliveries}
    bodies = {delivery.body for delivery in hook.deliveries}
    assert len(ids) == 1 and len(bodies) == 1
    assert all(delivery.verified()["type"] == "task.succeeded" for delivery in hook.deliveries)


def test_callback_events_choose_what_is_sent_in_order(gateway_factory: GatewayFactory) -> None:
    slow = ControlledProvider()  # its jobs run until released
    with receiver() as hook, signed(gateway_factory, slow) as gateway:
        only_failures = {**QUICK, "provider": "fake", "callback_url": hook.url}
        only_failures["callback_events"] = ["failed"]
        quiet = gateway.client.post("/v1/tasks", json=only_failures).json()
        everything = {**only_failures, "callback_events": ["progress", "succeeded"]}
        loud = gateway.client.post("/v1/tasks", json=everything).json()
        eventually(lambda: any(d.verified()["type"] == "task.progress" for d in hook.deliveries))
        slow.release()
        gateway.wait_task(quiet["id"], lambda t: t["status"] == "succeeded")
        eventually(lambda: any(d.verified()["type"] == "task.succeeded" for d in hook.deliveries))
        bad = gateway.client.post(
            "/v1/tasks", json={**QUICK, "callback_events": ["succeeded"]}
        )  # no callback_url
    events = [delivery.verified() for delivery in hook.deliveries]
    assert {event["data"]["id"] for event in events} == {loud["id"]}
    types = [event["type"] for event in events]
    # One task's events arrive in order; the end event is the last.
    assert types[-1] == "task.succeeded" and types.count("task.succeeded") == 1
    assert set(types[:-1]) == {"task.progress"}
    stamps = [event["timestamp"] for event in events]
    assert stamps == sorted(stamps)
    assert bad.status_code == 422 and "callback_url" in bad.json()["error"]["message"]


def test_progress_not_yet_sent_when_a_task_ends_is_superseded(
    gateway_factory: GatewayFactory, fake: ControlledProvider
) -> None:
    """Progress events that could not go out before the task ended are superseded: the
    receiver, back up, gets the end event and nothing after it."""
    port = free_port()  # nothing listens while the task runs: every delivery fails
    with signed(gateway_factory, fake) as gateway:
        body = {**QUICK, "provider": "fake", "callback_url": f"http://127.0.0.1:{port}/hook"}
        body["callback_events"] = ["progress", "succeeded"]
        task = gateway.client.post("/v1/tasks", json=body).json()
        gateway.wait_task(task["id"], lambda t: t["status"] == "succeeded")
        rows: list[Any] = []

        def delivered() -> bool:
            with gateway.app.state.store.engine.connect() as conn:
                rows[:] = conn.execute(
                    sa.select(outbox_table.c.event, outbox_table.c.status).where(
                        outbox_table.c.task_id == task["id"]
                    )
                ).all()
            return ("task.succeeded", "delivered") in rows

        with receiver(port=port) as hook:
            eventually(delivered, rounds=600)
    assert [delivery.verified()["type"] for delivery in hook.deliveries] == ["task.succeeded"]
    assert ("task.progress", "superseded") in rows


def test_an_undelivered_webhook_survives_kill_9(tmp_path: Path) -> None:
    hook_port = free_port()  # nothing listens yet: deliveries fail and wait in the outbox
    settings = {
        "auth": {"valid_tokens": f'["{TOKEN}"]'},
        "webhooks": {"secret": SECRET},
    }
    gateway = GatewayProcess(tmp_path / "data", settings).start()
    with gateway.client(TOKEN) as client:
        body = {**QUICK, "callback_url": f"http://127.0.0.1:{hook_port}/hook"}
        task = client.post("/v1/tasks", json=body).json()
        done = client.get(f"/v1/tasks/{task['id']}", params={"wait_s": 30}).json()
    assert done["status"] == "succeeded"
    gateway.kill()

    with receiver(port=hook_port) as hook, running(GatewayProcess(tmp_path / "data", settings)):
        eventually(lambda: len(hook.deliveries) >= 1, rounds=600)
    event = hook.deliveries[0].verified()
    assert event["type"] == "task.succeeded" and event["data"]["id"] == task["id"]
    assert json.loads(hook.deliveries[0].body)["data"]["status"] == "succeeded"
