"""Jimeng through a jimeng-free-api-compatible relay (the seed's cookie).

``POST {base}/v1/videos/generations`` with ``Authorization: Bearer <sessionid>`` blocks until the
video exists (up to ~20 min) and answers ``{"created", "data": [{"url", "revised_prompt"}]}``.
Errors come back as HTTP 200 (jimeng-free-api) or 500 (its successors) with
``{"code": <negative>, "message", "data": null}``.

The relay has no task id, so :meth:`JimengRelayProvider.submit` starts the blocking call as a
background asyncio task in this process and returns a synthetic id ``relay-<task_id>``;
:meth:`poll` reports that job. ``submit`` first waits up to ``[jimeng] relay_answer_window_s``
(2 s) for an early error answer, so that a refusal is a submit error (fallback applies). The
call waits at most ``[jimeng] relay_timeout_s`` (default 1500 s) for the answer.

Risk control: relays pass on the web app's refusals ("shark not pass", codes 1019 / 4013 / -4)
as an error answer; it becomes a retryable ``ProviderError`` with ``open_circuit``, which opens
the relay's circuit breaker at once and lets the task fall back to the next provider.

The call is a paid create with no way to find its job again, so it is sent once: re-sent only
when the connection was never made or the relay answered 429. When the answer is lost (read
timeout past ``relay_timeout_s``, a dropped connection, an answer without a video), and after a
gateway restart (the connection closed with the old process and the relay has nothing to
resume), the task fails with ``502 provider_outcome_unknown``, naming the time, so an operator
can check the relay's account — deliberately not re-running it, because the gateway promises
never to pay for a task twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from app.errors import (
    AppError,
    ContentRejectedError,
    ProviderAuthError,
    ProviderError,
    ProviderOutcomeUnknownError,
    UnavailableError,
    ValidationError,
)
from app.providers.base import (
    ASPECT_RATIOS,
    Capabilities,
    ClipLimits,
    GenerationRequest,
    JobState,
    JobStatus,
    VideoStream,
)
from app.providers.download import open_url_stream
from app.providers.http import RetryPolicy, describe_transport_error, send
from app.providers.jimeng_common import DURATION_RULE, NAME, duration_s_for
from app.providers.planning import (
    check_aspect_ratio,
    check_choice,
    check_frames,
    duration_params,
    input_mode,
    refuse_or_ignore,
)
from app.providers.polling import PollPolicy

if TYPE_CHECKING:
    from app.config import JimengSettings

log = logging.getLogger(__name__)

RESOLUTIONS = ("720p", "1080p")
ID_PREFIX = "relay-"
# How often the pipeline should look: the check is an in-process dict lookup.
POLL_AFTER_S = 0.5
# A finished call wakes its task at once; this round only guards against a missed wake-up.
POLL_SAFETY_S = 5.0
# Finished jobs are kept this long for late polls, then forgotten.
KEEP_FINISHED_S = 3600.0


@dataclass
class _Job:
    task: asyncio.Task[None] | None = None
    video_url: str | None = None
    error: AppError | None = None
    cancelled: bool = False
    finished_at: float | None = None
    started_at: float = field(default_factory=time.monotonic)


# The web app's risk control ("风控") as relays report it: HTTP 500 (or 200) with code -2001 and
# the web app's own code in the message, e.g. "[请求失败]: shark not pass (错误码: 1019)",
# "shark check reject (错误码: -4)", "生成失败，疑似存在异常行为，请重新尝试 (错误码: 4013)".
RISK_CONTROL_CODES = frozenset({1019, 4013, -4})
_INNER_CODE = re.compile(r"错误码[:：]\s*(-?\d+)")
_RISK_WORDS = ("shark", "疑似存在异常行为")


def is_risk_control(message: str) -> bool:
    """Whether a relay's error message is the web app refusing service (risk control)."""
    found = _INNER_CODE.search(message)
    if found is not None and int(found.group(1)) in RISK_CONTROL_CODES:
        return True
    return any(word in message for word in _RISK_WORDS)


def relay_error(code: Any, message: str, *, provider: str = NAME) -> AppError:
    """Translate a relay's error answer (jimeng-free-api's exception codes)."""
    label = f"{code}: {message}" if message else str(code)
    if is_risk_control(message):
        # An error answer: nothing was generated, so another provider may take the task, and
        # the relay's circuit opens (every call would meet the same wall for a while).
        return ProviderError(
            f"jimeng relay: refused by the web app's risk control ({label}); nothing was generated",
            provider=provider,
            retryable=True,
            open_circuit=True,
        )
    if code == -2000:
        return ValidationError(f"jimeng relay rejected the parameters ({label})")
    if code == -2006:
        return ContentRejectedError(f"jimeng rejected the content ({label})")
    if code == -2002:
        return ProviderAuthError(
            f"jimeng relay: the session id has expired ({label}); "
            "the operator must renew [jimeng] session_id / [video_api] cookie",
            provider=provider,
        )
    if code == -2009:
        return ProviderAuthError(
            f"jimeng relay: the account is out of credits ({label})", provider=provider
        )
    return ProviderError(f"jimeng relay failed ({label})", provider=provider, retryable=True)


class JimengRelayProvider:
    """Jimeng video via a relay that blocks until done."""

    mode = "relay"

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        settings: JimengSettings,
        base_url: str,
        session_id: str,
        name: str = NAME,
        downloads: httpx.AsyncClient | None = None,
    ) -> None:
        self.name = name
        self._http = http
        self._downloads = downloads or http
        self._settings = settings
        self._base = base_url.rstrip("/")
        self._session = session_id
        # The answer takes as long as the generation: a long, explicit read timeout.
        self._timeout = httpx.Timeout(
            connect=min(10.0, settings.timeout_s),
            read=settings.relay_timeout_s,
            write=settings.timeout_s,
            pool=settings.timeout_s,
        )
        # Generation is paid and not idempotent: retry only when the request surely never
        # reached the relay (connect errors) or it said "too many requests".
        self._policy = RetryPolicy(
            attempts=settings.retries + 1,
            base_s=settings.backoff_base_s,
            max_backoff_s=settings.backoff_max_s,
            statuses=frozenset({429}),
            transport="connect",
        )
        self._jobs: dict[str, _Job] = {}
        self.deadline_s: float | None = settings.deadline_s
        self.capabilities = Capabilities(
            image_input=True,
            last_frame=True,
            negative_prompt=False,
            max_prompt_chars=800,  # what the official API accepts
            max_concurrency=settings.max_running,
            aspect_ratios=frozenset(ASPECT_RATIOS),
            clips=ClipLimits.only((5000, 10000)),
        )
        # poll() is a lookup here; a finished call tells the poller at once (a slow safety
        # round besides, should a wake-up ever be missed).
        self.poll_policy = PollPolicy(interval_s=POLL_SAFETY_S, pushes=True)
        self.on_change: Callable[[str], None] | None = None

    def plan(self, request: GenerationRequest) -> dict[str, Any]:
        check_frames(request, NAME)
        check_aspect_ratio(request, NAME)
        ignored = refuse_or_ignore(request, NAME)
        resolution = request.resolution or "720p"
        check_choice("jimeng relay", "resolution", resolution, RESOLUTIONS)
        params: dict[str, Any] = {
            "mode": input_mode(request),
            "api": "relay",
            "model": self._settings.relay_model,
            "ratio": request.aspect_ratio,
            "resolution": resolution,
            **duration_params(duration_s_for(request.duration_ms), rule=DURATION_RULE),
            "relay_timeout_s": self._settings.relay_timeout_s,
        }
        if ignored:
            params["ignored"] = ignored
        return params

    async def submit(self, request: GenerationRequest) -> str:
        params = self.plan(request)
        job_id = f"{ID_PREFIX}{request.task_id}"
        existing = self._jobs.get(job_id)
        if existing is not None and existing.finished_at is None:
            return job_id  # already generating in this process: never twice
        self._forget_old()
        body: dict[str, Any] = {
            "model": params["model"],
            "prompt": request.prompt,
            "ratio": params["ratio"],
            "resolution": params["resolution"],
            "duration": params["duration_s"],
        }
        if request.image_url:
            body["file_paths"] = [u for u in (request.image_url, request.last_frame_url) if u]
        job = _Job()
        self._jobs[job_id] = job
        job.task = asyncio.create_task(self._run(job, body, request.task_id), name=job_id)
        job.task.add_done_callback(lambda _: self.on_change and self.on_change(job_id))
        # Refusals (risk control, an expired session, bad parameters) come back within a
        # second; a generation takes minutes. Waiting briefly turns such an answer into a
        # submit error, and an error answer means nothing was made: the pipeline may fall
        # back to another provider, exactly as after an error answer from any other API.
        await asyncio.wait({job.task}, timeout=self._settings.relay_answer_window_s)
        if job.error is not None and not isinstance(job.error, ProviderOutcomeUnknownError):
            del self._jobs[job_id]
            raise job.error
        return job_id

    def _forget_old(self) -> None:
        now = time.monotonic()
        for job_id, job in list(self._jobs.items()):
            if job.finished_at is not None and now - job.finished_at > KEEP_FINISHED_S:
                del self._jobs[job_id]

    async def _run(self, job: _Job, body: dict[str, Any], task_id: str) -> None:
        try:
            job.video_url = await self._generate(body)
        except AppError as exc:
            job.error = exc
        except asyncio.CancelledError:
            job.cancelled = True
            raise
        except Exception as exc:  # a bug must surface as a failed task, not a silent hang
            log.exception("jimeng relay job crashed", extra={"task_id": task_id})
            job.error = ProviderError(f"jimeng relay job crashed: {exc!r}", provider=self.name)
        finally:
            job.finished_at = time.monotonic()

    async def _generate(self, body: dict[str, Any]) -> str:
        url = f"{self._base}/v1/videos/generations"
        headers = {"Authorization": f"Bearer {self._session}"}

        def build() -> httpx.Request:
            return self._http.build_request(
                "POST", url, json=body, headers=headers, timeout=self._timeout
            )

        sent_at = dt.datetime.now(dt.UTC)
        try:
            response = await send(
                self._http, build, provider=self.name, policy=self._policy, creates=True
            )
        except ProviderOutcomeUnknownError as exc:
            why = exc.message
            if isinstance(exc.__cause__, httpx.ReadTimeout):
                why = f"no answer within relay_timeout_s={self._settings.relay_timeout_s:g}s"
            raise self._lost(sent_at, why) from exc
        if response.status_code in (401, 403):
            raise ProviderAuthError(
                f"jimeng relay refused the session id (HTTP {response.status_code})",
                provider=self.name,
            )
        try:
            data = response.json()
        except ValueError as exc:
            if response.is_success:
                raise self._lost(sent_at, "the answer was not JSON") from exc
            raise ProviderError(
                f"jimeng relay: unexpected answer (HTTP {response.status_code}, not JSON)",
                provider=self.name,
                retryable=True,
            ) from exc
        if isinstance(data, dict) and isinstance(data.get("code"), int) and data["code"] != 0:
            raise relay_error(data["code"], str(data.get("message") or ""), provider=self.name)
        if response.status_code >= 400:
            raise ProviderError(
                f"jimeng relay answered HTTP {response.status_code}",
                provider=self.name,
                retryable=response.status_code >= 500 or response.status_code == 429,
            )
        items = data.get("data") if isinstance(data, dict) else None
        first = items[0] if isinstance(items, list) and items else None
        video_url = first.get("url") if isinstance(first, dict) else None
        if not isinstance(video_url, str) or not video_url:
            raise self._lost(sent_at, "the answer had no video url")
        return video_url

    def _lost(self, sent_at: dt.datetime, why: str) -> ProviderOutcomeUnknownError:
        return ProviderOutcomeUnknownError(
            f"jimeng relay: the generation sent at {sent_at:%Y-%m-%d %H:%M:%S} UTC got no usable "
            f"answer ({why}); the relay may have made and charged for the video — check its "
            "account before creating the task again",
            provider=self.name,
        )

    async def poll(self, provider_task_id: str) -> JobStatus:
        job = self._jobs.get(provider_task_id)
        if job is None:
            return JobStatus(
                state=JobState.FAILED,
                provider_status="lost",
                error=ProviderOutcomeUnknownError(
                    "jimeng relay: this generation was lost when the gateway restarted (the "
                    "relay answers one blocking call and has no task id to resume); it was not "
                    "re-submitted to avoid paying twice — the relay may still have made it, "
                    "check its account before creating the task again",
                    provider=self.name,
                ),
            )
        if job.finished_at is None:
            return JobStatus(
                state=JobState.RUNNING, provider_status="generating", poll_after_s=POLL_AFTER_S
            )
        if job.cancelled:
            return JobStatus(state=JobState.CANCELLED, provider_status="cancelled")
        if job.error is not None:
            return JobStatus(state=JobState.FAILED, provider_status="failed", error=job.error)
        return JobStatus(state=JobState.SUCCEEDED, provider_status="done", video_url=job.video_url)

    def open_video(
        self, provider_task_id: str, status: JobStatus
    ) -> AbstractAsyncContextManager[VideoStream]:
        if not status.video_url:
            raise ProviderError(
                f"jimeng: job {provider_task_id} has no video URL", provider=self.name
            )
        return open_url_stream(self._downloads, status.video_url, provider=self.name)

    async def find_job(
        self,
        request: GenerationRequest,
        *,
        since: dt.datetime,
        is_known: Callable[[str], Awaitable[bool]],
    ) -> str | None:
        """The relay has no job ids at all: a lost answer cannot be reconciled."""
        return None

    async def resume(self, provider_task_id: str, request: GenerationRequest) -> None:
        """Nothing to re-attach: the blocking call died with the old process.

        :meth:`poll` reports the unknown id as a retryable failure (see the module docstring);
        re-running here could pay for the same video twice.
        """

    async def cancel(self, provider_task_id: str) -> None:
        """Closes the blocking call; the relay may still finish (and charge) on its side."""
        job = self._jobs.get(provider_task_id)
        if job is not None and job.task is not None and not job.task.done():
            job.task.cancel()
            await asyncio.gather(job.task, return_exceptions=True)
            # A task cancelled before it ever ran did not get to record it.
            job.cancelled = True
            if job.finished_at is None:
                job.finished_at = time.monotonic()

    async def check(self) -> None:
        try:
            await self._http.get(f"{self._base}/ping", timeout=self._settings.timeout_s)
        except httpx.TransportError as exc:
            raise UnavailableError(
                f"jimeng relay unreachable: {describe_transport_error(exc)}"
            ) from exc

    async def aclose(self) -> None:
        tasks = [job.task for job in self._jobs.values() if job.task and not job.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
