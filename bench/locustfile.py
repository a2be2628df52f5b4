"""Locust users for the gateway: create a task, long-poll it to the end, fetch the video.

Run headless by ``bench/locust_run.py`` (which starts the Ark emulator and a gateway, or drives
one you name); by hand:

    .venv-locust/bin/locust -f bench/locustfile.py --headless -u 20 -r 5 -t 60s \
        --host http://127.0.0.1:8000

``VGW_TOKEN`` is the bearer token. Each endpoint is its own line in Locust's statistics:
``POST /v1/tasks``, ``GET /v1/tasks/{id}?wait_s`` (the long-poll: its time is the wait for the
task, not server overhead), ``GET /v1/tasks`` and ``GET video``.
"""

from __future__ import annotations

import os
import uuid

from locust import HttpUser, between, task

TERMINAL = {"succeeded", "failed", "cancelled"}
PROMPTS = [
    "a paper boat drifting down a rainy street",
    "小男孩在草地上踢足球",
    "a lighthouse at dusk, waves breaking, slow dolly in",
    "product shot of a ceramic mug on a wooden table",
]


class VideoUser(HttpUser):
    wait_time = between(0.5, 1.5)

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Bearer {os.environ['VGW_TOKEN']}"

    @task(4)
    def create_and_wait(self) -> None:
        # A new idea every time: identical requests would be answered from the result cache.
        body = {
            "prompt": f"{PROMPTS[uuid.uuid4().int % len(PROMPTS)]} (take {uuid.uuid4().hex[:8]})",
            "duration_ms": 5000,
        }
        with self.client.post(
            "/v1/tasks",
            json=body,
            headers={"Idempotency-Key": uuid.uuid4().hex},
            name="POST /v1/tasks",
            catch_response=True,
        ) as created:
            if created.status_code != 202:
                created.failure(f"HTTP {created.status_code}: {created.text[:200]}")
                return
            task_id = created.json()["id"]
        state: dict[str, object] = {}
        for _ in range(10):
            with self.client.get(
                f"/v1/tasks/{task_id}",
                params={"wait_s": 20},
                name="GET /v1/tasks/{id}?wait_s",
                catch_response=True,
            ) as polled:
                if polled.status_code != 200:
                    polled.failure(f"HTTP {polled.status_code}")
                    return
                state = polled.json()
            if state.get("status") in TERMINAL:
                break
        if state.get("status") != "succeeded":
            self.environment.events.request.fire(
                request_type="TASK",
                name="task ended succeeded",
                response_time=0,
                response_length=0,
                exception=RuntimeError(f"task ended {state.get('status')}: {state.get('error')}"),
            )
            return
        with self.client.get(
            str(state["video_url"]), name="GET video", stream=True, catch_response=True
        ) as video:
            if video.status_code != 200 or video.raw.read(8)[4:8] != b"ftyp":
                video.failure(f"HTTP {video.status_code} or not an MP4")

    @task(1)
    def list_tasks(self) -> None:
        self.client.get("/v1/tasks", params={"limit": 10}, name="GET /v1/tasks")
