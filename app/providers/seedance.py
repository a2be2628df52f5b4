"""Doubao Seedance on Volcengine Ark (content-generation tasks).

Protocol (Ark's content-generation API): ``POST {base}/contents/generations/tasks`` with
``model`` and a ``content`` list (text, then ``image_url`` items with roles ``first_frame`` /
``last_frame``) → ``{"id": "cgt-…"}``; ``GET …/tasks/{id}`` until ``succeeded``
(``content.video_url``, a signed URL valid 24 h); ``DELETE …/tasks/{id}`` cancels a queued task.
Output parameters go in JSON fields, never as ``--flags`` in the text.

Parameter mapping (also stored in the task's ``params`` by :meth:`SeedanceProvider.plan`):

* A model per mode (``[seedance] model_t2v``, ``model_i2v``, ``model_first_last``,
  ``model_reference``). What each known model family takes (modes, reference image count,
  audio, drafts, durations) is in :data:`FAMILIES`; a request a known model cannot serve is
  refused with a 422 naming the field before anything is paid. A model id the table does not
  know is sent as configured and Ark's own answer decides.
* ``duration_ms`` → ``duration`` in whole seconds: the nearest value in ``[seedance] durations``
  (default 2…12) that the model takes, halves rounded up, so 5000 → 5, 7500 → 8, 30000 → 12.
* ``aspect_ratio`` → ``ratio`` (``options.ratio = "adaptive"``: from the image, or for 1.5 pro
  and 2.0 from the prompt; not with reference images); ``resolution`` from the request, else
  ``[seedance] resolution``, else the model's default.
* ``image_url`` → first frame; ``last_frame_url`` (needs ``image_url``) → last frame;
  ``reference_images`` (1–4 on 1.0 lite i2v, 1–9 on 2.0; not with frames) → ``reference_image``
  items.
* ``generate_audio`` (1.5 pro, 2.0), ``return_last_frame`` (the last frame, a PNG, comes back as
  ``content.last_frame_url`` and is stored beside the video).
* ``draft`` (1.5 pro): a 480p draft, cheap; a later request ``from_draft`` renders that draft in
  full (content ``draft_task``: Ark reuses the draft's prompt, images, seed, ratio, duration).
* ``options.service_tier = "flex"`` (offline, half price, slower; not for drafts) and
  ``options.execution_expires_after`` (3600–259200 s) for batches that can wait.
* ``options.camera_fixed`` / ``options.watermark`` override ``[seedance]`` defaults.
* ``options.model`` overrides the configured model for the request's mode (an Ark model id).
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
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
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
from app.providers.planning import (
    FIRST_FRAME,
    FIRST_LAST_FRAME,
    FROM_DRAFT,
    REFERENCE_IMAGES,
    TEXT_TO_VIDEO,
    check_aspect_ratio,
    check_choice,
    check_frames,
    duration_params,
    input_mode,
)
from app.providers.polling import PollPolicy

if TYPE_CHECKING:
    from app.config import SeedanceSettings, Settings
    from app.providers.registry import ProviderDeps

log = logging.getLogger(__name__)

NAME = "seedance"
RESOLUTIONS = ("480p", "720p", "1080p")
SEED_MIN, SEED_MAX = -1, 2**32 - 1
SERVICE_TIERS = ("default", "flex")
EXPIRES_MIN_S, EXPIRES_MAX_S = 3600, 259200
MAX_REFERENCE_IMAGES = 9  # the most any model takes (2.0)
DRAFT_RESOLUTION = "480p"


@dataclass(frozen=True, kw_only=True)
class ModelFamily:
    """What a Seedance model family takes, per Ark's model table."""

    modes: frozenset[str]
    reference_images: int = 0
    audio: bool = False
    draft: bool = False
    min_s: int = 2
    max_s: int = 12
    adaptive_text: bool = False  # ratio "adaptive" without an image (chosen from the prompt)
    reference_1080p: bool = True


_T2V, _I2V, _FL = TEXT_TO_VIDEO, FIRST_FRAME, FIRST_LAST_FRAME
#: By model id fragment (China ids carry ``doubao-``, BytePlus ids none or ``dreamina-``);
#: the first fragment found in the id wins.
FAMILIES: tuple[tuple[str, ModelFamily], ...] = (
    ("seedance-1-0-lite-t2v", ModelFamily(modes=frozenset({_T2V}))),
    (
        "seedance-1-0-lite-i2v",
        ModelFamily(
            modes=frozenset({_I2V, _FL, REFERENCE_IMAGES}),
            reference_images=4,
            reference_1080p=False,
        ),
    ),
    ("seedance-1-0-pro-fast", ModelFamily(modes=frozenset({_T2V, _I2V}))),
    ("seedance-1-0-pro", ModelFamily(modes=frozenset({_T2V, _I2V, _FL}))),
    (
        "seedance-1-5-pro",
        ModelFamily(
            modes=frozenset({_T2V, _I2V, _FL, FROM_DRAFT}),
            audio=True,
            draft=True,
            min_s=4,
            adaptive_text=True,
        ),
    ),
    (
        "seedance-2-0",
        ModelFamily(
            modes=frozenset({_T2V, _I2V, _FL, REFERENCE_IMAGES}),
            reference_images=9,
            audio=True,
            min_s=4,
            max_s=15,
            adaptive_text=True,
        ),
    ),
)


def model_family(model: str) -> ModelFamily | None:
    """The family of a model id, or None for an id this gateway does not know."""
    for fragment, family in FAMILIES:
        if fragment in model:
            return family
    return None


MODE_KEYS = {
    TEXT_TO_VIDEO: "model_t2v",
    FIRST_FRAME: "model_i2v",
    FIRST_LAST_FRAME: "model_first_last",
    REFERENCE_IMAGES: "model_reference",
}

_STATES: dict[str, JobState] = {
    "queued": JobState.QUEUED,
    "running": JobState.RUNNING,
    "succeeded": JobState.SUCCEEDED,
    "failed": JobState.FAILED,
    "cancelled": JobState.CANCELLED,
    "expired": JobState.FAILED,
}
_AUTH_STATUSES = (401, 403)


def still_going(word: object) -> bool:
    """Whether Ark's status word (a callback's, say) names a job that has not ended: queued or
    running. An unknown word, or none, is not taken for one."""
    state = _STATES.get(word) if isinstance(word, str) else None
    return state is not None and not state.is_terminal


# Ark's list API: page_size is at most 500; how far back find_job reads, and the clock skew
# allowed between our submit time and Ark's created_at.
LIST_PAGE_SIZE = 100
LIST_MAX_PAGE_SIZE = 500
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
        downloads: httpx.AsyncClient | None = None,
    ) -> None:
        self._http = http
        self._downloads = downloads or http
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
            reference_images=self._reference_limit(settings.model_reference),
            negative_prompt=False,
            max_prompt_chars=500,  # Ark advises at most 500 characters
            # Ark queues jobs over the account's running limit itself; a cap here is opt-in
            # and counted across replicas (in the database).
            max_concurrency=settings.max_running,
            shared_limit=True,
            aspect_ratios=frozenset(ASPECT_RATIOS),
            find_window_s=settings.adopt_window_s,
            clips=ClipLimits.only(s * 1000 for s in settings.durations),
        )
        # One list read answers for up to poll_batch jobs; with callbacks, polling is only the
        # backstop for a callback that never came.
        self.poll_policy = PollPolicy(
            interval_s=settings.callback_poll_interval_s
            if self._callback_base
            else settings.poll_interval_s,
            batch=settings.poll_batch,
            max_rps=settings.poll_qps,
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
        return cls(
            http=deps.http,
            settings=seedance,
            callback_base_url=callback_base,
            downloads=deps.downloads,
        )

    # -- planning ---------------------------------------------------------------------------

    @staticmethod
    def _reference_limit(model: str) -> int:
        family = model_family(model)
        return family.reference_images if family is not None else MAX_REFERENCE_IMAGES

    def _model_for(self, mode: str) -> tuple[str, str]:
        """The model serving ``mode`` and the config key that named it."""
        key = MODE_KEYS[mode]
        if mode == FIRST_LAST_FRAME and self._settings.model_first_last is None:
            key = "model_i2v"
        return str(getattr(self._settings, key)), key

    def plan(self, request: GenerationRequest) -> dict[str, Any]:
        opts = request.options
        check_frames(request, NAME)
        check_aspect_ratio(request, NAME)
        mode = input_mode(request)
        # A draft's full render uses the model of the draft's own mode (its inputs are copied).
        base_mode = input_mode(
            GenerationRequest(
                task_id=request.task_id,
                prompt=request.prompt,
                image_url=request.image_url,
                last_frame_url=request.last_frame_url,
                reference_images=request.reference_images,
            )
        )
        model, model_key = self._model_for(base_mode)
        if opts.get("model"):
            model, model_key = str(opts["model"]), "options.model"
        family = model_family(model)
        where = f"[seedance] {model_key} = {model}"
        if family is not None and mode not in family.modes and base_mode not in family.modes:
            raise ValidationError(f"seedance: {where} cannot make {mode.replace('_', ' ')} videos")
        if family is not None and mode == FROM_DRAFT and not family.draft:
            raise ValidationError(f"seedance: {where} has no drafts (from_draft)")

        refs = len(request.reference_images)
        limit = family.reference_images if family is not None else MAX_REFERENCE_IMAGES
        if refs > limit:
            raise ValidationError(
                f"seedance: reference_images holds {refs} images; {where} takes at most {limit}"
            )

        ratio = str(opts.get("ratio") or request.aspect_ratio)
        check_choice(NAME, "ratio", ratio, (*ASPECT_RATIOS, "adaptive"))
        if ratio == "adaptive":
            if mode == REFERENCE_IMAGES:
                raise ValidationError(
                    "seedance: ratio 'adaptive' does not work with reference_images"
                )
            if not request.image_url and not (family is None or family.adaptive_text):
                raise ValidationError("seedance: ratio 'adaptive' needs an input image")

        resolution = request.resolution or self._settings.resolution
        if resolution is not None:
            check_choice(NAME, "resolution", resolution, RESOLUTIONS)
        if request.draft:
            if family is not None and not family.draft:
                raise ValidationError(f"seedance: {where} has no drafts (draft)")
            if request.resolution not in (None, DRAFT_RESOLUTION):  # [seedance] resolution
                raise ValidationError(  # does not apply to drafts
                    f"seedance: a draft renders at 480p only, not {request.resolution}"
                )
            if request.return_last_frame:
                raise ValidationError("seedance: a draft cannot return_last_frame")
            resolution = DRAFT_RESOLUTION
        if (
            mode == REFERENCE_IMAGES
            and resolution == "1080p"
            and family is not None
            and not family.reference_1080p
        ):
            raise ValidationError(f"seedance: {where} makes reference_images videos up to 720p")
        if request.seed is not None and not SEED_MIN <= request.seed <= SEED_MAX:
            raise ValidationError(f"seedance: seed must be within {SEED_MIN}..{SEED_MAX}")

        audio = request.generate_audio
        if audio is None:
            audio = self._settings.generate_audio
        if audio and family is not None and not family.audio:
            raise ValidationError(f"seedance: {where} makes silent videos (generate_audio)")

        camera_fixed = opts.get("camera_fixed", self._settings.camera_fixed)
        if mode == REFERENCE_IMAGES and camera_fixed is not None:
            if "camera_fixed" in opts:
                raise ValidationError("seedance: camera_fixed does not work with reference_images")
            camera_fixed = None  # the configured default does not apply to this mode

        tier = opts.get("service_tier", self._settings.service_tier)
        if tier is not None:
            check_choice(NAME, "options.service_tier", tier, SERVICE_TIERS)
        if tier == "flex" and request.draft:
            raise ValidationError("seedance: a draft cannot use service_tier 'flex'")
        expires = opts.get("execution_expires_after")
        if expires is not None and (
            isinstance(expires, bool)
            or not isinstance(expires, int)
            or not EXPIRES_MIN_S <= expires <= EXPIRES_MAX_S
        ):
            raise ValidationError(
                "seedance: options.execution_expires_after must be whole seconds within "
                f"{EXPIRES_MIN_S}..{EXPIRES_MAX_S}"
            )

        allowed = list(self._settings.durations)
        if family is not None:
            fits = [d for d in allowed if family.min_s <= d <= family.max_s]
            allowed = fits or allowed  # the operator's own list when it fits nothing
        duration_s = nearest_duration(request.duration_ms, allowed)
        seed = request.seed if request.seed is not None else task_seed(request.task_id)
        params: dict[str, Any] = {
            "model": model,
            "mode": mode,
            "ratio": ratio,
            "resolution": resolution,
            **duration_params(duration_s, rule="nearest of [seedance] durations, halves up"),
            "seed": seed,
            "seed_rule": "the request's"
            if request.seed is not None
            else "derived from the task id",
            "camera_fixed": None if camera_fixed is None else bool(camera_fixed),
            "watermark": bool(opts.get("watermark", self._settings.watermark)),
            "generate_audio": audio if audio is not None else bool(family and family.audio),
            "return_last_frame": request.return_last_frame,
            "service_tier": tier,
        }
        if refs:
            params["reference_images"] = refs
        if request.draft:
            params["draft"] = True
        if mode == FROM_DRAFT:
            params["draft_job_id"] = request.draft_job_id
            params["note"] = "Ark renders the draft's own prompt, images, seed, ratio and duration"
        if expires is not None:
            params["execution_expires_after"] = expires
        if family is None:
            params["model_limits"] = "model not in the gateway's table: Ark checks the request"
        return params

    @staticmethod
    def _image(url: str, role: str) -> dict[str, Any]:
        return {"type": "image_url", "image_url": {"url": url}, "role": role}

    def _create_body(self, request: GenerationRequest, params: dict[str, Any]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": params["model"]}
        if params["mode"] == FROM_DRAFT:
            # Ark reuses the draft's inputs; content is the draft alone.
            body["content"] = [{"type": "draft_task", "draft_task": {"id": request.draft_job_id}}]
        else:
            content: list[dict[str, Any]] = [{"type": "text", "text": request.prompt}]
            if request.image_url:
                content.append(self._image(request.image_url, "first_frame"))
            if request.last_frame_url:
                content.append(self._image(request.last_frame_url, "last_frame"))
            content += [self._image(url, "reference_image") for url in request.reference_images]
            body["content"] = content
            body["ratio"] = params["ratio"]
            body["duration"] = params["duration_s"]
            body["seed"] = params["seed"]
            if params["camera_fixed"] is not None:
                body["camera_fixed"] = params["camera_fixed"]
            audio = request.generate_audio
            if audio is None:
                audio = self._settings.generate_audio
            family = model_family(params["model"])
            if audio is not None and (family is None or family.audio):
                body["generate_audio"] = audio
            if params.get("draft"):
                body["draft"] = True
        body["watermark"] = params["watermark"]
        if params["resolution"] is not None:
            body["resolution"] = params["resolution"]
        if params["return_last_frame"]:
            body["return_last_frame"] = True
        if params["service_tier"] is not None:
            body["service_tier"] = params["service_tier"]
        if params.get("execution_expires_after") is not None:
            body["execution_expires_after"] = params["execution_expires_after"]
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
        status = self._status(data)
        if status is None:
            raise self._garbage(response, "succeeded task without video_url in")
        return status

    async def _list(self, params: Any) -> list[Any]:
        """The items of one page of Ark's task list (``GET …/contents/generations/tasks``)."""
        response = await self._call("GET", "/contents/generations/tasks", params=params)
        if response.status_code >= 400:
            raise self._error(response, creating=False)
        data = _json(response)
        items = data.get("items") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise self._garbage(response, "list")
        return items

    async def poll_many(self, provider_task_ids: Sequence[str]) -> dict[str, JobStatus]:
        """Many jobs in one read of Ark's task list (``filter.task_ids`` repeated, as Ark's
        docs give it). Jobs the list leaves out (older than its 7 days, another service tier)
        are missing from the answer; the poller then reads them one by one."""
        ids = list(dict.fromkeys(provider_task_ids))[:LIST_MAX_PAGE_SIZE]
        params: list[tuple[str, str | int]] = [("page_num", 1), ("page_size", len(ids))]
        params += [("filter.task_ids", job_id) for job_id in ids]
        items = await self._list(params)
        wanted = set(ids)
        found: dict[str, JobStatus] = {}
        for item in items:
            if not isinstance(item, dict) or item.get("id") not in wanted:
                continue
            if not isinstance(item.get("status"), str):
                continue
            status = self._status(item)
            if status is not None:  # a success without its URL: read that job alone
                found[item["id"]] = status
        return found

    def _status(self, data: dict[str, Any]) -> JobStatus | None:
        """A task object as a JobStatus (None: succeeded, but without its video URL)."""
        word = data["status"]
        state = _STATES.get(word, JobState.RUNNING)  # unknown words: still in progress
        video_url: str | None = None
        last_frame_url: str | None = None
        error: AppError | None = None
        if state is JobState.SUCCEEDED:
            content = data.get("content")
            content = content if isinstance(content, dict) else {}
            video_url = content.get("video_url")
            if not isinstance(video_url, str) or not video_url:
                return None
            frame = content.get("last_frame_url")  # asked for with return_last_frame
            last_frame_url = frame if isinstance(frame, str) and frame else None
        elif state is JobState.FAILED:
            error = self._task_error(word, data.get("error"))
        return JobStatus(
            state=state,
            provider_status=word,
            video_url=video_url,
            last_frame_url=last_frame_url,
            error=error,
        )

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
        return open_url_stream(self._downloads, status.video_url, provider=NAME)

    def open_last_frame(
        self, provider_task_id: str, status: JobStatus
    ) -> AbstractAsyncContextManager[VideoStream]:
        """The last frame Ark returned (a PNG, signed URL valid 24 h)."""
        if not status.last_frame_url:
            raise ProviderError(
                f"seedance: task {provider_task_id} has no last frame", provider=NAME
            )
        return open_url_stream(self._downloads, status.last_frame_url, provider=NAME)

    async def find_job(
        self,
        request: GenerationRequest,
        *,
        since: dt.datetime,
        is_known: Callable[[str], Awaitable[bool]],
    ) -> str | None:
        """Read Ark's recent jobs; adopt the one that matches this request beyond doubt."""
        params = self.plan(request)
        want: dict[str, Any] = {"model": params["model"]}
        if params["mode"] != FROM_DRAFT:  # a draft's render reports the draft's own values
            want.update(seed=params["seed"], duration=params["duration_s"])
            if params["ratio"] != "adaptive":  # Ark reports the ratio it chose
                want["ratio"] = params["ratio"]
        earliest = since.timestamp() - FIND_SKEW_S
        candidates: list[str] = []
        for page in range(1, LIST_MAX_PAGES + 1):
            items = await self._list({"page_num": page, "page_size": LIST_PAGE_SIZE})
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
