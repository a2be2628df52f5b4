"""Request and response bodies of the worker API (see worker/README.md)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from worker.engine import ModelProfile
from worker.errors import ValidationFailedError
from worker.jobs import GenerationInput, TaskStatus, TaskView

TASK_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"
MAX_SEED = 2**63 - 1
DEFAULT_STEPS = 50  # what CogVideoX was tuned for
DEFAULT_GUIDANCE = 6.0

Size = Annotated[int, Field(ge=16, le=2048, multiple_of=16)]


class GenerateCreate(BaseModel):
    """``POST /api/v1/generate``; unset (or null) fields take the model's defaults."""

    # Unknown keys are ignored: the seed's clients send extra fields (content_id, metadata).
    model_config = ConfigDict(extra="ignore")

    prompt: str = Field(min_length=1, max_length=2000)
    # Optional fields accept null (clients send explicit nulls for "not set").
    negative_prompt: str | None = Field(default=None, max_length=2000)
    num_frames: int | None = Field(default=None, ge=1, le=161)
    width: Size | None = None
    height: Size | None = None
    num_inference_steps: int | None = Field(default=None, ge=1, le=100)
    guidance_scale: float | None = Field(default=None, ge=0.0, le=30.0)
    seed: int | None = Field(default=None, ge=0, le=MAX_SEED)
    fps: int | None = Field(default=None, ge=1, le=60)
    image_url: str | None = Field(default=None, min_length=1)
    task_id: str | None = Field(default=None, pattern=TASK_ID_PATTERN)

    @field_validator("prompt")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("prompt must not be blank")
        return value

    def fingerprint(self, image: bytes | None) -> str:
        """A digest of the request as sent (not of defaults or a drawn seed), for idempotency."""
        fields = self.model_dump(exclude={"task_id"})
        fields["image_sha256"] = hashlib.sha256(image).hexdigest() if image is not None else None
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()

    def check_against(self, profile: ModelProfile, *, has_image: bool) -> None:
        """The model-dependent rules; raises ``ValidationFailedError`` (422) naming the field."""
        if profile.image_to_video and not has_image:
            raise ValidationFailedError(
                f"{profile.family} is an image-to-video model: send image_url or upload an image",
                field="image_url",
            )
        if not profile.image_to_video and has_image:
            raise ValidationFailedError(
                f"{profile.family} is a text-to-video model and takes no image", field="image_url"
            )
        frames = self.num_frames if self.num_frames is not None else profile.num_frames
        step = profile.frame_multiple
        if frames < step + 1 or (frames - 1) % step or frames > profile.max_frames:
            raise ValidationFailedError(
                f"num_frames must be {step}N+1 between {step + 1} and {profile.max_frames} "
                f"for {profile.family} (got {frames})",
                field="num_frames",
            )
        if profile.fixed_size:
            for name, value, fixed in (
                ("width", self.width, profile.width),
                ("height", self.height, profile.height),
            ):
                if value is not None and value != fixed:
                    size = f"{profile.width}x{profile.height}"
                    raise ValidationFailedError(
                        f"{profile.family} generates only {size} (got {name} {value})", field=name
                    )

    def to_input(self, profile: ModelProfile, *, image: bytes | None, seed: int) -> GenerationInput:
        return GenerationInput(
            prompt=self.prompt,
            negative_prompt=self.negative_prompt or "",
            num_frames=self.num_frames if self.num_frames is not None else profile.num_frames,
            width=self.width if self.width is not None else profile.width,
            height=self.height if self.height is not None else profile.height,
            num_inference_steps=self.num_inference_steps or DEFAULT_STEPS,
            guidance_scale=self.guidance_scale
            if self.guidance_scale is not None
            else DEFAULT_GUIDANCE,
            seed=seed,
            fps=self.fps if self.fps is not None else profile.fps,
            image=image,
        )


class TaskPublic(BaseModel):
    task_id: str
    status: TaskStatus
    progress: int
    video_url: str | None
    error: str | None
    seed: int
    num_frames: int
    width: int
    height: int
    fps: int
    queue_position: int | None
    cancel_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    expires_at: datetime | None

    @classmethod
    def from_view(cls, view: TaskView, *, video_url: str | None) -> TaskPublic:
        return cls(
            task_id=view.task_id,
            status=view.status,
            progress=view.progress,
            video_url=video_url if view.status is TaskStatus.COMPLETED else None,
            error=view.error,
            seed=view.seed,
            num_frames=view.num_frames,
            width=view.width,
            height=view.height,
            fps=view.fps,
            queue_position=view.queue_position,
            cancel_requested=view.cancel_requested,
            created_at=_ts(view.created_at),
            started_at=_ts(view.started_at),
            finished_at=_ts(view.finished_at),
            expires_at=_ts(view.expires_at),
        )


class TaskList(BaseModel):
    """``GET /api/v1/status?ids=a,b,…``: the tasks the worker knows, in the order asked."""

    data: list[TaskPublic]


class SubmitPublic(BaseModel):
    task_id: str
    status: TaskStatus
    status_url: str
    created: bool  # False when a client-chosen task_id repeated an earlier submit


class HealthPublic(BaseModel):
    status: Literal["starting", "ready", "busy", "setup_failed"]
    queue_length: int
    running: int
    max_queue: int
    model: str
    device: str
    dtype: str | None
    fps: int | None
    error: str | None = None
    model_info: dict[str, Any] | None = None


def _ts(value: float | None) -> Any:
    return datetime.fromtimestamp(value, tz=UTC) if value is not None else None
