"""Several gateways on one PostgreSQL store: each task is worked on by exactly one, and a
cancel through any of them stops the one working on it. (Crashes: ``test_crashes.py``.)"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import GatewayFactory, LiveGateway, eventually
from tests.fakes import ControlledProvider

BODY = {"prompt": "one of many replicas", "duration_ms": 500, "fps": 4, "provider": "fake"}


@pytest.fixture
def fake() -> ControlledProvider:
    return ControlledProvider()


@pytest.fixture
def replicas(
    gateway_factory: GatewayFactory, postgres_url: str, tmp_path: Path, fake: ControlledProvider
) -> Any:
    """``replicas(name)`` starts another gateway on the shared store (2 s leases)."""
    overrides = {"database": {"url": postgres_url}, "queue": {"lease_s": 2}}

    def start(name: str) -> Any:
        return gateway_factory(overrides, data_dir=tmp_path / name, extra_providers={"fake": fake})

    return start


@pytest.fixture
def two(replicas: Any, fake: ControlledProvider) -> Iterator[tuple[LiveGateway, LiveGateway]]:
    with replicas("a") as a, replicas("b") as b:
        yield a, b
        fake.release()


def test_a_task_runs_in_one_process_only(
    two: tuple[LiveGateway, LiveGateway], fake: ControlledProvider
) -> None:
    a, b = two
    task = a.client.post("/v1/tasks", json=BODY).json()
    a.wait_task(task["id"], lambda t: t["provider_task_id"] is not None)
    # Several lease rounds pass (2 s leases, renewed every ~0.7 s): b never takes it over.
    b.client.get(f"/v1/tasks/{task['id']}", params={"wait_s": 4})
    assert fake.resumed == [] and len(fake.submits) == 1
    assert b.app.state.runner.active == 0 and a.app.state.runner.active == 1

    fake.release()
    done = b.client.get(f"/v1/tasks/{task['id']}", params={"wait_s": 20}).json()
    assert done["status"] == "succeeded" and len(fake.submits) == 1


def test_cancel_through_another_process_stops_the_worker(
    two: tuple[LiveGateway, LiveGateway], fake: ControlledProvider
) -> None:
    a, b = two
    task = a.client.post("/v1/tasks", json=BODY).json()
    a.wait_task(task["id"], lambda t: t["provider_task_id"] is not None)
    assert b.client.delete(f"/v1/tasks/{task['id']}").json()["status"] == "cancelled"
    assert fake.cancelled == [f"fake-{task['id']}"]
    eventually(lambda: a.app.state.runner.active == 0)
    fake.release()
    assert a.client.get(f"/v1/tasks/{task['id']}").json()["status"] == "cancelled"
