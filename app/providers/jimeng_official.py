"""Jimeng through the official Volcengine visual API (AK/SK, V4-signed).

``POST {base}/?Action=CVSync2AsyncSubmitTask&Version=2022-08-31`` → ``data.task_id``;
``POST …Action=CVSync2AsyncGetResult…`` with ``req_key`` and ``task_id`` → ``data.status``
(``in_queue`` / ``generating`` / ``done`` / ``not_found`` / ``expired``) and ``data.video_url``
(valid 1 h). ``GetResult`` needs the ``req_key`` the task was submitted with, so the provider
task id stored by the gateway is ``{req_key}:{task_id}``. There is no cancel call.

Errors: ``code`` in the body (10000 = success) for business errors, ``ResponseMetadata.Error``
for the API gateway's (signature, access key, flow limit).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import httpx

from app.errors import (
    AppError,
    ContentRejectedError,
    ProviderAuthError,
    ProviderError,
    ProviderOutcomeUnknownError,
    ProviderTimeoutError,
    UnavailableError,
    ValidationError,
)
from app.providers import volc_sign
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
from app.providers.http import RetryPolicy, retry_after_s, send
from app.providers.jimeng_common import DURATION_RULE, NAME, duration_s_for, frames_for
from app.providers.planning import (
    check_aspect_ratio,
    check_frames,
    duration_params,
    input_mode,
    refuse_or_ignore,
)
from app.providers.polling import PollPolicy

if TYPE_CHECKING:
    from app.config import JimengSettings

log = logging.getLogger(__name__)

VERSION = "2022-08-31"
SUBMIT = "CVSync2AsyncSubmitTask"
GET_RESULT = "CVSync2AsyncGetResult"
OK = 10000
MAX_PROMPT_CHARS = 800

INPUT_REJECTED = frozenset({50411, 50412, 50413, 50512, 50518})
OUTPUT_REJECTED = frozenset({50511, 50516, 50517, 50519})
BUSY = frozenset({50429, 50430})
INTERNAL = frozenset({50500, 50501})
GW_AUTH = frozenset({100009, 100010, 100013})  # InvalidAccessKey, SignatureDoesNotMatch, Denied
GW_FLOW_LIMIT = 100018

_STATES: dict[str, JobState] = {
    "in_queue": JobState.QUEUED,
    "generating": JobState.RUNNING,
    "done": JobState.SUCCEEDED,
    "not_found": JobState.FAILED,
    "expired": JobState.FAILED,
}


def _readable_submit(body: Any) -> bool:
    """A submit answer we can act on: an error, or success with a task id."""
    if not isinstance(body, dict):
        return False
    if _gateway_error(body) is not None:
        return True
    if "code" not in body:
        return False
    if body.get("code") != OK:
        return True
    data = body.get("data")
    return isinstance(data, dict) and isinstance(data.get("task_id"), str) and bool(data["task_id"])


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _gateway_error(body: Any) -> dict[str, Any] | None:
    if not isinstance(body, dict):
        return None
    meta = body.get("ResponseMetadata")
    err = meta.get("Error") if isinstance(meta, dict) else None
    return err if isinstance(err, dict) else None


def _retry_if(response: httpx.Response) -> bool:
    """Busy/internal codes may come with HTTP 200; the flow limit from the API gateway."""
    body = _json(response)
    gateway = _gateway_error(body)
    if gateway is not None:
        return gateway.get("CodeN") == GW_FLOW_LIMIT
    return isinstance(body, dict) and body.get("code") in BUSY | INTERNAL


class JimengOfficialProvider:
    """Jimeng video via ``visual.volcengineapi.com``."""

    mode = "official"

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        settings: JimengSettings,
        name: str = NAME,
        downloads: httpx.AsyncClient | None = None,
    ) -> None:
        assert settings.access_key is not None and settings.secret_key is not None
        self.name = name
        self._http = http
        self._downloads = downloads or http
        self._settings = settings
        self._base = settings.base_url.rstrip("/")
        base = httpx.URL(self._base)
        self._url = base.copy_with(path=base.path or "/")
        self._host = self._url.netloc.decode("ascii")
        self._timeout = httpx.Timeout(settings.timeout_s, connect=min(10.0, settings.timeout_s))
        self._policy = RetryPolicy(
            attempts=settings.retries + 1,
            base_s=settings.backoff_base_s,
            max_backoff_s=settings.backoff_max_s,
        )
        self.deadline_s: float | None = settings.deadline_s
        self.capabilities = Capabilities(
            image_input=True,
            last_frame=True,
            negative_prompt=False,
            max_prompt_chars=MAX_PROMPT_CHARS,
            max_concurrency=settings.max_running,
            aspect_ratios=frozenset(ASPECT_RATIOS),
            clips=ClipLimits.only((5000, 10000)),
        )
        # No batch read: one GetResult per job, [jimeng] max_qps for all jobs together,
        # nearest-to-done first (app.providers.polling).
        self.poll_policy = PollPolicy(interval_s=1.0, max_rps=settings.max_qps)

    # -- planning ---------------------------------------------------------------------------

    def plan(self, request: GenerationRequest) -> dict[str, Any]:
        if len(request.prompt) > MAX_PROMPT_CHARS:
            raise ValidationError(
                f"jimeng: the prompt is {len(request.prompt)} characters; "
                f"the official API accepts at most {MAX_PROMPT_CHARS}"
            )
        check_frames(request, NAME)
        check_aspect_ratio(request, NAME)
        ignored = refuse_or_ignore(request, NAME)
        mode = input_mode(request)
        req_key = {
            "first_last_frame": self._settings.req_key_i2v_tail,
            "first_frame": self._settings.req_key_i2v,
        }.get(mode, self._settings.req_key_t2v)
        params: dict[str, Any] = {
            "mode": mode,
            "api": "official",
            "req_key": req_key,
            "frames": frames_for(request.duration_ms),
            **duration_params(duration_s_for(request.duration_ms), rule=DURATION_RULE),
            # Image-to-video takes its shape from the image.
            "aspect_ratio": None if request.image_url else request.aspect_ratio,
            "seed": request.seed if request.seed is not None else -1,
        }
        if ignored:
            params["ignored"] = ignored
        return params

    # -- calls ------------------------------------------------------------------------------

    def _builder(self, action: str, payload: dict[str, Any]) -> Callable[[], httpx.Request]:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        query = {"Action": action, "Version": VERSION}
        settings = self._settings
        assert settings.access_key is not None and settings.secret_key is not None
        access_key = settings.access_key.get_secret_value()
        secret_key = settings.secret_key.get_secret_value()

        def build() -> httpx.Request:
            # Signed per attempt: the signature carries the time.
            headers = volc_sign.sign_headers(
                method="POST",
                host=self._host,
                path=self._url.path,
                query=query,
                body=body,
                access_key=access_key,
                secret_key=secret_key,
                region=settings.region,
                service=settings.service,
                x_date=volc_sign.format_x_date(dt.datetime.now(dt.UTC)),
            )
            return self._http.build_request(
                "POST",
                self._url,
                params=query,
                content=body,
                headers=headers,
                timeout=self._timeout,
            )

        return build

    async def _call(
        self, action: str, payload: dict[str, Any], *, creates: bool = False
    ) -> dict[str, Any]:
        """One API call; returns ``data`` on code 10000, raises the translated error otherwise.

        For a create, a 2xx answer we cannot read is a lost answer: the job may exist.
        """
        response = await send(
            self._http,
            self._builder(action, payload),
            provider=self.name,
            policy=self._policy,
            retry_if=_retry_if,
            creates=creates,
        )
        body = _json(response)
        if creates and response.is_success and not _readable_submit(body):
            raise ProviderOutcomeUnknownError(
                f"jimeng: the answer to a submit could not be read (HTTP "
                f"{response.status_code}); the job may exist at the provider",
                provider=self.name,
            )
        error = self._error(response, body)
        if error is not None:
            raise error
        assert isinstance(body, dict)
        data = body.get("data")
        if not isinstance(data, dict):
            raise self._garbage(response)
        return data

    def _garbage(self, response: httpx.Response) -> ProviderError:
        return ProviderError(
            f"jimeng: unexpected answer (HTTP {response.status_code}, "
            f"{response.headers.get('content-type', 'no content-type')})",
            provider=self.name,
            retryable=True,
        )

    def _error(self, response: httpx.Response, body: Any) -> AppError | None:
        status = response.status_code
        gateway = _gateway_error(body)
        if gateway is not None:
            code_n = gateway.get("CodeN")
            label = f"{gateway.get('Code')} {code_n}: {gateway.get('Message', '')}".strip()
            if code_n in GW_AUTH or status in (401, 403):
                return ProviderAuthError(
                    f"jimeng refused the gateway's access key or signature ({label}); "
                    "the operator must fix [jimeng] access_key / secret_key",
                    provider=self.name,
                )
            if code_n == GW_FLOW_LIMIT or status == 429 or status >= 500:
                return ProviderError(
                    f"jimeng is rate limiting or failing ({label})",
                    provider=self.name,
                    retryable=True,
                    retry_after_s=retry_after_s(response),
                )
            return ProviderError(f"jimeng API error ({label})", provider=self.name, retryable=False)
        if not isinstance(body, dict) or "code" not in body:
            if status >= 500 or status in (408, 429):
                return ProviderError(
                    f"jimeng answered HTTP {status}",
                    provider=self.name,
                    retryable=True,
                    retry_after_s=retry_after_s(response),
                )
            return self._garbage(response)
        code = body.get("code")
        if code == OK:
            return None
        return self._business_error(code, str(body.get("message") or ""), response)

    def _business_error(
        self, code: Any, message: str, response: httpx.Response | None = None
    ) -> AppError:
        label = f"{code}: {message}" if message else str(code)
        status = response.status_code if response is not None else 200
        if code in INPUT_REJECTED:
            return ContentRejectedError(f"jimeng rejected the input ({label})")
        if code in OUTPUT_REJECTED:
            # The generated video failed moderation; another generation may pass.
            return ContentRejectedError(
                f"jimeng rejected the generated video ({label})", retryable=True
            )
        if code in BUSY or code in INTERNAL or status >= 500:
            return ProviderError(
                f"jimeng is busy or failing ({label})",
                provider=self.name,
                retryable=True,
                retry_after_s=retry_after_s(response) if response is not None else None,
            )
        if 400 <= status < 500:
            return ValidationError(f"jimeng rejected the request ({label})")
        return ProviderError(f"jimeng failed ({label})", provider=self.name, retryable=False)

    # -- the protocol ------------------------------------------------------------------------

    async def submit(self, request: GenerationRequest) -> str:
        params = self.plan(request)
        payload: dict[str, Any] = {
            "req_key": params["req_key"],
            "prompt": request.prompt,
            "seed": params["seed"],
            "frames": params["frames"],
        }
        if params["aspect_ratio"] is not None:
            payload["aspect_ratio"] = params["aspect_ratio"]
        if request.image_url:
            payload["image_urls"] = [
                url for url in (request.image_url, request.last_frame_url) if url
            ]
        data = await self._call(SUBMIT, payload, creates=True)
        task_id = str(data["task_id"])  # checked by _readable_submit
        log.info("jimeng task submitted", extra={"task_id": request.task_id, "provider": self.name})
        return f"{params['req_key']}:{task_id}"

    def _split(self, provider_task_id: str) -> tuple[str, str]:
        req_key, sep, task_id = provider_task_id.partition(":")
        if not sep:
            return self._settings.req_key_t2v, provider_task_id
        return req_key, task_id

    async def poll(self, provider_task_id: str) -> JobStatus:
        req_key, task_id = self._split(provider_task_id)
        response = await send(
            self._http,
            self._builder(GET_RESULT, {"req_key": req_key, "task_id": task_id}),
            provider=self.name,
            policy=self._policy,
            retry_if=_retry_if,
        )
        body = _json(response)
        data = body.get("data") if isinstance(body, dict) else None
        word = data.get("status") if isinstance(data, dict) else None
        code = body.get("code") if isinstance(body, dict) else None
        if isinstance(word, str) and word == "done" and code != OK:
            # "done" with a non-success code is a failed generation (often output moderation).
            message = str(body.get("message") or "") if isinstance(body, dict) else ""
            return JobStatus(
                state=JobState.FAILED,
                provider_status=f"done:{code}",
                error=self._business_error(code, message),
            )
        error = self._error(response, body)
        if error is not None:
            if code in OUTPUT_REJECTED:
                return JobStatus(state=JobState.FAILED, provider_status=str(code), error=error)
            raise error
        if not isinstance(data, dict) or not isinstance(word, str):
            raise self._garbage(response)
        state = _STATES.get(word, JobState.RUNNING)  # unknown words: still in progress
        if state is JobState.SUCCEEDED:
            video_url = data.get("video_url")
            if not isinstance(video_url, str) or not video_url:
                raise self._garbage(response)
            return JobStatus(state=state, provider_status=word, video_url=video_url)
        if word == "expired":
            return JobStatus(
                state=state,
                provider_status=word,
                error=ProviderTimeoutError(
                    "jimeng: the task expired at the provider", provider=self.name
                ),
            )
        if word == "not_found":
            return JobStatus(
                state=state,
                provider_status=word,
                error=ProviderError(
                    f"jimeng: task {task_id} is unknown to the provider",
                    provider=self.name,
                    retryable=False,
                ),
            )
        return JobStatus(state=state, provider_status=word)

    def open_video(
        self, provider_task_id: str, status: JobStatus
    ) -> AbstractAsyncContextManager[VideoStream]:
        if not status.video_url:
            raise ProviderError(
                f"jimeng: task {provider_task_id} has no video URL", provider=self.name
            )
        return open_url_stream(self._downloads, status.video_url, provider=self.name)

    async def find_job(
        self,
        request: GenerationRequest,
        *,
        since: dt.datetime,
        is_known: Callable[[str], Awaitable[bool]],
    ) -> str | None:
        """The visual API cannot list jobs: a lost submit answer cannot be reconciled."""
        return None

    async def resume(self, provider_task_id: str, request: GenerationRequest) -> None:
        """The job lives at the visual API; polling it again is all a restart needs."""

    async def cancel(self, provider_task_id: str) -> None:
        """The visual API has no cancel; the task runs out at the provider."""
        log.info("jimeng (official) cannot cancel; ignoring", extra={"provider": self.name})

    async def check(self) -> None:
        """A GetResult for a task that does not exist proves reachability and credentials."""
        try:
            await self.poll(f"{self._settings.req_key_t2v}:vgw-readiness-check")
        except ProviderAuthError:
            raise
        except ProviderError as exc:
            if exc.retryable:
                raise UnavailableError(f"jimeng unreachable: {exc.message}") from exc

    async def aclose(self) -> None:
        """The HTTP client is shared and owned by the app."""
