"""The job queue and runner with hand-written engines: failures, out-of-memory, retention."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from worker.config import WorkerSettings
from worker.engine import DiffusersEngine, ModelProfile
from worker.errors import NotFoundError, QueueFullError
from worker.jobs import GenerationInput, JobQueue, TaskStatus
from worker.runtime import Runtime

PARAMS = GenerationInput(
    prompt="a panda", negative_prompt="", num_frames=9, width=32, height=16,
    num_inference_steps=2, guidance_scale=6.0, seed=1, fps=8,
)  # fmt: skip
PROFILE = ModelProfile(
    name="fake", family="cogvideox-2b", image_to_video=False, rotary=False, default_dtype="float16",
    width=32, height=16, num_frames=9, fps=8, frame_multiple=8, max_frames=49, fixed_size=False,
)  # fmt: skip


class FakeClock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


class FakePipe:
    """Stands in for a diffusers pipeline: raises the queued errors first, then returns frames."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)

    def __call__(self, **kwargs: Any) -> Any:
        if self.errors:
            raise self.errors.pop(0)
        for step in range(kwargs["num_inference_steps"]):
            kwargs["callback_on_step_end"](self, step, 0, {})
        shape = (1, kwargs["num_frames"], kwargs["height"], kwargs["width"], 3)
        return type("Output", (), {"frames": np.full(shape, 0.5, dtype=np.float32)})()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def queue(tmp_path: Path, clock: FakeClock) -> JobQueue:
    return JobQueue(output_dir=tmp_path, max_queue=4, retention_s=60.0, clock=clock)


@pytest.fixture
def run(queue: JobQueue) -> Iterator[Callable[[Any], None]]:
    """Run the queue's runner thread with the given engine until the test ends."""
    threads: list[threading.Thread] = []

    def start(engine: Any) -> None:
        thread = threading.Thread(target=queue.run, args=(engine,), daemon=True)
        thread.start()
        threads.append(thread)

    yield start
    queue.close()
    for thread in threads:
        thread.join(10)


def finish(queue: JobQueue, task_id: str) -> TaskStatus:
    """Poll the store until the task ends."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        view = queue.get(task_id)
        if view.status.is_terminal:
            return view.status
        time.sleep(0.01)
    raise AssertionError(f"{task_id} did not finish")


def test_out_of_memory_fails_the_task_and_the_worker_goes_on(
    queue: JobQueue, run: Callable[[Any], None], tmp_path: Path
) -> None:
    import torch

    pipe = FakePipe(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"))
    run(DiffusersEngine(pipe, profile=PROFILE, device=torch.device("cpu"), dtype=torch.float32))
    first, _ = queue.submit(PARAMS, fingerprint="a")
    second, _ = queue.submit(PARAMS, fingerprint="b")
    assert finish(queue, first.task_id) is TaskStatus.FAILED
    error = queue.get(first.task_id).error or ""
    assert "out of host memory generating 9 frames at 32x16" in error and "--offload model" in error
    assert finish(queue, second.task_id) is TaskStatus.COMPLETED
    assert (tmp_path / f"{second.task_id}.mp4").is_file()


def test_an_unexpected_error_fails_only_that_task(
    queue: JobQueue, run: Callable[[Any], None]
) -> None:
    import torch

    run(
        DiffusersEngine(
            FakePipe(KeyError("boom")),
            profile=PROFILE,
            device=torch.device("cpu"),
            dtype=torch.float32,
        )
    )
    first, _ = queue.submit(PARAMS, fingerprint="a")
    second, _ = queue.submit(PARAMS, fingerprint="b")
    assert finish(queue, first.task_id) is TaskStatus.FAILED
    assert "KeyError" in (queue.get(first.task_id).error or "")
    assert finish(queue, second.task_id) is TaskStatus.COMPLETED


class GatedEngine:
    """Blocks in its first step until released, so the queue's state can be inspected."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def generate(
        self, params: GenerationInput, *, on_step: Callable[[int, int], None]
    ) -> npt.NDArray[np.uint8]:
        self.started.set()
        self.release.wait(10)
        on_step(1, 2)
        on_step(2, 2)
        return np.zeros((params.num_frames, params.height, params.width, 3), dtype=np.uint8)


def test_the_queue_is_bounded_and_runs_one_job_at_a_time(tmp_path: Path, clock: FakeClock) -> None:
    queue = JobQueue(output_dir=tmp_path, max_queue=2, retention_s=60.0, clock=clock)
    engine = GatedEngine()
    threading.Thread(target=queue.run, args=(engine,), daemon=True).start()
    running, _ = queue.submit(PARAMS, fingerprint="a")
    assert engine.started.wait(10)
    waiting = [queue.submit(PARAMS, fingerprint=str(i))[0] for i in range(2)]
    assert [v.queue_position for v in waiting] == [1, 2]
    with pytest.raises(QueueFullError) as full:
        queue.submit(PARAMS, fingerprint="c")
    assert full.value.headers["Retry-After"] == "30"  # no history yet: a default estimate
    stats = queue.stats()
    assert (stats.queue_length, stats.running) == (2, 1)
    assert queue.get(running.task_id).status is TaskStatus.PROCESSING
    engine.release.set()
    for view in (running, *waiting):
        assert finish(queue, view.task_id) is TaskStatus.COMPLETED
    queue.close()


def test_finished_videos_are_deleted_after_the_retention_time(
    queue: JobQueue, clock: FakeClock, run: Callable[[Any], None], tmp_path: Path
) -> None:
    import torch

    run(
        DiffusersEngine(
            FakePipe(), profile=PROFILE, device=torch.device("cpu"), dtype=torch.float32
        )
    )
    view, _ = queue.submit(PARAMS, fingerprint="a")
    assert finish(queue, view.task_id) is TaskStatus.COMPLETED
    video = queue.video_path(view.task_id)
    assert video.is_file()
    stray = tmp_path / "left-by-an-earlier-process.mp4"
    stray.write_bytes(b"old")
    os.utime(stray, (clock.now - 3600, clock.now - 3600))
    fresh = tmp_path / "written-just-now.mp4"
    fresh.write_bytes(b"new")

    clock.now += 59
    assert queue.purge_expired() == 0
    assert video.is_file() and queue.get(view.task_id).expires_at == pytest.approx(clock.now + 1)
    clock.now += 1
    assert queue.purge_expired() == 1
    assert not video.exists()
    assert not stray.exists()  # older than the retention time
    assert fresh.exists()
    with pytest.raises(Exception, match="not found"):
        queue.get(view.task_id)


class FakeEngine:
    profile = PROFILE
    device = "cpu"
    dtype = "float32"

    def generate(
        self, params: GenerationInput, *, on_step: Callable[[int, int], None]
    ) -> npt.NDArray[np.uint8]:
        return np.zeros((params.num_frames, params.height, params.width, 3), dtype=np.uint8)


def test_the_runtime_janitor_deletes_expired_videos(tmp_path: Path) -> None:
    settings = WorkerSettings(model_path="fake", output_dir=tmp_path, retention_s=0.2)
    runtime = Runtime(settings, loader=lambda _: FakeEngine())
    runtime.start()
    try:
        deadline = time.monotonic() + 30
        while runtime.health().status != "ready" and time.monotonic() < deadline:
            time.sleep(0.01)
        view, _ = runtime.queue.submit(PARAMS, fingerprint="a")
        assert finish(runtime.queue, view.task_id) is TaskStatus.COMPLETED
        while time.monotonic() < deadline:
            try:
                runtime.queue.get(view.task_id)
            except NotFoundError:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the expired task was never deleted")
        assert not (tmp_path / f"{view.task_id}.mp4").exists()
    finally:
        runtime.stop()
