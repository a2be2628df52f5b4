"""The worker serving the tiny CogVideoX-5b-I2V-style checkpoint: image_url and uploaded images."""

from __future__ import annotations

import functools
import io
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from PIL import Image

from worker.tests.helpers import WorkerProcess, check_mp4, wait_for_task


def png(color: tuple[int, int, int], size: tuple[int, int] = (96, 64)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def image_server(tmp_path: Path) -> Iterator[str]:
    """A local HTTP server with /red.png and /not-an-image.png."""
    (tmp_path / "red.png").write_bytes(png((220, 20, 20)))
    (tmp_path / "not-an-image.png").write_bytes(b"this is text")
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(tmp_path))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def client(i2v_worker: WorkerProcess) -> Iterator[httpx.Client]:
    with i2v_worker.client() as c:
        yield c


BODY = {
    "prompt": "the red card starts to spin",
    "num_frames": 9,
    "num_inference_steps": 2,
    "seed": 5,
}


def test_health_reports_an_image_to_video_model(client: httpx.Client) -> None:
    health = client.get("/health").json()
    assert health["status"] == "ready"
    assert health["model_info"]["family"] == "cogvideox-5b-i2v"
    assert health["model_info"]["fixed_size"] is True


def test_image_url_and_upload_give_the_same_video(
    client: httpx.Client, image_server: str, tmp_path: Path
) -> None:
    by_url = client.post("/api/v1/generate", json={**BODY, "image_url": f"{image_server}/red.png"})
    assert by_url.status_code == 202, by_url.text
    form = {key: str(value) for key, value in BODY.items()}
    uploaded = client.post(
        "/api/v1/generate", data=form, files={"image": ("red.png", png((220, 20, 20)), "image/png")}
    )
    assert uploaded.status_code == 202, uploaded.text

    videos = []
    for task in (by_url.json(), uploaded.json()):
        done = wait_for_task(client, task["task_id"])
        assert done["status"] == "completed", done
        video = client.get(done["video_url"]).content
        assert check_mp4(video, tmp_path) == (9, (96, 64))
        videos.append(video)
    assert videos[0] == videos[1]  # the same image and seed, however it arrived

    blue = client.post(
        "/api/v1/generate",
        data=form,
        files={"image": ("blue.png", png((20, 20, 220)), "image/png")},
    )
    done = wait_for_task(client, blue.json()["task_id"])
    assert client.get(done["video_url"]).content != videos[0]  # the image is really used


def test_an_image_is_required(client: httpx.Client) -> None:
    response = client.post("/api/v1/generate", json=BODY)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "image_url"]


@pytest.mark.parametrize(
    ("path", "reason"),
    [("/not-an-image.png", "cannot be decoded"), ("/missing.png", "could not be fetched")],
)
def test_a_bad_image_url_is_rejected_before_queueing(
    client: httpx.Client, image_server: str, path: str, reason: str
) -> None:
    response = client.post("/api/v1/generate", json={**BODY, "image_url": image_server + path})
    assert response.status_code == 422, response.text
    assert reason in response.json()["error"]["message"]
    assert client.get("/health").json()["queue_length"] == 0


def test_the_trained_size_is_enforced(client: httpx.Client, image_server: str) -> None:
    response = client.post(
        "/api/v1/generate", json={**BODY, "width": 48, "image_url": f"{image_server}/red.png"}
    )
    assert response.status_code == 422
    assert "96x64" in response.json()["error"]["message"]
