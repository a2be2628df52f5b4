"""Run the real gateway with a ``sleep`` provider whose jobs take a fixed time (benchmarks).

python bench/_sleep_gateway.py DATA_DIR PORT SECONDS
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn

# Run as a script, bench/ leads sys.path, and bench/limits.py would shadow the limits library.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from app.config import load_settings  # noqa: E402
from app.main import create_app  # noqa: E402
from app.providers.base import Capabilities, GenerationRequest, JobState, JobStatus  # noqa: E402

TOKEN = "bench-token-0123456789"


class _Bytes:
    size: int | None = 4

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"mp4!"


class SleepProvider:
    """Jobs that finish ``seconds`` after submit; polling hints keep the wait tight."""

    name = "sleep"

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.capabilities = Capabilities(max_concurrency=10_000)
        self._due: dict[str, float] = {}

    def plan(self, request: GenerationRequest) -> dict[str, Any]:
        return {}

    async def submit(self, request: GenerationRequest) -> str:
        self._due[request.task_id] = time.monotonic() + self.seconds
        return request.task_id

    async def find_job(self, request: GenerationRequest, **_: Any) -> str | None:
        return None

    async def resume(self, provider_task_id: str, request: GenerationRequest) -> None:
        self._due.setdefault(provider_task_id, time.monotonic())

    async def poll(self, provider_task_id: str) -> JobStatus:
        left = self._due[provider_task_id] - time.monotonic()
        if left <= 0:
            return JobStatus(state=JobState.SUCCEEDED, provider_status="done")
        return JobStatus(state=JobState.RUNNING, provider_status="sleeping", poll_after_s=left)

    @contextlib.asynccontextmanager
    async def open_video(self, provider_task_id: str, status: JobStatus) -> AsyncIterator[_Bytes]:
        yield _Bytes()

    async def cancel(self, provider_task_id: str) -> None:
        self._due.pop(provider_task_id, None)

    async def check(self) -> None:
        await asyncio.sleep(0)

    async def aclose(self) -> None:
        return None


def main() -> None:
    data_dir, port, seconds = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    settings = load_settings(
        None,
        environ={},
        overrides={
            "server": {"data_dir": str(data_dir), "port": port, "log_level": "warning"},
            "auth": {"valid_tokens": f'["{TOKEN}"]'},
            "providers": {"default": "sleep"},
            "cache": {"ttl_h": 0},  # every call makes a video: identical bodies must not hit
        },
    )
    app = create_app(settings, extra_providers={"sleep": SleepProvider(seconds)})
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
