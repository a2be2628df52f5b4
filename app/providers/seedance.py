"""Doubao Seedance on Volcengine Ark (content-generation tasks).

Protocol (Ark's content-generation API): ``POST {base}/contents/generations/tasks`` with
``model`` and a ``content`` list (text, then ``image_url`` items with roles ``first_frame`` /
``last_frame``) → ``{"id": "cgt-…"}``; ``GET …/tasks/{id}`` until ``succeeded``
(``content.video_url``, a signed URL valid 24 h); ``DELETE …/tasks/{id}`` cancels a queued task.
Output parameters go in JSON fields, never as ``--flags`` in the text.

Parameter mapping (also stored in the task's ``params`` by :meth:`SeedanceProvider.plan`):

* ``duration_ms`` → ``duration`` in whole seconds: the nearest value in ``[seedance] durations``
  (default 2…12), halves rounded up, so 5000 → 5, 7500 → 8, 30000 → 12.
* ``aspect_ratio`` → ``ratio`` (``options.ratio = "adaptive"`` for image-to-video);
  ``resolution`` from the request, else ``[seedance] resolution``, else the model's default.
* ``image_url`` → first frame; ``last_frame_url`` (needs ``image_url``) → last frame.
* ``options.camera_fixed`` / ``options.watermark`` override ``[seedance]`` defaults;
  ``options.model`` overrides ``[seedance] model_t2v`` / ``model_i2v`` (an Ark model id).
* fps is always 24 (the only value the models accept).
* ``seed``: the request's; when it has none, a seed derived from the gateway task id. Ark echoes
  the seed in its task list, which is what lets :meth:`SeedanceProvider.find_job` tell a job
  whose create answer was lost from every other job.

Paying once: a create is re-sent only when Ark surely did not take it (no connection, or an
error answer). When the answer is lost, the job is adopted from its callback (the callback URL
carries our task id, see ``app/api/routes/callbacks.py``) or from Ark's task list when exactly
one recent job matches (model, seed, ratio, duration, resolution); the task fails with
``provider_outcome_unknown`` when neither finds it within ``[seedance] adopt_window_s``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, Self

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
from app.providers.http import RetryPolicy, retry_after_s, send, should_retry_header

if TYPE_CHECKING:
    from app.config import SeedanceSettings, Settings
    from app.providers.registry import ProviderDeps

log = logging.getLogger(__name__)

NAME = "seedance"
RESOLUTIONS = ("480p", "720p", "1080p")
SEED_MIN, SEED_MAX = -1, 2**32 - 1
FPS = 24

_STATES: dict[str, JobState] = {
    "queued": JobState.QUEUED,
    "running": JobState.RUNNING,
    "succeeded": JobState.SUCCEEDED,
    "failed": JobState.FAILED,
    "cancelled": JobState.CANCELLED,
    "expired": JobState.FAILED,
}
_AUTH_STATUSES = (401, 403)
# Ark's list API: page_size is at most 500; how far back find_job reads, and the clock skew
# allowed between our submit time and Ark's created_at.
LIST_PAGE_SIZE = 100
LIST_MAX_PAGES = 5
FIND_SKEW_S = 120


def task_seed(task_id: str) -> int:
    """A seed of our own for a request without one: stable per task, spread over Ark's range."""
    return int.from_bytes(hashlib.sha256(f"seedance-seed:{task_id}".encode()).digest()[:4], "big")


def nearest_duration(duration_ms: int, allowed: list[int]) -> int:
    """The allowed whole-second duration nearest to ``duration_ms``; halves round up."""
    choices = sorted(set(allowed))
    return min(choices, key=lambda s: (abs(s * 1000 - duration_ms), -s))


def callback_signature(secret: bytes, task_id: str) -> str:
    return hmac.new(secret, f"seedance:{task_id}".encode(), hashlib.sha256).hexdigest()


def callback_secret(settings: SeedanceSettings) -> bytes | None:
    """The HMAC key for callback URLs: ``[seedance] callback_secret``, else derived from the
    API key (stable across restarts, never the key itself)."""
    if settings.callback_secret is not None:
        return settings.callback_secret.get_secret_value().encode()
    if settings.api_key is not None:
        key = settings.api_key.get_secret_value().encode()
        return hmac.new(key, b"vgw-seedance-callback", hashlib.sha256).digest()
    return None


def verify_callback(settings: SeedanceSettings, task_id: str, sig: str) -> bool:
    secret = callback_secret(settings)
    if secret is None or not sig:
        return False
    return hmac.compare_digest(callback_signature(secret, task_id), sig)


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class SeedanceProvider:
    """Volcengine Ark Seedance text/image-to-video."""

    name = NAME

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        settings: SeedanceSettings,
        callback_base_url: str | None = None,
    ) -> None:
        self._http = http
        self._settings = settings
        self._base = settings.base_url.rstrip("/")
        self._callback_base = callback_base_url.rstrip("/") if callback_base_url else None
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
            max_prompt_chars=500,  # Ark advises at most 500 characters
            max_concurrency=settings.max_running,
            aspect_ratios=frozenset(ASPECT_RATIOS),
            find_window_s=settings.adopt_window_s,
            clips=ClipLimits.only(s * 1000 for s in settings.durations),
        )

    @classmethod
    def from_settings(cls, settings: Settings, deps: ProviderDeps) -> Self | None:
        seedance = settings.seedance
        if seedance.api_key is None:
            return None
        # Ark can only call back a gateway that is reachable: an explicit public URL.
        callback_base = (
            deps.public_base_url if seedance.callback and settings.server.public_base_url else None
        )
        return cls(http=deps.http, settings=seedance, callback_base_url=callback_base)

    # -- planning ---------------------------------------------------------------------------

    def plan(self, request: GenerationRequest) -> dict[str, Any]:
        opts = request.options
        if request.last_frame_url and not request.image_url:
            raise ValidationError("seedance: last_frame_url needs image_url (the first frame)")
        if request.aspect_ratio not in ASPECT_RATIOS:
            raise ValidationError(f"seedance: unsupported aspect_ratio {request.aspect_ratio!r}")
        ratio = str(opts.get("ratio") or request.aspect_ratio)
        if ratio == "adaptive" and not request.image_url:
            raise ValidationError("seedance: ratio 'adaptive' needs an input image")
        if ratio not in (*ASPECT_RATIOS, "adaptive"):
            raise ValidationError(f"seedance: unsupported ratio {ratio!r}")
        resolution = request.resolution or self._settings.resolution
        if resolution is not None and resolution not in RESOLUTIONS:
            raise ValidationError(
                f"seedance: resolution must be one of {', '.join(RESOLUTIONS)}, not {resolution!r}"
            )
        if request.seed is not None and not SEED_MIN <= request.seed <= SEED_MAX:
            raise ValidationError(f"seedance: seed must be within {SEED_MIN}..{SEED_MAX}")
        if request.image_url and request.last_frame_url:
            mode = "first_last_frame"
        elif request.image_url:
            mode = "first_frame"
        else:
            mode = "text_to_video"
        default_model = self._settings.model_i2v if request.image_url else self._settings.model_t2v
        model = str(opts.get("model") or default_model)
        duration_s = nearest_duration(request.duration_ms, self._settings.durations)
        camera_fixed = opts.get("camera_fixed", self._settings.camera_fixed)
        watermark = opts.get("watermark", self._settings.watermark)
        seed = request.seed if request.seed is not None else task_seed(request.task_id)
        return {
            "model": model,
            "mode": mode,
            "ratio": ratio,
            "resolution": resolution,
            "duration_s": duration_s,
            "duration_ms": duration_s * 1000,
            "duration_rule": "nearest of [seedance] durations, halves up",
            "fps": FPS,
            "seed": seed,
            "seed_rule": "the request's"
            if request.seed is not None
            else "derived from the task id",
            "camera_fixed": None if camera_fixed is None else bool(camera_fixed),
            "watermark": bool(watermark),
            "service_tier": self._settings.service_tier,
        }

    def _create_body(self, request: GenerationRequest, params: dict[str, Any]) -> dict[str, Any]:
        content: list[dict[str, Any]] = [{"type": "text", "text": request.prompt}]
        if request.image_url:
            content.append(
                {
                    "type": "image_url",
                    "image_url": {"url": request.image_url},
                    "role": "first_frame",
                }
            )
        if request.last_frame_url:
            content.append(
                {
                    "type": "image_url",
                    "image_url": {"url": request.last_frame_url},
                    "role": "last_frame",
                }
            )
        body: dict[str, Any] = {
            "model": params["model"],
            "content": content,
            "ratio": params["ratio"],
            "duration": params["duration_s"],
            "watermark": params["watermark"],
        }
        for key in ("resolution", "seed", "camera_fixed", "service_tier"):
            if params.get(key) is not None:
                body[key] = params[key]
        secret = callback_secret(self._settings)
        if self._callback_base and secret is not None:
            sig = callback_signature(secret, request.task_id)
            body["callback_url"] = (
                f"{self._callback_base}/v1/callbacks/seedance/{request.task_id}?sig={sig}"
            )
        return body

    # -- calls ------------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        assert self._settings.api_key is not None
        return {"Authorization": f"Bearer {self._settings.api_key.get_secret_value()}"}

    def _builder(
        self, method: str, path: str, *, json: Any = None, params: Any = None
    ) -> Callable[[], httpx.Request]:
        url = f"{self._base}{path}"

        def build() -> httpx.Request:
            return self._http.build_request(
                method,
                url,
                json=json,
                params=params,
                headers=self._headers(),
                timeout=self._timeout,
            )

        return build

    async def _call(
        self, method: str, path: str, *, json: Any = None, params: Any = None, creates: bool = False
    ) -> httpx.Response:
        return await send(
            self._http,
            self._builder(method, path, json=json, params=params),
            provider=NAME,
            policy=self._policy,
            creates=creates,
        )

    def _scrub(self, text: str) -> str:
        key = self._settings.api_key
        if key is not None and key.get_secret_value():
            text = text.replace(key.get_secret_value(), "***")
        return text

    def _error(self, response: httpx.Response, *, creating: bool) -> AppError:
        """Translate an Ark error answer (``{"error": {code, message, param}}``)."""
        body = _json(response)
        err = body.get("error") if isinstance(body, dict) else None
        err = err if isinstance(err, dict) else {}
        code = str(err.get("code") or "")
        message = self._scrub(str(err.get("message") or response.reason_phrase or "no message"))
        label = f"{code}: {message}" if code else message
        status = response.status_code
        if status in _AUTH_STATUSES or code.startswith(("Authentication", "AccountOverdue")):
            return ProviderAuthError(
                f"seedance refused the gateway's credentials or account (HTTP {status} {label}); "
                "the operator must fix [seedance] api_key or the Ark account",
                provider=NAME,
            )
        if creating and status == 404:
            return ProviderAuthError(
                f"seedance: model or endpoint not available to this account ({label}); "
                "check [seedance] model_t2v / model_i2v and base_url",
                provider=NAME,
            )
        if "Sensitive" in code or "Moderation" in code:
            return ContentRejectedError(f"seedance rejected the content ({label})")
        if status in (400, 422) or code in ("InvalidParameter", "MissingParameter"):
            param = err.get("param")
            where = f" [{param}]" if param else ""
            return ValidationError(f"seedance rejected a parameter{where} ({label})")
        if status in (408, 429) or status >= 500:
            return ProviderError(
                f"seedance answered HTTP {status} ({label})",
                provider=NAME,
                retryable=should_retry_header(response) is not False,
                retry_after_s=retry_after_s(response),
            )
        return ProviderError(
            f"seedance answered HTTP {status} ({label})", provider=NAME, retryable=False
        )

    def _garbage(self, response: httpx.Response, what: str) -> ProviderError:
        return ProviderError(
            f"seedance: unexpected {what} answer (HTTP {response.status_code}, "
            f"{response.headers.get('content-type', 'no content-type')})",
            provider=NAME,
            retryable=True,
        )

    async def submit(self, request: GenerationRequest) -> str:
        params = self.plan(request)
        body = self._create_body(request, params)
        response = await self._call("POST", "/contents/generations/tasks", json=body, creates=True)
        if response.status_code >= 400:
            raise self._error(response, creating=True)
        data = _json(response)
        task_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(task_id, str) or not task_id:
            # A success we cannot read is a lost answer: the job may well exist.
            raise ProviderOutcomeUnknownError(
                f"seedance: the create answer could not be read (HTTP {response.status_code}, "
                f"{response.headers.get('content-type', 'no content-type')}); "
                "the job may exist at Ark",
                provider=NAME,
            )
        log.info("seedance task created", extra={"task_id": request.task_id, "provider": NAME})
        return task_id

    async def poll(self, provider_task_id: str) -> JobStatus:
        response = await self._call("GET", f"/contents/generations/tasks/{provider_task_id}")
        if response.status_code == 404:
            return JobStatus(
                state=JobState.FAILED,
                provider_status="not_found",
                error=ProviderError(
                    f"seedance: task {provider_task_id} no longer exists at the provider",
                    provider=NAME,
                    retryable=False,
                ),
            )
        if response.status_code >= 400:
            raise self._error(response, creating=False)
        data = _json(response)
        if not isinstance(data, dict) or not isinstance(data.get("status"), str):
            raise self._garbage(response, "task")
        word = data["status"]
        state = _STATES.get(word, JobState.RUNNING)  # unknown words: still in progress
        video_url: str | None = None
        error: AppError | None = None
        if state is JobState.SUCCEEDED:
            content = data.get("content")
            video_url = content.get("video_url") if isinstance(content, dict) else None
            if not isinstance(video_url, str) or not video_url:
                raise self._garbage(response, "succeeded task without video_url in")
        elif state is JobState.FAILED:
            error = self._task_error(word, data.get("error"))
        return JobStatus(state=state, provider_status=word, video_url=video_url, error=error)

    def _task_error(self, word: str, err: Any) -> AppError:
        err = err if isinstance(err, dict) else {}
        code = str(err.get("code") or "")
        message = self._scrub(str(err.get("message") or word))
        label = f"{code}: {message}" if code else message
        if word == "expired":
            return ProviderTimeoutError(
                f"seedance: the task expired at the provider before finishing ({label})",
                provider=NAME,
            )
        if "Sensitive" in code:
            return ContentRejectedError(f"seedance rejected the generated video ({label})")
        if code in ("InvalidParameter", "MissingParameter"):
            return ValidationError(f"seedance rejected a parameter ({label})")
        retryable = code.startswith("InternalServiceError") or code == "ServerOverloaded"
        return ProviderError(
            f"seedance: generation failed ({label})", provider=NAME, retryable=retryable
        )

    def open_video(
        self, provider_task_id: str, status: JobStatus
    ) -> AbstractAsyncContextManager[VideoStream]:
        if not status.video_url:
            raise ProviderError(
                f"seedance: task {provider_task_id} has no video URL", provider=NAME
            )
        return open_url_stream(self._http, status.video_url, provider=NAME)

    async def find_job(
        self,
        request: GenerationRequest,
        *,
        since: dt.datetime,
        is_known: Callable[[str], Awaitable[bool]],
    ) -> str | None:
        """Read Ark's recent jobs; adopt the one that matches this request beyond doubt."""
        params = self.plan(request)
        want = {"model": params["model"], "seed": params["seed"], "duration": params["duration_s"]}
        if params["ratio"] != "adaptive":  # Ark reports the ratio it chose
            want["ratio"] = params["ratio"]
        earliest = since.timestamp() - FIND_SKEW_S
        candidates: list[str] = []
        for page in range(1, LIST_MAX_PAGES + 1):
            response = await self._call(
                "GET",
                "/contents/generations/tasks",
                params={"page_num": page, "page_size": LIST_PAGE_SIZE},
            )
            if response.status_code >= 400:
                raise self._error(response, creating=False)
            data = _json(response)
            items = data.get("items") if isinstance(data, dict) else None
            if not isinstance(items, list):
                raise self._garbage(response, "list")
            older = False
            for item in items:
                if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                    continue
                created = item.get("created_at")
                if isinstance(created, int | float) and created < earliest:
                    older = True
                    continue
                if any(item.get(key) != value for key, value in want.items()):
                    continue
                if params["resolution"] and item.get("resolution") != params["resolution"]:
                    continue
                if not await is_known(item["id"]):
                    candidates.append(item["id"])
            if older or len(items) < LIST_PAGE_SIZE:
                break
        if len(candidates) == 1:
            log.info("seedance: adopted a job from the task list", extra={"provider": NAME})
            return candidates[0]
        if candidates:
            log.warning(
                "seedance: %d jobs match a lost create; adopting none",
                len(candidates),
                extra={"provider": NAME},
            )
        return None

    async def resume(self, provider_task_id: str, request: GenerationRequest) -> None:
        """The job lives at Ark; polling it again is all a restart needs."""

    async def cancel(self, provider_task_id: str) -> None:
        """DELETE cancels a queued task; a running one cannot be stopped (Ark says no)."""
        try:
            response = await self._call("DELETE", f"/contents/generations/tasks/{provider_task_id}")
        except ProviderError as exc:
            log.warning("seedance cancel failed: %s", exc.message, extra={"provider": NAME})
            return
        if response.status_code >= 400:
            log.warning(
                "seedance cancel refused (HTTP %s)", response.status_code, extra={"provider": NAME}
            )

    async def check(self) -> None:
        try:
            response = await self._call(
                "GET", "/contents/generations/tasks", params={"page_num": 1, "page_size": 1}
            )
        except ProviderError as exc:
            raise UnavailableError(f"seedance unreachable: {exc.message}") from exc
        if response.status_code in _AUTH_STATUSES:
            raise self._error(response, creating=False)
        if response.status_code >= 500:
            raise UnavailableError(f"seedance answered HTTP {response.status_code}")

    async def aclose(self) -> None:
        """The HTTP client is shared and owned by the app."""
