"""The worker process, for real, serving the tiny CogVideoX-2b-style checkpoint over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from worker.tests.helpers import WorkerProcess, check_mp4, submit, wait_for_progress, wait_for_task

# ~0.13 s a step on a laptop-class CPU, ~13 s in all: easily caught running; always cancelled.
LONG_RUN = {"num_inference_steps": 100, "num_frames": 49, "width": 256, "height": 256}


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert isinstance(body["error"]["retryable"], bool)
    assert "detail" in body
    return body


def test_health_goes_from_starting_to_ready(t2v_worker: WorkerProcess) -> None:
    # The server answers while the model is still loading in the background.
    assert t2v_worker.observed[0] == "starting"
    assert t2v_worker.observed[-1] == "ready"
    assert set(t2v_worker.observed) <= {"starting", "ready"}
    with httpx.Client(base_url=t2v_worker.base_url) as anonymous:  # /health needs no token
        health = anonymous.get("/health").json()
    assert health["status"] == "ready"
    assert health["device"] == "cpu"
    assert health["dtype"] == "float32"  # CPU always runs in float32
    assert health["model"] == "CogVideoX-tiny"
    assert health["fps"] == 8
    assert health["model_info"]["family"] == "cogvideox-2b"
    assert (health["queue_length"], health["running"], health["max_queue"]) == (0, 0, 1)


def test_generate_produces_an_mp4_of_the_requested_frames_and_size(
    client: httpx.Client, tmp_path: Path
) -> None:
    task = submit(client, num_frames=17, width=48, height=32, fps=10, seed=1)
    assert task["status"] == "queued"
    done = wait_for_task(client, task["task_id"])
    assert done["status"] == "completed", done
    assert done["progress"] == 100
    assert (done["num_frames"], done["width"], done["height"], done["fps"]) == (17, 48, 32, 10)
    assert done["video_url"].endswith(f"/api/v1/videos/{task['task_id']}.mp4")

    video = client.get(done["video_url"])
    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4"
    assert check_mp4(video.content, tmp_path) == (17, (48, 32))


def test_one_status_read_answers_for_many_tasks(client: httpx.Client) -> None:
    first = submit(client, task_id="many-1", seed=1)
    second = submit(client, task_id="many-2", seed=2)
    wait_for_task(client, "many-2")
    answer = client.get("/api/v1/status", params={"ids": "many-2,unknown,many-1,many-2"})
    assert answer.status_code == 200, answer.text
    data = answer.json()["data"]
    assert [task["task_id"] for task in data] == ["many-2", "many-1"]  # unknown left out
    assert {task["status"] for task in data} <= {"queued", "processing", "completed"}
    assert data[0]["status"] == "completed" and data[0]["video_url"]
    assert first["task_id"] == "many-1" and second["task_id"] == "many-2"
    too_many = client.get("/api/v1/status", params={"ids": ",".join(f"t{n}" for n in range(501))})
    assert_error(too_many, 422, "validation_error")


def test_defaults_come_from_the_checkpoint(client: httpx.Client, tmp_path: Path) -> None:
    # Explicit nulls mean "not set". The tiny checkpoint: 96×64, 9 frames, 8 fps.
    nulls = dict.fromkeys(("num_frames", "width", "height", "fps", "negative_prompt", "image_url"))
    task = submit(client, seed=2, guidance_scale=None, **nulls)
    done = wait_for_task(client, task["task_id"])
    assert done["status"] == "completed", done
    assert check_mp4(client.get(done["video_url"]).content, tmp_path) == (9, (96, 64))
    assert done["fps"] == 8


def test_same_seed_gives_the_same_video(client: httpx.Client) -> None:
    videos = []
    for seed in (7, 7, 8):
        done = wait_for_task(client, submit(client, seed=seed)["task_id"])
        assert done["status"] == "completed", done
        assert done["seed"] == seed
        videos.append(client.get(done["video_url"]).content)
    assert videos[0] == videos[1]
    assert videos[0] != videos[2]


def test_a_drawn_seed_is_reported_and_reproduces(client: httpx.Client) -> None:
    first = wait_for_task(client, submit(client)["task_id"])
    again = wait_for_task(client, submit(client, seed=first["seed"])["task_id"])
    assert client.get(first["video_url"]).content == client.get(again["video_url"]).content


def test_a_client_task_id_makes_submit_idempotent(client: httpx.Client) -> None:
    first = submit(client, task_id="gateway-task-1", seed=3)
    assert (first["task_id"], first["created"]) == ("gateway-task-1", True)
    repeat = submit(client, task_id="gateway-task-1", seed=3)
    assert (repeat["task_id"], repeat["created"]) == ("gateway-task-1", False)
    other = client.post(
        "/api/v1/generate", json={"prompt": "another idea", "task_id": "gateway-task-1"}
    )
    assert_error(other, 409, "conflict")
    assert wait_for_task(client, "gateway-task-1")["status"] == "completed"


def test_cancel_stops_a_running_task_between_steps(client: httpx.Client) -> None:
    task = submit(client, **LONG_RUN)
    wait_for_progress(client, task["task_id"])  # at least one step done
    response = client.delete(f"/api/v1/tasks/{task['task_id']}")
    assert response.status_code == 200
    assert response.json()["cancel_requested"] is True
    done = wait_for_task(client, task["task_id"])
    assert done["status"] == "cancelled"
    assert done["progress"] < 90  # stopped before the last step
    assert done["video_url"] is None
    assert_error(client.get(f"/api/v1/videos/{task['task_id']}.mp4"), 409, "conflict")
    # The worker goes on serving.
    assert wait_for_task(client, submit(client)["task_id"])["status"] == "completed"


def test_a_full_queue_answers_429_with_retry_after(client: httpx.Client) -> None:
    running = submit(client, **LONG_RUN)
    wait_for_task(client, running["task_id"], until={"processing"})
    waiting = submit(client)  # the queue holds one
    assert client.get(f"/api/v1/status/{waiting['task_id']}").json()["queue_position"] == 1
    assert client.get("/health").json()["status"] == "busy"

    body = assert_error(
        client.post("/api/v1/generate", json={"prompt": "one too many"}), 429, "rate_limited"
    )
    assert body["error"]["retryable"] is True
    full = client.post("/api/v1/generate", json={"prompt": "one too many"})
    assert int(full.headers["retry-after"]) >= 1

    # Cancelling a queued task removes it at once.
    cancelled = client.delete(f"/api/v1/tasks/{waiting['task_id']}").json()
    assert cancelled["status"] == "cancelled"
    assert client.get("/health").json()["queue_length"] == 0
    client.delete(f"/api/v1/tasks/{running['task_id']}")
    assert wait_for_task(client, running["task_id"])["status"] == "cancelled"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"num_frames": 10}, "num_frames"),  # not 8N+1
        ({"num_frames": 57}, "num_frames"),  # more than 49 for a 1.0 model
        ({"num_frames": 1}, "num_frames"),
        ({"width": 100}, "width"),  # not divisible by 16
        ({"height": 40}, "height"),
        ({"num_inference_steps": 0}, "num_inference_steps"),
        ({"num_inference_steps": 101}, "num_inference_steps"),
        ({"prompt": ""}, "prompt"),
        ({"prompt": "   "}, "prompt"),
        ({"seed": -1}, "seed"),
        ({"task_id": "../../etc/passwd"}, "task_id"),
        ({"image_url": "http://127.0.0.1:9/x.png"}, "image_url"),  # a text-to-video model
    ],
)
def test_bad_parameters_are_rejected_before_queueing(
    client: httpx.Client, change: dict[str, Any], field: str
) -> None:
    payload = {
        "prompt": "a panda",
        "num_frames": 9,
        "num_inference_steps": 2,
        "task_id": "rejected",
        **change,
    }
    body = assert_error(client.post("/api/v1/generate", json=payload), 422, "validation_error")
    assert any(entry["loc"][-1] == field for entry in body["detail"]), body
    assert field in body["error"]["message"] or field.replace("_", " ") in body["error"]["message"]
    assert client.get("/api/v1/status/rejected").status_code == 404  # nothing was queued


def test_malformed_json_is_a_422(client: httpx.Client) -> None:
    response = client.post(
        "/api/v1/generate", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert_error(response, 422, "validation_error")


def test_unknown_task_is_a_404(client: httpx.Client) -> None:
    assert_error(client.get("/api/v1/status/nope"), 404, "not_found")
    assert_error(client.get("/api/v1/videos/nope.mp4"), 404, "not_found")
    assert_error(client.delete("/api/v1/tasks/nope"), 404, "not_found")


def test_bearer_token_is_required(t2v_worker: WorkerProcess) -> None:
    with httpx.Client(base_url=t2v_worker.base_url) as anonymous:
        missing = anonymous.post("/api/v1/generate", json={"prompt": "a panda"})
        assert_error(missing, 401, "unauthorized")
        assert missing.headers["www-authenticate"] == "Bearer"
        assert_error(
            anonymous.get("/api/v1/status/x", headers={"Authorization": "Basic eDp5"}),
            401,
            "unauthorized",
        )
    with t2v_worker.client(token="wrong-token") as wrong:
        assert_error(wrong.get("/api/v1/status/x"), 403, "forbidden")
