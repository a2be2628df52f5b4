"""Request and response bodies of the HTTP API (docs/api.md describes them for users)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from app.prompts.storyboard import MAX_SHOTS
from app.prompts.variants import MAX_VARIANTS

MAX_REFERENCE_IMAGES = 9  # the most any provider takes (Seedance 2.0)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("prompt must not be blank")
    return value


def _check_image_url(value: str) -> None:
    # The scheme only; where the URL may lead is the URL guard's to decide when it is fetched.
    if not value.startswith(("http://", "https://", "data:image/")):
        raise ValueError("must be an http(s) URL or a data:image/... URL")


#: A user's prompt: 1–2000 characters, not only whitespace.
PromptText = Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_not_blank)]

AspectRatio = Literal["16:9", "9:16", "1:1", "4:3", "3:4", "21:9"]
TaskStatusWord = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class ShotCreate(BaseModel):
    """One shot of a long video."""

    model_config = ConfigDict(extra="forbid")

    prompt: PromptText = Field(description="What this shot shows (also its subtitle).")
    duration_ms: int | None = Field(
        None,
        ge=500,
        le=60_000,
        description="This shot's length (fitted to the provider's clip lengths); unset: an "
        "even share of duration_ms, else 5000.",
    )
    image_url: str | None = Field(
        None, max_length=10_000_000, description="This shot's first frame (image-to-video)."
    )

    @field_validator("image_url")
    @classmethod
    def _image_url(cls, value: str | None) -> str | None:
        if value is not None:
            _check_image_url(value)
        return value


class VideoCreate(BaseModel):
    """Body of ``POST /generate-video`` and ``POST /v1/tasks``."""

    model_config = ConfigDict(extra="forbid")

    prompt: PromptText = Field(description="The idea or the full prompt.")
    aspect_ratio: AspectRatio = "16:9"
    duration_ms: int = Field(
        5000,
        ge=500,
        le=600_000,
        description="Length; beyond the provider's longest clip the video is made of shots "
        "(up to [long] max_duration_ms, 120000 by default).",
    )
    fps: int = Field(24, ge=1, le=60)
    provider: str | None = Field(None, max_length=32)
    expand_prompt: bool | None = None
    style: str | None = Field(None, max_length=64)
    template: str | None = Field(None, max_length=64)
    platform: str | None = Field(None, max_length=64)
    negative_prompt: str | None = Field(None, max_length=2000)
    seed: int | None = Field(None, ge=-1, le=2**32 - 1)
    resolution: Literal["480p", "720p", "1080p"] | None = None
    image_url: str | None = Field(
        None, max_length=10_000_000, description="First frame (image-to-video)."
    )
    last_frame_url: str | None = Field(
        None,
        max_length=10_000_000,
        description="Last frame; needs image_url too (first+last frame).",
    )
    reference_images: list[Annotated[str, Field(max_length=10_000_000)]] | None = Field(
        None,
        min_length=1,
        max_length=MAX_REFERENCE_IMAGES,
        description="Images (URLs or data:image/ URLs) the video draws on — subjects, style — "
        "without fixing a frame; not with image_url. Seedance: 1-4 (1.0 lite) or 1-9 (2.0).",
    )
    generate_audio: bool | None = Field(
        None, description="A soundtrack made with the video (Seedance 1.5 pro and 2.0)."
    )
    return_last_frame: bool | None = Field(
        None, description="Keep the video's last frame as an image (the task's last_frame_url)."
    )
    draft: bool | None = Field(
        None, description="A cheap 480p draft first (Seedance 1.5 pro); render it with from_draft."
    )
    from_draft: str | None = Field(
        None,
        max_length=40,
        description="The id of a succeeded draft task of yours to render in full.",
    )
    callback_url: str | None = Field(
        None, max_length=2000, description="Gets a signed POST (Standard Webhooks) per event."
    )
    callback_events: list[Literal["succeeded", "failed", "cancelled", "progress"]] | None = Field(
        None,
        min_length=1,
        description="Events sent to callback_url (default: succeeded, failed, cancelled).",
    )
    cache: bool | None = Field(
        None, description="false: always make a new video (default: reuse an identical one)."
    )
    options: dict[str, Any] | None = Field(
        None,
        description="Provider-specific extras, e.g. Seedance camera_fixed, watermark, "
        'ratio "adaptive" (image-to-video).',
    )
    shots: list[ShotCreate] | None = Field(
        None,
        min_length=1,
        max_length=MAX_SHOTS,
        description="A long video, shot by shot (at most 20); joined into one video.",
    )
    continuity: Literal["chain", "independent"] | None = Field(
        None,
        description="Long videos: chain starts each shot from the previous shot's last frame "
        "(the default where the provider takes a first frame); independent makes them at once.",
    )
    transition: Literal["cut", "fade"] | None = Field(
        None, description="Long videos: hard cuts (default) or short crossfades between shots."
    )
    subtitles: bool | None = Field(
        None,
        description="A WebVTT file (subtitles_url): one cue per shot. Default: on for long "
        "videos, off otherwise (one cue with the prompt when asked).",
    )
    burn_subtitles: bool | None = Field(
        None, description="Long videos: draw the shots' subtitles into the picture."
    )
    caption: bool | None = Field(
        None, description="Write a caption with hashtags for the platform preset (caption)."
    )
    metadata: dict[str, Any] | None = None
    wait_s: float | None = Field(None, ge=0, le=3600, description="How long /generate-video waits.")
    n: int = Field(1, ge=1, le=MAX_VARIANTS, description="Variants of the idea (POST /v1/tasks).")
    styles: list[str] | None = Field(
        None,
        min_length=1,
        max_length=MAX_VARIANTS,
        description="Styles to cycle through the variants.",
    )

    @field_validator("image_url", "last_frame_url")
    @classmethod
    def _image_url(cls, value: str | None) -> str | None:
        if value is not None:
            _check_image_url(value)
        return value

    @field_validator("reference_images")
    @classmethod
    def _reference_images(cls, value: list[str] | None) -> list[str] | None:
        for url in value or []:
            _check_image_url(url)
        return value

    @field_validator("callback_url")
    @classmethod
    def _callback_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value

    @model_validator(mode="after")
    def _events_need_a_url(self) -> VideoCreate:
        if self.callback_events and not self.callback_url:
            raise ValueError("callback_events needs callback_url")
        return self

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        import json

        if value is not None and len(json.dumps(value)) > 16_384:
            raise ValueError("metadata must be at most 16 KiB of JSON")
        return value


class TaskError(BaseModel):
    code: str
    message: str
    retryable: bool


class ShotPublic(BaseModel):
    """One shot of a long video: its own task (``GET /v1/tasks/{task_id}``)."""

    index: int
    task_id: str | None = Field(description="Unset until the shot's task is created.")
    prompt: str
    duration_ms: int
    status: TaskStatusWord
    progress: int
    video_url: str | None
    error: TaskError | None = None


class TaskPublic(BaseModel):
    id: str
    status: TaskStatusWord
    stage: str | None
    progress: int
    progress_estimated: bool = Field(
        False, description="progress is estimated from the provider's recent durations"
    )
    eta_s: float | None = Field(None, description="Estimated seconds left, where known.")
    queue_position: int | None = Field(None, description="While queued: 1 = next in line.")
    provider: str | None
    provider_task_id: str | None
    provider_status: str | None
    prompt: str
    expanded_prompt: str | None
    expanded_by: str | None
    params: dict[str, Any]
    route_reason: str | None
    warnings: list[str]
    video_url: str | None
    last_frame_url: str | None = None
    filename: str | None
    expires_at: dt.datetime | None
    error: TaskError | None
    metadata: dict[str, Any]
    group_id: str | None
    cached_from: str | None = None
    remixed_from: str | None = None
    created_at: dt.datetime
    updated_at: dt.datetime
    finished_at: dt.datetime | None = None
    thumbnail_url: str | None = Field(None, description="A poster frame of the video (JPEG).")
    subtitles_url: str | None = Field(None, description="WebVTT subtitles, one cue per shot.")
    caption: str | None = Field(
        None, description="With caption: true, a caption and its hashtags, ready to post."
    )
    hashtags: list[str] = Field(default_factory=list, description="The caption's hashtags.")
    shots: list[ShotPublic] | None = Field(
        None, description="A long video's shots, in order (null for a single-clip video)."
    )
    parent_id: str | None = Field(None, description="A shot's task: its long video's id.")
    shot_index: int | None = None
    request: dict[str, Any] = Field(
        default_factory=dict,
        description="The request as stored (after platform presets); data: URLs are shortened "
        "to their header followed by an ellipsis.",
    )
    owner: str | None = Field(
        None,
        description="Whose task it is (the tenant's name): set in an admin's reads with "
        "`?owner=`, null otherwise.",
    )


class TaskList(BaseModel):
    data: list[TaskPublic]
    has_more: bool = Field(False, description="More tasks follow: pass `next_before` as `before`.")
    next_before: str | None = Field(None, description="The cursor for the next page (a task id).")


class TaskGroup(BaseModel):
    """``POST /v1/tasks`` with ``n`` > 1: the variants, one task each, under one group id."""

    group_id: str
    data: list[TaskPublic]


class TaskAccepted(BaseModel):
    """``/generate-video`` answered before the video was ready (HTTP 202)."""

    task_id: str
    status: TaskStatusWord
    status_url: str
    message: str


class VideoResult(BaseModel):
    """``/generate-video`` succeeded (HTTP 200): the seed's fields plus the task's."""

    video_url: str
    filename: str
    task_id: str
    status: Literal["succeeded"]
    provider: str
    prompt: str
    expanded_prompt: str | None
    duration_ms: int
    aspect_ratio: str
    expires_at: dt.datetime
    thumbnail_url: str | None = None
    subtitles_url: str | None = None
    caption: str | None = None


class ErrorBody(BaseModel):
    error: TaskError
    detail: Any
    task_id: str | None = None


class TokenLimitsFields(BaseModel):
    """A token's own limits; unset: the ``[limits]`` default; 0: off for this token."""

    requests_per_s: float | None = Field(None, ge=0, le=100_000)
    burst: int | None = Field(None, ge=0, le=1_000_000)
    max_active_tasks: int | None = Field(None, ge=0, le=1_000_000)
    tasks_per_day: int | None = Field(None, ge=0, le=100_000_000)


class TokenCreate(TokenLimitsFields):
    """Body of ``POST /v1/admin/tokens``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    admin: bool = False
    providers: list[str] | None = Field(None, min_length=1, max_length=32)


class TokenUpdate(TokenLimitsFields):
    """Body of ``PATCH /v1/admin/tokens/{name}``: only the fields sent change (``null``: back
    to the ``[limits]`` default; ``providers: null``: every provider)."""

    model_config = ConfigDict(extra="forbid")

    admin: bool | None = None
    providers: list[str] | None = Field(None, min_length=1, max_length=32)


class TokenRotate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grace_s: float = Field(0, ge=0, le=30 * 86400, description="How long the old token works.")


class TokenUsage(BaseModel):
    active_tasks: int
    tasks_today: int


class TokenPublic(BaseModel):
    name: str
    tenant_id: str
    hint: str
    admin: bool
    status: Literal["active", "revoked"]
    requests_per_s: float | None
    burst: int | None
    max_active_tasks: int | None
    tasks_per_day: int | None
    providers: list[str] | None
    created_at: dt.datetime
    rotated_at: dt.datetime | None
    previous_valid_until: dt.datetime | None
    revoked_at: dt.datetime | None
    last_used_at: dt.datetime | None
    usage: TokenUsage | None = None


class TokenIssued(TokenPublic):
    """A new token: ``token`` is shown here once and never again."""

    token: str


class TokenList(BaseModel):
    data: list[TokenPublic]


def error_responses(*statuses: int, model: type[BaseModel] = ErrorBody) -> dict[int | str, Any]:
    """OpenAPI ``responses`` entries: each status answers with the error body ``model``."""
    return {status: {"model": model, "description": _ERROR_TEXT[status]} for status in statuses}


_ERROR_TEXT = {
    400: "Bad request (content_rejected, bad_request)",
    401: "Missing or non-Bearer Authorization header",
    403: "Unknown token",
    404: "Not found (also another token's resource)",
    409: "Conflict",
    413: "Body or uploaded file too large",
    422: "Validation error",
    429: "Rate limited or over quota",
    502: "Provider error",
    503: "Store or storage unavailable",
    504: "Provider timeout",
}

#: What every route behind the bearer token can answer besides its own errors.
AUTH_ERRORS = (401, 403, 429)


class OpenAIError(BaseModel):
    message: str
    type: str = Field(
        description="invalid_request_error, authentication_error, permission_error, "
        "rate_limit_error or server_error."
    )
    code: str = Field(description="The gateway's error code (not_found, validation_error, ...).")
    param: str | None = Field(description="The request field at fault, if any.")


class OpenAIErrorBody(BaseModel):
    """Errors of ``/v1/videos``, in OpenAI's shape."""

    error: OpenAIError


class OpenAIVideoError(BaseModel):
    code: str
    message: str


class OpenAIVideo(BaseModel):
    """A video in the shape of OpenAI's Videos API (one gateway task)."""

    id: str = Field(description="video_<hex>; the task id is vt_<hex> with the same hex.")
    object: Literal["video"] = "video"
    created_at: int
    completed_at: int | None
    expires_at: int | None
    status: Literal["queued", "in_progress", "completed", "failed"]
    progress: int
    model: str = Field(description="The provider (provider/model when a model was chosen).")
    prompt: str
    remixed_from_video_id: str | None
    seconds: str
    size: str
    error: OpenAIVideoError | None


class OpenAIVideoList(BaseModel):
    object: Literal["list"] = "list"
    data: list[OpenAIVideo]
    has_more: bool
    first_id: str | None
    last_id: str | None


class OpenAIVideoDeleted(BaseModel):
    id: str
    object: Literal["video.deleted"] = "video.deleted"
    deleted: bool


class OpenAIImageReference(BaseModel):
    model_config = ConfigDict(extra="forbid")

    image_url: str | None = Field(None, max_length=10_000_000)
    file_id: str | None = Field(None, max_length=200)


class OpenAIVideoCreate(BaseModel):
    """Body of ``POST /v1/videos`` (JSON; the same fields as a multipart form)."""

    model_config = ConfigDict(extra="forbid")

    prompt: PromptText
    model: str | None = Field(None, max_length=100)
    seconds: Annotated[str, Field(max_length=8)] | int | None = Field(
        None, description="Whole seconds, as text or a number."
    )
    size: str | None = Field(None, max_length=16)
    input_reference: OpenAIImageReference | None = None


class OpenAIVideoRemix(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: PromptText


class BatchCounts(BaseModel):
    """A batch's rows by outcome (a row not started yet counts as queued)."""

    total: int
    queued: int
    running: int
    succeeded: int
    failed: int
    cancelled: int


class BatchPublic(BaseModel):
    """A CSV batch: one task per row."""

    id: str
    object: Literal["batch"] = "batch"
    status: Literal["running", "completed", "cancelled"]
    filename: str | None
    columns: list[str] = Field(description="The CSV's columns, as the rows are read.")
    concurrency: int = Field(description="How many of its tasks run at a time.")
    counts: BatchCounts
    results_url: str = Field(description="GET it for the results sheet (CSV, UTF-8 with BOM).")
    created_at: dt.datetime
    finished_at: dt.datetime | None


class BatchList(BaseModel):
    data: list[BatchPublic]
