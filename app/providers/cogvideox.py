"""``cogvideox``: the project's own GPU workers (``worker/``), one or more, least busy first.

The gateway's task id is the worker's task id, so a repeated submit (a gateway restart between
submit and storing the id, or a worker that lost its queue) is idempotent at the worker. Frames
follow the worker's fps (8 for CogVideoX 1.0): ``duration_ms`` becomes the nearest 8N+1 frame
count the model accepts, and the task's ``params`` say so.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from app.errors import (
    AppError,
    ProviderAuthError,
    ProviderError,
    UnavailableError,
    ValidationError,
)
from app.providers.base import (
    Capabilities,
    ClipLimits,
    GenerationRequest,
    JobState,
    JobStatus,
)
from app.providers.download import UrlStream, open_url_stream
from app.providers.http import RetryPolicy, describe_transport_error, send
from app.providers.planning import refuse_or_ignore
from app.providers.polling import PollPolicy

if TYPE_CHECKING:
    from app.config import CogVideoXSettings, Settings
    from app.providers.registry import ProviderDeps

logger = logging.getLogger(__name__)

NAME = "cogvideox"
_STATES = {
    "queued": JobState.QUEUED,
    "processing": JobState.RUNNING,
    "completed": JobState.SUCCEEDED,
    "failed": JobState.FAILED,
    "cancelled": JobState.CANCELLED,
}
HEALTH_TIMEOUT = httpx.Timeout(3.0, connect=2.0)


def _status(data: Any) -> JobStatus:
    data = data if isinstance(data, dict) else {}
    word = str(data.get("status", "unknown"))
    state = _STATES.get(word, JobState.RUNNING)
    error = None
    if state is JobState.FAILED:
        error = ProviderError(
            f"cogvideox: {data.get('error') or 'generation failed'}",
            provider=NAME,
            retryable=False,
        )
    return JobStatus(
        state=state,
        provider_status=word,
        progress=int(data.get("progress") or 0),
        video_url=data.get("video_url"),
        error=error,
        poll_after_s=2.0 if state is JobState.RUNNING else None,
    )


def frames_for(duration_ms: int, fps: int, max_frames: int) -> int:
    """The 8N+1 frame count closest to ``duration_ms`` at ``fps`` (9 ≤ frames ≤ max_frames)."""
    wanted = duration_ms * fps / 1000
    n = max(1, round((wanted - 1) / 8))
    return min(8 * n + 1, max_frames - (max_frames - 1) % 8)


def _round16(value: float) -> int:
    return max(16, 16 * round(value / 16))


def size_for(aspect_ratio: str, settings: CogVideoXSettings) -> tuple[int, int]:
    """(width, height): the model's native landscape size, turned or cropped to the ratio."""
    long_side, short_side = (
        max(settings.width, settings.height),
        min(settings.width, settings.height),
    )
    w, h = (int(part) for part in aspect_ratio.split(":"))
    if w == h:
        return short_side, short_side
    if w > h:
        return min(long_side, _round16(short_side * w / h)), short_side
    return short_side, min(long_side, _round16(short_side * h / w))


def worker_key(url: str) -> str:
    return hashlib.sha256(url.encode()).hexdigest()[:10]


@dataclass(frozen=True)
class _Health:
    url: str
    status: str
    load: int
    full: bool


class CogVideoXProvider:
    name = NAME

    def __init__(
        self,
        settings: CogVideoXSettings,
        http: httpx.AsyncClient,
        downloads: httpx.AsyncClient | None = None,
    ) -> None:
        self._settings = settings
        self._http = http
        self._downloads = downloads or http
        self._workers = {
            worker_key(url.rstrip("/")): url.rstrip("/") for url in settings.worker_urls
        }
        self._headers = (
            {"Authorization": f"Bearer {settings.token.get_secret_value()}"}
            if settings.token
            else {}
        )
        self._requests: dict[str, GenerationRequest] = {}
        self._policy = RetryPolicy(attempts=3, base_s=0.5, max_backoff_s=4.0)
        self._timeout = httpx.Timeout(settings.timeout_s, connect=min(10.0, settings.timeout_s))
        self.capabilities = Capabilities(
            image_input=True,
            negative_prompt=True,
            max_prompt_chars=1000,  # the 1.0 models read at most 226 tokens
            max_concurrency=max(1, len(self._workers)) * 4,
            # Workers dedupe on our task id; find_job asks every worker first after a restart.
            idempotent_submit=True,
            find_window_s=1.0,
            clips=ClipLimits.only(
                round(frames * 1000 / settings.fps)
                for frames in range(9, settings.max_frames + 1, 8)
            ),
        )
        self.deadline_s = settings.deadline_s
        # One status read per worker for all of its jobs, every second.
        self.poll_policy = PollPolicy(interval_s=1.0, batch=500)

    @classmethod
    def from_settings(cls, settings: Settings, deps: ProviderDeps) -> CogVideoXProvider | None:
        if not settings.cogvideox.worker_urls:
            return None
        return cls(settings.cogvideox, deps.http, deps.downloads)

    # -- planning ---------------------------------------------------------------------------
    def plan(self, request: GenerationRequest) -> dict[str, Any]:
        if request.last_frame_url:
            raise ValidationError("cogvideox does not take a last frame (last_frame_url)")
        ignored = refuse_or_ignore(request, NAME)
        fps = self._settings.fps
        frames = frames_for(request.duration_ms, fps, self._settings.max_frames)
        width, height = size_for(request.aspect_ratio, self._settings)
        params: dict[str, Any] = {
            "num_frames": frames,
            "fps": fps,
            "width": width,
            "height": height,
            "num_inference_steps": self._settings.num_inference_steps,
            "guidance_scale": self._settings.guidance_scale,
            "seed": request.seed if request.seed is not None and request.seed >= 0 else None,
            "duration_ms_effective": round(frames * 1000 / fps),
            "note": (
                f"CogVideoX renders at {fps} fps in 8N+1 frames: {request.duration_ms} ms "
                f"became {frames} frames ({frames / fps:.2f} s)"
            ),
        }
        if ignored:
            params["ignored"] = ignored
        return params

    def _body(self, request: GenerationRequest) -> dict[str, Any]:
        params = self.plan(request)
        body: dict[str, Any] = {
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt or "",
            "num_frames": params["num_frames"],
            "width": params["width"],
            "height": params["height"],
            "num_inference_steps": params["num_inference_steps"],
            "guidance_scale": params["guidance_scale"],
            "fps": params["fps"],
            "task_id": request.task_id,
        }
        if params["seed"] is not None:
            body["seed"] = params["seed"]
        if request.image_url:
            body["image_url"] = request.image_url
        return body

    # -- workers ----------------------------------------------------------------------------
    async def _health(self, url: str) -> _Health:
        try:
            response = await self._http.get(f"{url}/health", timeout=HEALTH_TIMEOUT)
            data = response.json()
            load = int(data.get("queue_length", 0)) + int(data.get("running", 0))
            full = int(data.get("queue_length", 0)) >= int(data.get("max_queue", 1))
            return _Health(url, str(data.get("status", "unknown")), load, full)
        except (httpx.HTTPError, ValueError, TypeError) as exc:
            logger.info("cogvideox worker %s unreachable: %s", worker_key(url), type(exc).__name__)
            return _Health(url, "unreachable", 0, True)

    async def _pick_worker(self) -> str:
        healths = await asyncio.gather(*(self._health(url) for url in self._workers.values()))
        usable = [h for h in healths if h.status in ("ready", "busy") and not h.full]
        if not usable:
            states = ", ".join(f"{worker_key(h.url)}={h.status}" for h in healths)
            raise ProviderError(
                f"cogvideox: no worker can take a job ({states})", provider=NAME, retryable=True
            )
        return min(usable, key=lambda h: h.load).url

    def _split(self, provider_task_id: str) -> tuple[str, str]:
        key, _, task_id = provider_task_id.partition(":")
        url = self._workers.get(key)
        if url is None:
            raise ProviderError(
                f"cogvideox: the worker of job {provider_task_id} is no longer configured",
                provider=NAME,
                retryable=False,
            )
        return url, task_id

    # -- protocol ---------------------------------------------------------------------------
    async def submit(self, request: GenerationRequest) -> str:
        url = await self._pick_worker()
        await self._post_generate(url, request)
        self._requests[request.task_id] = request
        return f"{worker_key(url)}:{request.task_id}"

    async def _post_generate(self, url: str, request: GenerationRequest) -> None:
        body = self._body(request)
        response = await send(
            self._http,
            lambda: self._http.build_request(
                "POST",
                f"{url}/api/v1/generate",
                json=body,
                headers=self._headers,
                timeout=self._timeout,
            ),
            provider=NAME,
            policy=self._policy,
        )
        if response.status_code != 202:
            raise self._error(response)

    async def find_job(
        self,
        request: GenerationRequest,
        *,
        since: dt.datetime,
        is_known: Callable[[str], Awaitable[bool]],
    ) -> str | None:
        """Ask every worker whether it already has our task id (a submit cut short by a
        restart): submitting again could land on another worker and run it twice."""
        for key, url in self._workers.items():
            try:
                response = await self._http.get(
                    f"{url}/api/v1/status/{request.task_id}",
                    headers=self._headers,
                    timeout=self._timeout,
                )
            except httpx.TransportError:
                continue
            if response.status_code == 200:
                return f"{key}:{request.task_id}"
        return None

    async def resume(self, provider_task_id: str, request: GenerationRequest) -> None:
        self._requests[request.task_id] = request

    async def poll(self, provider_task_id: str) -> JobStatus:
        url, task_id = self._split(provider_task_id)
        response = await send(
            self._http,
            lambda: self._http.build_request(
                "GET",
                f"{url}/api/v1/status/{task_id}",
                headers=self._headers,
                timeout=self._timeout,
            ),
            provider=NAME,
            policy=self._policy,
        )
        if response.status_code == 404:
            # The worker restarted and lost its queue. Our GPU, our bill: submit again with the
            # same id (idempotent at the worker) when we still know the request.
            request = self._requests.get(task_id)
            if request is None:
                return JobStatus(
                    state=JobState.FAILED,
                    provider_status="lost",
                    error=ProviderError("cogvideox: the worker lost this job", provider=NAME),
                )
            await self._post_generate(url, request)
            return JobStatus(state=JobState.QUEUED, provider_status="resubmitted")
        if response.status_code != 200:
            raise self._error(response)
        return _status(response.json())

    async def poll_many(self, provider_task_ids: Sequence[str]) -> dict[str, JobStatus]:
        """One status read per worker for all its jobs (``GET /api/v1/status?ids=…``). Jobs a
        worker does not list (it lost them), and those of a worker that cannot answer, are
        left out: the poller reads them alone, which resubmits or reports them."""
        by_worker: dict[str, dict[str, str]] = {}
        for job_id in provider_task_ids:
            key, _, task_id = job_id.partition(":")
            if key in self._workers:
                by_worker.setdefault(key, {})[task_id] = job_id
        found: dict[str, JobStatus] = {}
        for key, jobs in by_worker.items():
            try:
                response = await self._http.get(
                    f"{self._workers[key]}/api/v1/status",
                    params={"ids": ",".join(jobs)},
                    headers=self._headers,
                    timeout=self._timeout,
                )
                items = response.json().get("data") if response.status_code == 200 else None
            except (httpx.HTTPError, ValueError, AttributeError):
                items = None
            for item in items if isinstance(items, list) else []:
                wanted = jobs.get(str(item.get("task_id"))) if isinstance(item, dict) else None
                if wanted is not None:
                    found[wanted] = _status(item)
        return found

    @contextlib.asynccontextmanager
    async def open_video(
        self, provider_task_id: str, status: JobStatus
    ) -> AsyncIterator[UrlStream]:
        url, task_id = self._split(provider_task_id)
        async with open_url_stream(
            self._downloads,
            f"{url}/api/v1/videos/{task_id}.mp4",
            provider=NAME,
            headers=self._headers,
        ) as stream:
            yield stream
        self._requests.pop(task_id, None)

    async def cancel(self, provider_task_id: str) -> None:
        url, task_id = self._split(provider_task_id)
        self._requests.pop(task_id, None)
        try:
            await self._http.delete(
                f"{url}/api/v1/tasks/{task_id}", headers=self._headers, timeout=HEALTH_TIMEOUT
            )
        except httpx.TransportError as exc:
            logger.warning("cogvideox cancel failed: %s", describe_transport_error(exc))

    async def check(self) -> None:
        healths = await asyncio.gather(*(self._health(url) for url in self._workers.values()))
        if not any(h.status in ("ready", "busy") for h in healths):
            states = ", ".join(f"{worker_key(h.url)}={h.status}" for h in healths)
            raise UnavailableError(f"no cogvideox worker is ready ({states})")

    async def aclose(self) -> None:
        return None

    def _error(self, response: httpx.Response) -> AppError:
        try:
            message = str(response.json()["error"]["message"])
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {response.status_code}"
        status = response.status_code
        if status in (401, 403):
            return ProviderAuthError(
                f"cogvideox: the worker refused the gateway's token (HTTP {status})", provider=NAME
            )
        if status in (400, 413, 422):
            return ValidationError(f"cogvideox: {message}")
        retryable = status in (408, 429) or status >= 500
        return ProviderError(f"cogvideox: {message}", provider=NAME, retryable=retryable)
