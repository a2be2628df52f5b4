"""Hand-written fakes of the project's own Provider interface (unit and gateway tests)."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator
from typing import Any

from app.errors import AppError
from app.providers.base import Capabilities, GenerationRequest, JobState, JobStatus


class BytesStream:
    def __init__(self, data: bytes, chunk: int = 64 * 1024) -> None:
        self.data = data
        self.size: int | None = len(data)
        self._chunk = chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.data), self._chunk):
            yield self.data[start : start + self._chunk]


class ControlledProvider:
    """A provider whose jobs run until the test calls ``release()``.

    It lives outside any one app, so a test can stop a gateway mid-task, start another on the
    same data directory, and count how many times a job was submitted.
    """

    def __init__(self, name: str = "fake", *, video: bytes = b"\x00" * 1000) -> None:
        self.name = name
        self.capabilities = Capabilities(max_concurrency=1000, negative_prompt=True)
        self.video = video
        self.released = threading.Event()
        self.submits: list[GenerationRequest] = []
        self.cancelled: list[str] = []
        self.resumed: list[str] = []
        self.deadline_s: float | None = None
        self.fail_with: AppError | None = None
        self.submit_error: AppError | None = None

    def release(self) -> None:
        self.released.set()

    def plan(self, request: GenerationRequest) -> dict[str, Any]:
        return {"duration_ms": request.duration_ms}

    async def submit(self, request: GenerationRequest) -> str:
        self.submits.append(request)
        if self.submit_error is not None:
            raise self.submit_error
        return f"{self.name}-{request.task_id}"

    async def find_job(self, request: GenerationRequest, **_: Any) -> str | None:
        return None

    async def resume(self, provider_task_id: str, request: GenerationRequest) -> None:
        self.resumed.append(provider_task_id)

    async def poll(self, provider_task_id: str) -> JobStatus:
        if provider_task_id in self.cancelled:
            return JobStatus(state=JobState.CANCELLED, provider_status="cancelled")
        if self.released.is_set() and self.fail_with is not None:
            return JobStatus(state=JobState.FAILED, provider_status="failed", error=self.fail_with)
        if self.released.is_set():
            return JobStatus(state=JobState.SUCCEEDED, provider_status="done", progress=100)
        return JobStatus(
            state=JobState.RUNNING, provider_status="cooking", progress=40, poll_after_s=0.05
        )

    @contextlib.asynccontextmanager
    async def open_video(
        self, provider_task_id: str, status: JobStatus
    ) -> AsyncIterator[BytesStream]:
        yield BytesStream(self.video)

    async def cancel(self, provider_task_id: str) -> None:
        self.cancelled.append(provider_task_id)

    async def check(self) -> None:
        return None

    async def aclose(self) -> None:
        return None
