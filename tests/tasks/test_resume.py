"""A task accepted is a task that ends, across restarts, without paying twice."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import GatewayFactory
from tests.fakes import ControlledProvider

BODY = {"prompt": "survive a restart", "duration_ms": 500, "fps": 4}


def test_restart_mid_task_resumes_polling_and_never_resubmits(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    fake = ControlledProvider()
    data_dir = tmp_path / "shared-data"
    with gateway_factory(data_dir=data_dir, extra_providers={"fake": fake}) as first:
        task = first.client.post("/v1/tasks", json={**BODY, "provider": "fake"}).json()
        running = first.wait_task(task["id"], lambda t: t["provider_task_id"] is not None)
        assert running["status"] == "running"
    # The first gateway is gone with its runner; the task is still running in the store.
    assert len(fake.submits) == 1

    fake.release()
    with gateway_factory(data_dir=data_dir, extra_providers={"fake": fake}) as second:
        done = second.client.get(f"/v1/tasks/{task['id']}", params={"wait_s": 20}).json()
        assert done["status"] == "succeeded"
        assert httpx.get(done["video_url"]).content == fake.video
    assert len(fake.submits) == 1
    assert fake.resumed == [running["provider_task_id"]]


def test_restart_during_a_preview_render_still_ends_with_a_video(
    gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    data_dir = tmp_path / "shared-data"
    body = {"prompt": "long render", "duration_ms": 12_000, "fps": 50}
    with gateway_factory(data_dir=data_dir) as first:
        task = first.client.post("/v1/tasks", json=body).json()
        rendering = first.wait_task(task["id"], lambda t: t["provider_task_id"] is not None)
        assert rendering["status"] == "running"  # stopped mid-render
    with gateway_factory(data_dir=data_dir) as second:
        done = second.client.get(f"/v1/tasks/{task['id']}", params={"wait_s": 60}).json()
        assert done["status"] == "succeeded", done
        assert done["params"]["frames"] == 600
