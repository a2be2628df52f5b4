"""Request and response bodies of the HTTP API (see DESIGN.md, "HTTP API")."""

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


class VideoCreate(BaseModel):
    """Body of ``POST /generate-video`` and ``POST /v1/tasks``."""

    model_config = ConfigDict(extra="forbid")

    prompt: PromptText = Field(description="The idea or the full prompt.")
    aspect_ratio: AspectRatio = "16:9"
    duration_ms: int = Field(5000, ge=500, le=60_000)
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
    options: dict[str, Any] | None = Field(
        None,
        description="Provider-specific extras, e.g. Seedance camera_fixed, watermark, "
        'ratio "adaptive" (image-to-video).',
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


class TaskPublic(BaseModel):
    id: str
    status: TaskStatusWord
    stage: str | None
    progress: int
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
    created_at: dt.datetime
    updated_at: dt.datetime
    finished_at: dt.datetime | None = None
    request: dict[str, Any] = Field(
        default_factory=dict,
        description="The request as stored (after platform presets); data: URLs are shortened "
        "to their header followed by an ellipsis.",
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


class ErrorBody(BaseModel):
    error: TaskError
    detail: Any
    task_id: str | None = None
