"""The preview provider reports real progress (frames rendered) and wakes its poller when a
render ends. Rendering is real (ffmpeg); the test holds the rendering thread at a frame of
its choosing, so what it sees midway does not depend on how fast the machine is."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from app.providers import preview
from app.providers.base import GenerationRequest, JobState

pytestmark = pytest.mark.anyio


async def test_progress_is_frames_rendered_and_the_end_is_pushed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reached, go_on = threading.Event(), threading.Event()
    render = preview.render_video

    def held_at_frame_5(
        path: Path, prompt: str, params: dict[str, Any], cancel: threading.Event, done: list[int]
    ) -> None:
        class Held(list[int]):
            def __setitem__(self, index: Any, value: Any) -> None:
                done[index] = value
                if value == 5:
                    reached.set()
                    go_on.wait(timeout=60)

        render(path, prompt, params, cancel, Held([0]))

    monkeypatch.setattr(preview, "render_video", held_at_frame_5)
    provider = preview.PreviewProvider(tmp_path, concurrency=1, short_side=64)
    ended: list[str] = []
    provider.on_change = ended.append
    request = GenerationRequest(task_id="vt_frames", prompt="count", duration_ms=1000, fps=20)
    job = await provider.submit(request)
    await asyncio.to_thread(reached.wait, 60)
    midway = await provider.poll(job)
    assert midway.state is JobState.RUNNING and midway.progress == 25  # 5 of 20 frames
    assert ended == []
    go_on.set()
    for _ in range(600):
        if ended:
            break
        await asyncio.sleep(0.05)
    assert ended == [job]  # the end was pushed, not found by polling
    final = await provider.poll(job)
    assert final.state is JobState.SUCCEEDED and final.progress == 100
    await provider.aclose()
