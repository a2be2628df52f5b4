"""The Seedance callback endpoint: a signed hint → look at the job now, and the job id for a task
whose create answer was lost; the body's state is never trusted. (End to end with the
emulator's real callbacks: ``tests/tasks/test_exactly_once.py``.)"""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from app.api.errors import install_error_handlers
from app.api.routes import callbacks
from app.config import load_settings
from app.providers.seedance import callback_secret, callback_signature

pytestmark = pytest.mark.anyio


class Tasks:
    """Stands in for TaskService (our own interface): records what the route asks of it."""

    def __init__(self) -> None:
        self.nudged: list[str] = []
        self.adopted: list[tuple[str, str, str]] = []
        self.looks: list[bool] = []

    async def nudge(self, task_id: str) -> None:
        self.nudged.append(task_id)

    async def adopt_job(self, task_id: str, provider: str, job_id: str, *, look: bool) -> None:
        self.adopted.append((task_id, provider, job_id))
        self.looks.append(look)
        if look:
            await self.nudge(task_id)


def app_with(api_key: str | None) -> tuple[FastAPI, Tasks]:
    overrides = {"seedance": {"api_key": api_key}} if api_key else {}
    settings = load_settings(None, environ={}, overrides=overrides)
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(callbacks.router)
    tasks = Tasks()
    app.state.settings, app.state.tasks = settings, tasks
    return app, tasks


async def post(app: FastAPI, path: str, *, status: str = "succeeded") -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        return await client.post(path, json={"id": "cgt-1", "status": status})


async def test_a_signed_callback_nudges_the_task() -> None:
    app, runner = app_with("ark-key-for-callbacks")
    secret = callback_secret(app.state.settings.seedance)
    assert secret is not None
    sig = callback_signature(secret, "vt_1")
    response = await post(app, f"/v1/callbacks/seedance/vt_1?sig={sig}")
    assert response.status_code == 200 and runner.nudged == ["vt_1"]
    assert runner.adopted == [("vt_1", "seedance", "cgt-1")]


async def test_a_job_still_going_is_adopted_but_not_read_at_once() -> None:
    """ "queued" and "running" cannot end a task: the job is adopted if the task lost its id,
    and otherwise left to its read schedule. Any other word (or none) is read at once."""
    app, runner = app_with("ark-key-for-callbacks")
    secret = callback_secret(app.state.settings.seedance)
    assert secret is not None
    path = f"/v1/callbacks/seedance/vt_1?sig={callback_signature(secret, 'vt_1')}"
    for status in ("queued", "running", "expired", "something new"):
        assert (await post(app, path, status=status)).status_code == 200
    assert len(runner.adopted) == 4
    assert runner.looks == [False, False, True, True]
    assert runner.nudged == ["vt_1", "vt_1"]


@pytest.mark.parametrize("query", ["", "?sig=deadbeef"])
async def test_an_unsigned_or_forged_callback_is_refused(query: str) -> None:
    app, runner = app_with("ark-key-for-callbacks")
    response = await post(app, f"/v1/callbacks/seedance/vt_1{query}")
    assert response.status_code == 403 and runner.nudged == []
    assert response.json()["error"]["code"] == "forbidden"


async def test_a_signature_for_another_task_is_refused() -> None:
    app, runner = app_with("ark-key-for-callbacks")
    secret = callback_secret(app.state.settings.seedance)
    assert secret is not None
    response = await post(
        app, f"/v1/callbacks/seedance/vt_2?sig={callback_signature(secret, 'vt_1')}"
    )
    assert response.status_code == 403 and runner.nudged == []


async def test_no_seedance_no_callbacks() -> None:
    app, _ = app_with(None)
    assert (await post(app, "/v1/callbacks/seedance/vt_1?sig=x")).status_code == 404
