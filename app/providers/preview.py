"""``preview``: a local renderer that makes a real, playable MP4 for free.

Frames are drawn with Pillow and piped as raw RGB into the ffmpeg binary shipped by
``imageio-ffmpeg`` (H.264, yuv420p, ``+faststart``). Rendering runs in a thread, so the event
loop never waits on it. Geometry: the short side is ``[preview] height`` (480 by default), the
long side follows the aspect ratio, both even; frames = round(duration_ms × fps / 1000).
The prompt is drawn with a font fontconfig finds for its script (``app.media.fonts``): a
Chinese prompt without any CJK font installed fails the render with a message saying so.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import subprocess
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import imageio_ffmpeg
from PIL import Image, ImageDraw

from app.errors import ProviderError, ValidationError
from app.media.files import FileStream
from app.media.fonts import load_font, wrap_text
from app.providers.base import (
    ASPECT_RATIOS,
    Capabilities,
    ClipLimits,
    GenerationRequest,
    JobState,
    JobStatus,
)
from app.providers.planning import refuse_or_ignore
from app.providers.polling import PollPolicy

if TYPE_CHECKING:
    from app.config import Settings
    from app.providers.registry import ProviderDeps


def frame_size(aspect_ratio: str, short_side: int = 480) -> tuple[int, int]:
    """(width, height) for ``aspect_ratio`` with the given short side, both even."""
    if aspect_ratio not in ASPECT_RATIOS:
        raise ValidationError(f"unsupported aspect_ratio {aspect_ratio!r}")
    w, h = (int(part) for part in aspect_ratio.split(":"))
    long_side = 2 * round(short_side * max(w, h) / min(w, h) / 2)
    short = 2 * round(short_side / 2)
    return (long_side, short) if w >= h else (short, long_side)


def frame_count(duration_ms: int, fps: int) -> int:
    return max(1, round(duration_ms * fps / 1000))


@dataclass
class _Job:
    thread_task: asyncio.Task[None]
    cancel: threading.Event
    # Frames rendered so far (written by the rendering thread; read for progress).
    frames_done: list[int]
    frames: int


class PreviewProvider:
    name = "preview"

    def __init__(self, out_dir: Path, *, concurrency: int = 2, short_side: int = 480) -> None:
        self.capabilities = Capabilities(
            image_input=False,
            negative_prompt=False,
            max_prompt_chars=2000,
            max_concurrency=concurrency,
            idempotent_submit=True,
            # It could render longer, but like a hosted provider's longest clip, so that long
            # videos take the same shot-by-shot path here as in production.
            clips=ClipLimits(min_ms=500, max_ms=12000, step_ms=1),
        )
        self._out_dir = out_dir
        self._short_side = short_side
        self._jobs: dict[str, _Job] = {}
        self._requests: dict[str, GenerationRequest] = {}
        self.deadline_s: float | None = None
        # poll() is a lookup; a finished render tells the poller at once, and progress (frames
        # rendered) is read twice a second.
        self.poll_policy = PollPolicy(interval_s=0.5, pushes=True)
        self.on_change: Callable[[str], None] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, deps: ProviderDeps) -> PreviewProvider:
        return cls(
            deps.data_dir / "preview",
            concurrency=settings.preview.concurrency,
            short_side=settings.preview.height,
        )

    def plan(self, request: GenerationRequest) -> dict[str, Any]:
        ignored = refuse_or_ignore(request, self.name)
        width, height = frame_size(request.aspect_ratio, self._short_side)
        frames = frame_count(request.duration_ms, request.fps)
        if frames > 3600:
            raise ValidationError("preview renders at most 3600 frames")
        params: dict[str, Any] = {
            "width": width,
            "height": height,
            "fps": request.fps,
            "frames": frames,
        }
        if ignored:
            params["ignored"] = ignored
        return params

    def _path(self, provider_task_id: str) -> Path:
        return self._out_dir / f"{provider_task_id}.mp4"

    async def submit(self, request: GenerationRequest) -> str:
        provider_task_id = f"preview-{request.task_id}"
        self._requests[provider_task_id] = request
        self._start(provider_task_id, request)
        return provider_task_id

    def _start(self, provider_task_id: str, request: GenerationRequest) -> None:
        cancel = threading.Event()
        params = self.plan(request)
        path = self._path(provider_task_id)
        done = [0]
        task = asyncio.create_task(
            asyncio.to_thread(render_video, path, request.prompt, params, cancel, done)
        )
        task.add_done_callback(lambda _: self.on_change and self.on_change(provider_task_id))
        self._jobs[provider_task_id] = _Job(task, cancel, done, params["frames"])

    async def poll(self, provider_task_id: str) -> JobStatus:
        job = self._jobs.get(provider_task_id)
        if job is None:
            if self._path(provider_task_id).is_file():
                return JobStatus(state=JobState.SUCCEEDED, provider_status="rendered", progress=100)
            # Rendering state is in-process only: after a restart, render again (it is free).
            request = self._requests.get(provider_task_id)
            if request is None:
                return JobStatus(
                    state=JobState.FAILED,
                    provider_status="lost",
                    error=ProviderError("preview render lost on restart", provider=self.name),
                )
            self._start(provider_task_id, request)
            return JobStatus(state=JobState.RUNNING, provider_status="rendering")
        if not job.thread_task.done():
            progress = int(100 * job.frames_done[0] / max(1, job.frames))
            return JobStatus(
                state=JobState.RUNNING,
                provider_status="rendering",
                progress=progress,
                poll_after_s=0.1,
            )
        del self._jobs[provider_task_id]
        exc = job.thread_task.exception()
        if exc is not None:
            if job.cancel.is_set():
                return JobStatus(state=JobState.CANCELLED, provider_status="cancelled")
            return JobStatus(
                state=JobState.FAILED,
                provider_status="error",
                error=ProviderError(
                    f"preview render failed: {exc}", provider=self.name, retryable=False
                ),
            )
        return JobStatus(state=JobState.SUCCEEDED, provider_status="rendered", progress=100)

    async def find_job(
        self,
        request: GenerationRequest,
        *,
        since: dt.datetime,
        is_known: Callable[[str], Awaitable[bool]],
    ) -> str | None:
        """Rendering is local and free: a lost submit is simply submitted again."""
        return None

    async def resume(self, provider_task_id: str, request: GenerationRequest) -> None:
        # Render state is in-process only; keep the request so poll() can render again.
        self._requests[provider_task_id] = request

    @contextlib.asynccontextmanager
    async def open_video(
        self, provider_task_id: str, status: JobStatus
    ) -> AsyncIterator[FileStream]:
        path = self._path(provider_task_id)
        yield FileStream(path)
        path.unlink(missing_ok=True)
        self._requests.pop(provider_task_id, None)

    async def cancel(self, provider_task_id: str) -> None:
        job = self._jobs.get(provider_task_id)
        if job is not None:
            job.cancel.set()
        self._requests.pop(provider_task_id, None)

    async def check(self) -> None:
        await asyncio.to_thread(self._out_dir.mkdir, parents=True, exist_ok=True)

    async def aclose(self) -> None:
        for job in self._jobs.values():
            job.cancel.set()
        for job in list(self._jobs.values()):
            with contextlib.suppress(BaseException):
                await job.thread_task


def _title_layer(width: int, height: int, prompt: str) -> Image.Image:
    layer = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    size = max(14, min(width, height) // 18)
    pad = size // 2
    font = load_font(prompt, size)  # a CJK font for Chinese prompts; MissingFontError if none
    lines = wrap_text(prompt, font, width - 4 * pad)[:6] or [" "]
    line_h = int(size * 1.35)
    top = (height - line_h * len(lines)) // 2
    draw.rectangle(
        (pad, top - pad, width - pad, top + line_h * len(lines) + pad), fill=(0, 0, 0, 140)
    )
    for i, line in enumerate(lines):
        text_w = draw.textlength(line, font=font)
        draw.text(
            ((width - text_w) / 2, top + i * line_h), line, font=font, fill=(255, 255, 255, 255)
        )
    draw.text(
        (pad, height - size - pad),
        "preview",
        font=load_font("preview", max(10, size // 2)),
        fill=(255, 255, 255, 200),
    )
    return layer


def render_video(
    path: Path,
    prompt: str,
    params: dict[str, Any],
    cancel: threading.Event,
    frames_done: list[int] | None = None,
) -> None:
    """Render the preview MP4 to ``path`` (atomically). Runs in a worker thread; counts the
    frames written in ``frames_done[0]``."""
    width, height, fps, frames = params["width"], params["height"], params["fps"], params["frames"]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part.mp4")
    cmd = [
        imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y",
        "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}", "-r", str(fps), "-i", "-",
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        "-fps_mode", "passthrough", "-movflags", "+faststart", "-f", "mp4", str(tmp),
    ]  # fmt: skip
    title = _title_layer(width, height, prompt)
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdin is not None
    try:
        radius = min(width, height) // 10
        for i in range(frames):
            if cancel.is_set():
                raise RuntimeError("cancelled")
            t = i / max(1, frames - 1)
            hue = int(255 * t)
            frame = Image.new("RGBA", (width, height), (20 + hue // 3, 30, 90 + hue // 2, 255))
            draw = ImageDraw.Draw(frame)
            cx = int(radius + (width - 2 * radius) * t)
            cy = int(height / 2 + math.sin(t * 2 * math.pi) * height / 3)
            draw.ellipse(
                (cx - radius, cy - radius, cx + radius, cy + radius), fill=(255, 190, 60, 255)
            )
            draw.rectangle(
                (0, height - 6, int(width * (i + 1) / frames), height), fill=(80, 220, 120, 255)
            )
            frame.alpha_composite(title)
            proc.stdin.write(frame.convert("RGB").tobytes())
            if frames_done is not None:
                frames_done[0] = i + 1
        proc.stdin.close()
        if proc.wait() != 0:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"ffmpeg failed: {err.strip()[:500]}")
        tmp.replace(path)
    except BaseException:
        proc.kill()
        proc.wait()
        tmp.unlink(missing_ok=True)
        raise
    finally:
        with contextlib.suppress(OSError):
            proc.stdin.close()
        if proc.stderr:
            proc.stderr.close()
