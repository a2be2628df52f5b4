"""What every provider's ``plan()`` checks the same way, and how the effective parameters read.

Each adapter's ``plan(request)`` validates a request against what its API accepts and returns
the parameters it will really send (stored in the task's ``params``). The checks and words that
are the same everywhere live here, so a request refused by one provider reads like a request
refused by another:

* :func:`input_mode` — text-to-video, first frame, first+last frame, reference images, or the
  full render of a draft;
* :func:`check_frames` / :func:`check_choice` — a last frame needs a first frame; a value must be
  one of the provider's;
* :func:`duration_params` — the rounded duration and the rule that rounded it;
* :func:`refuse_or_ignore` — the newer request fields (reference images, drafts, audio, the
  last frame image) on a provider that cannot honour them: refused with a 422 that names the
  field when ignoring it would make a different video than asked for (reference images, a
  draft), ignored with a note in ``params["ignored"]`` when the video is still the one asked for
  (no soundtrack, no last-frame image).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from app.errors import ValidationError
from app.providers.base import ASPECT_RATIOS, GenerationRequest

TEXT_TO_VIDEO = "text_to_video"
FIRST_FRAME = "first_frame"
FIRST_LAST_FRAME = "first_last_frame"
REFERENCE_IMAGES = "reference_images"
FROM_DRAFT = "from_draft"
FPS = 24


def input_mode(request: GenerationRequest) -> str:
    """Which kind of generation ``request`` asks for (the key of a model per mode)."""
    if request.draft_job_id:
        return FROM_DRAFT
    if request.reference_images:
        return REFERENCE_IMAGES
    if request.image_url and request.last_frame_url:
        return FIRST_LAST_FRAME
    if request.image_url:
        return FIRST_FRAME
    return TEXT_TO_VIDEO


def check_frames(request: GenerationRequest, provider: str) -> None:
    """A last frame needs a first frame; frames and reference images do not mix."""
    if request.last_frame_url and not request.image_url:
        raise ValidationError(f"{provider}: last_frame_url needs image_url (the first frame)")
    if request.reference_images and (request.image_url or request.last_frame_url):
        raise ValidationError(
            f"{provider}: reference_images cannot be combined with image_url / last_frame_url "
            "(a video starts from given frames or draws on reference images, not both)"
        )


def check_choice(provider: str, field: str, value: Any, allowed: Collection[Any]) -> None:
    if value not in allowed:
        choices = ", ".join(str(a) for a in allowed)
        raise ValidationError(f"{provider}: {field} must be one of {choices}, not {value!r}")


def check_aspect_ratio(request: GenerationRequest, provider: str) -> None:
    check_choice(provider, "aspect_ratio", request.aspect_ratio, ASPECT_RATIOS)


def duration_params(seconds: int, *, rule: str, fps: int = FPS) -> dict[str, Any]:
    return {"duration_s": seconds, "duration_ms": seconds * 1000, "duration_rule": rule, "fps": fps}


def refuse_or_ignore(request: GenerationRequest, provider: str) -> list[str]:
    """For a provider with no reference images, drafts, audio or last-frame images: refuse
    what would change the video, and return notes for what is ignored."""
    if request.reference_images:
        raise ValidationError(f"{provider} cannot take reference_images")
    if request.draft or request.draft_job_id:
        field = "draft" if request.draft else "from_draft"
        raise ValidationError(f"{provider} has no draft renders ({field})")
    ignored: list[str] = []
    if request.generate_audio:
        ignored.append(f"generate_audio: {provider} makes silent videos")
    if request.return_last_frame:
        ignored.append(f"return_last_frame: {provider} does not return a last-frame image")
    return ignored
