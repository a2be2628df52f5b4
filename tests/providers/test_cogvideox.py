"""The ``cogvideox`` provider against a real worker process (``worker/`` on a tiny random model).

The worker runs from its own venv (``.venv-worker``, built by ``make test``) with a randomly
initialised pipeline of the real diffusers classes, so everything on the wire is real: the
least-busy choice from ``/health``, submit with the gateway's task id, polling, the MP4 download.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.config import CogVideoXSettings
from app.errors import ValidationError
from app.providers.base import GenerationRequest
from app.providers.cogvideox import CogVideoXProvider, frames_for, size_for, worker_key
from tests.conftest import GatewayFactory
from tests.emulators.server import free_port
from tests.mp4 import probe

ROOT = Path(__file__).resolve().parents[2]
WORKER_PYTHON = ROOT / ".venv-worker" / "bin" / "python"
WORKER_TOKEN = "worker-token-0123456789"
# The tiny model's geometry: 96x64, 9 frames at 8 fps.
TINY = {"width": 96, "height": 64, "max_frames": 9, "num_inference_steps": 2, "fps": 8}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not WORKER_PYTHON.exists():
        pytest.fail(f"{WORKER_PYTHON} is missing: run `make test` (it builds .venv-worker)")
    model = tmp_path_factory.mktemp("cogvideox") / "model"
    subprocess.run(
        [WORKER_PYTHON, "-m", "worker", "random-model", str(model), "--preset", "tiny"],
        cwd=ROOT, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    return model


@contextlib.contextmanager
def run_worker(model: Path, port: int, videos: Path) -> Iterator[str]:
    process = subprocess.Popen(
        [WORKER_PYTHON, "-m", "worker", "serve", "--model-path", str(model), "--device", "cpu",
         "--port", str(port), "--token", WORKER_TOKEN, "--output-dir", str(videos),
         "--log-level", "warning"],
        cwd=ROOT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health").json()["status"] == "ready":
                    break
            assert process.poll() is None, "the worker exited during start-up"
            assert time.monotonic() < deadline, "the worker did not become ready"
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def worker_url(tiny_model: Path) -> Iterator[str]:
    with run_worker(tiny_model, free_port(), tiny_model.parent / "videos") as url:
        yield url


def overrides(*urls: str, token: str = WORKER_TOKEN) -> dict[str, dict[str, object]]:
    return {
        "cogvideox": {**TINY, "worker_urls": ",".join(urls), "token": token},
        "providers": {"default": "cogvideox"},
    }


# -- planning, no worker needed ------------------------------------------------------------


@pytest.mark.parametrize(
    ("duration_ms", "frames"),
    [(500, 9), (1000, 9), (3000, 25), (5000, 41), (6000, 49), (60_000, 49)],
)
def test_frames_follow_the_workers_fps_in_8n_plus_1(duration_ms: int, frames: int) -> None:
    assert frames_for(duration_ms, 8, 49) == frames
    assert (frames - 1) % 8 == 0


@pytest.mark.parametrize(
    ("ratio", "size"),
    [("16:9", (720, 480)), ("9:16", (480, 720)), ("1:1", (480, 480)), ("4:3", (640, 480)),
     ("3:4", (480, 640)), ("21:9", (720, 480))],
)  # fmt: skip
def test_sizes_stay_within_the_native_720x480_and_divisible_by_16(
    ratio: str, size: tuple[int, int]
) -> None:
    width, height = size_for(ratio, CogVideoXSettings())
    assert (width, height) == size
    assert width % 16 == 0 and height % 16 == 0


def test_plan_says_how_duration_became_frames() -> None:
    provider = CogVideoXProvider(
        CogVideoXSettings(worker_urls=["http://w:8100"]), httpx.AsyncClient()
    )
    params = provider.plan(GenerationRequest(task_id="vt_1", prompt="p", duration_ms=5000, fps=24))
    assert params["num_frames"] == 41 and params["fps"] == 8
    assert params["duration_ms_effective"] == 5125
    assert "5000 ms became 41 frames" in params["note"]
    with pytest.raises(ValidationError, match="last frame"):
        provider.plan(
            GenerationRequest(
                task_id="vt_1",
                prompt="p",
                image_url="https://a/b.png",
                last_frame_url="https://a/c.png",
            )
        )


# -- through the gateway, against the real worker ---------------------------------------------


def test_generate_video_through_the_worker(
    gateway_factory: GatewayFactory, worker_url: str, tmp_path: Path
) -> None:
    with gateway_factory(overrides(worker_url)) as gateway:
        assert gateway.client.get("/readyz").json()["checks"]["provider:cogvideox"] == "ok"
        body = {"prompt": "a panda playing guitar", "duration_ms": 1000, "fps": 24, "seed": 7}
        response = gateway.client.post("/generate-video", json=body)
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["provider"] == "cogvideox"
        assert result["video_url"].startswith(f"{gateway.base_url}/files/")  # re-hosted
        task = gateway.client.get(f"/v1/tasks/{result['task_id']}").json()
        path = tmp_path / "v.mp4"
        path.write_bytes(httpx.get(result["video_url"]).content)

    # The worker's task id is the gateway's: a repeated submit cannot start a second job.
    assert task["provider_task_id"] == f"{worker_key(worker_url)}:{result['task_id']}"
    worker_view = httpx.get(
        f"{worker_url}/api/v1/status/{result['task_id']}",
        headers={"Authorization": f"Bearer {WORKER_TOKEN}"},
    ).json()
    assert worker_view["status"] == "completed" and worker_view["seed"] == 7
    assert task["params"]["num_frames"] == 9 and task["params"]["fps"] == 8
    assert "8 fps" in task["params"]["note"]

    video = probe(path)
    assert (video.width, video.height, video.frames) == (96, 64, 9)
    assert video.codec == "h264" and video.faststart


def test_least_busy_ready_worker_is_chosen(
    gateway_factory: GatewayFactory, worker_url: str
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with gateway_factory(overrides(dead, worker_url)) as gateway:
        body = {"prompt": "a cat", "duration_ms": 1000, "fps": 8}
        result = gateway.client.post("/generate-video", json=body).json()
        task = gateway.client.get(f"/v1/tasks/{result['task_id']}").json()
    assert task["status"] == "succeeded"
    assert task["provider_task_id"].startswith(worker_key(worker_url))


def test_no_worker_reachable_is_a_clear_failure(gateway_factory: GatewayFactory) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with gateway_factory(overrides(dead)) as gateway:
        ready = gateway.client.get("/readyz")
        assert ready.status_code == 503
        assert "no cogvideox worker is ready" in ready.json()["error"]["message"]
        failed = gateway.client.post(
            "/generate-video", json={"prompt": "a cat", "duration_ms": 1000}
        )
    assert failed.status_code == 502
    assert failed.json()["error"]["code"] == "provider_error"
    assert "no worker can take a job" in failed.json()["error"]["message"]


def test_a_wrong_worker_token_is_provider_auth(
    gateway_factory: GatewayFactory, worker_url: str
) -> None:
    with gateway_factory(overrides(worker_url, token="not-the-worker-token")) as gateway:
        failed = gateway.client.post(
            "/generate-video", json={"prompt": "a cat", "duration_ms": 1000}
        )
    assert failed.status_code == 502
    error = failed.json()["error"]
    assert error["code"] == "provider_auth" and "token" in error["message"]
    assert "not-the-worker-token" not in failed.text


@pytest.mark.anyio
async def test_a_worker_that_lost_its_queue_gets_the_job_again(tiny_model: Path) -> None:
    """A restarted worker forgets its jobs; the provider submits again with the same id."""
    port = free_port()
    settings = CogVideoXSettings(
        worker_urls=[f"http://127.0.0.1:{port}"], token=WORKER_TOKEN, **TINY
    )
    request = GenerationRequest(task_id="vt_lost1", prompt="a cat", duration_ms=1000, fps=8, seed=3)
    async with httpx.AsyncClient() as http:
        provider = CogVideoXProvider(settings, http)
        with run_worker(tiny_model, port, tiny_model.parent / "videos-a"):
            job = await provider.submit(request)
        with run_worker(tiny_model, port, tiny_model.parent / "videos-b"):
            first = await provider.poll(job)
            assert (first.state.value, first.provider_status) == ("queued", "resubmitted")
            for _ in range(300):
                status = await provider.poll(job)
                if status.state.is_terminal:
                    break
                await asyncio.sleep(0.1)
            assert status.state.value == "succeeded"
            async with provider.open_video(job, status) as stream:
                data = b"".join([chunk async for chunk in stream])
    assert data[4:8] == b"ftyp" and len(data) == stream.size


@pytest.mark.anyio
async def test_one_status_read_per_worker_answers_for_all_its_jobs(worker_url: str) -> None:
    settings = CogVideoXSettings(worker_urls=[worker_url], token=WORKER_TOKEN, **TINY)
    reads: list[httpx.URL] = []

    async def record(request: httpx.Request) -> None:
        if "/api/v1/status" in request.url.path:
            reads.append(request.url)

    async with httpx.AsyncClient(event_hooks={"request": [record]}) as http:
        provider = CogVideoXProvider(settings, http)
        jobs = [
            await provider.submit(
                GenerationRequest(task_id=f"vt_batch{n}", prompt="a cat", duration_ms=1000, fps=8)
            )
            for n in range(2)
        ]
        gone = f"{worker_key(worker_url)}:vt_never_submitted"
        statuses = await provider.poll_many([*jobs, gone])
    assert [url.path for url in reads] == ["/api/v1/status"]  # one read for the worker
    assert set(statuses) == set(jobs)  # the unknown job is left for a read of its own
    assert {s.state.value for s in statuses.values()} <= {"queued", "running", "succeeded"}
