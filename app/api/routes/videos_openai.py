"""``/v1/videos``: the gateway in the shape of OpenAI's Videos API, for the ``openai`` SDK.

A thin translation onto :class:`app.tasks.service.TaskService` — one video is one task:

* ids: ``video_<hex>`` is the task ``vt_<hex>`` (same hex); both spellings are accepted.
* create: ``seconds`` → ``duration_ms``; ``size`` → ``aspect_ratio`` + ``resolution``; ``model``
  naming a provider (``seedance``, ``preview``, or ``provider/model``) picks it, any other name
  (``sora-2``, …) leaves the choice to the routing rules; ``input_reference`` (an uploaded
  image, or ``{"image_url": …}``) becomes ``image_url``.
* status: queued → queued, running → in_progress, succeeded → completed, failed and
  cancelled → failed.
* delete cancels a video that has not ended, then hides it (the record stays).
* content answers 302 to a signed URL of the file.

Errors come out in OpenAI's shape because ``app.api.errors`` renders everything under this
prefix that way; nothing here builds an error body.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse
from pydantic import ValidationError as PydanticValidationError
from starlette.datastructures import UploadFile

from app.api.deps import PrincipalDep, ProvidersDep, SettingsDep, TasksDep
from app.api.routes.tasks import IdempotencyKey
from app.api.schemas import (
    AUTH_ERRORS,
    OpenAIErrorBody,
    OpenAIVideo,
    OpenAIVideoCreate,
    OpenAIVideoDeleted,
    OpenAIVideoList,
    OpenAIVideoRemix,
    error_responses,
)
from app.errors import BadRequestError, NotFoundError, PayloadTooLargeError
from app.providers.base import ASPECT_RATIOS
from app.providers.registry import KNOWN_PROVIDERS, ProviderRegistry
from app.tasks.models import Task, TaskStatus
from app.tasks.service import TaskService

router = APIRouter(prefix="/v1/videos", tags=["openai videos"])

#: How long the SDK's ``poll()`` sleeps between retrieves of an unfinished video.
POLL_AFTER_MS = 1000

#: OpenAI's sizes; other ``WxH`` sizes map by their shape.
SIZES = {
    "720x1280": ("9:16", "720p"),
    "1280x720": ("16:9", "720p"),
    "1024x1792": ("9:16", "1080p"),
    "1792x1024": ("16:9", "1080p"),
}
DEFAULT_SIZE = "720x1280"
DEFAULT_SECONDS = 4
MAX_SECONDS = 60
_SIZE = re.compile(r"^(\d{2,5})x(\d{2,5})$")
_SHORT_SIDE = {"480p": 480, "720p": 720, "1080p": 1080}
_STATUS = {
    TaskStatus.QUEUED: "queued",
    TaskStatus.RUNNING: "in_progress",
    TaskStatus.SUCCEEDED: "completed",
    TaskStatus.FAILED: "failed",
    TaskStatus.CANCELLED: "failed",
}


def _errors(*statuses: int) -> dict[int | str, Any]:
    return error_responses(*AUTH_ERRORS, 422, *statuses, model=OpenAIErrorBody)


# -- ids ------------------------------------------------------------------------------------


def video_id(task_id: str) -> str:
    return "video_" + task_id.removeprefix("vt_")


def task_id_of(video: str) -> str:
    if video.startswith("video_"):
        return "vt_" + video.removeprefix("video_")
    return video  # a task id as such (vt_...), or an unknown id that will be a 404


# -- request translation -------------------------------------------------------------------


def _shape(size: str) -> tuple[str, str]:
    """(aspect_ratio, resolution) for an OpenAI ``size``: one of OpenAI's, or ``WxH``."""
    if size in SIZES:
        return SIZES[size]
    match = _SIZE.match(size)
    if match:
        width, height = int(match[1]), int(match[2])
        for ratio in ASPECT_RATIOS:
            w, h = (int(part) for part in ratio.split(":"))
            if abs(width / height - w / h) <= 0.02 * (w / h):
                short = min(width, height)
                resolution = "480p" if short <= 540 else "720p" if short <= 840 else "1080p"
                return ratio, resolution
    raise BadRequestError(
        f"size {size!r} is not supported: use {', '.join(SIZES)}, or WIDTHxHEIGHT in one of "
        f"the aspect ratios {', '.join(ASPECT_RATIOS)}",
        param="size",
    )


def _duration_ms(seconds: str) -> int:
    try:
        value = int(seconds.strip())
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_SECONDS:
        raise BadRequestError(
            f"seconds {seconds!r} is not supported: a whole number from 1 to {MAX_SECONDS} "
            "(OpenAI's are 4, 8 and 12)",
            param="seconds",
        )
    return value * 1000


def _provider_fields(model: str | None, providers: ProviderRegistry) -> dict[str, Any]:
    """``model`` naming a provider (or ``provider/model``) picks it; other names route."""
    if not model:
        return {}
    name, _, variant = model.partition("/")
    if name not in providers and name not in KNOWN_PROVIDERS:
        return {}  # sora-2 and friends: the routing rules choose
    fields: dict[str, Any] = {"provider": name}
    if variant:
        fields["options"] = {"model": variant}
    return fields


def task_body(create: OpenAIVideoCreate, providers: ProviderRegistry) -> dict[str, Any]:
    """The ``/v1/tasks`` body that does what ``create`` asks."""
    aspect_ratio, resolution = _shape(create.size or DEFAULT_SIZE)
    seconds = str(create.seconds) if create.seconds is not None else str(DEFAULT_SECONDS)
    body: dict[str, Any] = {
        "prompt": create.prompt,
        "aspect_ratio": aspect_ratio,
        "resolution": resolution,
        "duration_ms": _duration_ms(seconds),
        **_provider_fields(create.model, providers),
    }
    reference = create.input_reference
    if reference is not None:
        if reference.file_id:
            raise BadRequestError(
                "file ids are not supported here: upload the image as input_reference, "
                "or pass {'image_url': ...}",
                param="input_reference",
            )
        if not reference.image_url:
            raise BadRequestError("input_reference needs image_url", param="input_reference")
        if not reference.image_url.startswith(("http://", "https://", "data:image/")):
            raise BadRequestError(
                "input_reference.image_url must be an http(s) URL or a data:image/... URL",
                param="input_reference",
            )
        body["image_url"] = reference.image_url
    return body


async def _read_create(request: Request, max_upload: int) -> tuple[dict[str, Any], bytes | None]:
    """The create fields and the uploaded image, from a JSON body or a multipart form."""
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data") or content_type.startswith(
        "application/x-www-form-urlencoded"
    ):
        fields: dict[str, Any] = {}
        upload: bytes | None = None
        async with request.form(max_files=1, max_fields=20) as form:
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    if key != "input_reference":
                        raise BadRequestError(f"unexpected file field {key!r}", param=key)
                    if value.size is not None and value.size > max_upload:
                        raise PayloadTooLargeError(
                            f"input_reference is larger than {max_upload} bytes",
                            param="input_reference",
                        )
                    upload = await value.read()
                elif key.startswith("input_reference[") and key.endswith("]"):
                    # How the SDK sends {"image_url": ...} inside a form.
                    fields.setdefault("input_reference", {})[key[16:-1]] = value
                else:
                    fields[key] = value
        return fields, upload
    try:
        data = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise RequestValidationError(
            [{"type": "json_invalid", "loc": ("body",), "msg": "JSON decode error"}]
        ) from None
    if not isinstance(data, dict):
        raise RequestValidationError(
            [{"type": "model_type", "loc": ("body",), "msg": "the body must be a JSON object"}]
        )
    return data, None


def _validated(fields: dict[str, Any]) -> OpenAIVideoCreate:
    try:
        return OpenAIVideoCreate.model_validate(fields)
    except PydanticValidationError as exc:
        errors = [{**err, "loc": ("body", *err["loc"])} for err in exc.errors()]
        raise RequestValidationError(errors) from None


# -- response translation ------------------------------------------------------------------


def _size(task: Task) -> str:
    aspect_ratio = str(task.request.get("aspect_ratio", "16:9"))
    resolution = str(task.request.get("resolution") or "720p")
    for size, shape in SIZES.items():
        if shape == (aspect_ratio, resolution):
            return size
    w, h = (int(part) for part in aspect_ratio.split(":"))
    short = _SHORT_SIDE.get(resolution, 720)
    long = 2 * round(short * max(w, h) / min(w, h) / 2)
    return f"{long}x{short}" if w >= h else f"{short}x{long}"


def _model(task: Task) -> str:
    chosen = (task.request.get("options") or {}).get("model")
    provider = task.provider or ""
    return f"{provider}/{chosen}" if chosen and task.request.get("provider") else provider


def _error(task: Task) -> dict[str, str] | None:
    if task.status is TaskStatus.CANCELLED:
        return {"code": "cancelled", "message": "the video was cancelled"}
    if task.status is TaskStatus.FAILED:
        error = task.error or {}
        return {
            "code": str(error.get("code", "provider_error")),
            "message": str(error.get("message", "the video failed")),
        }
    return None


def present(task: Task) -> dict[str, Any]:
    """The OpenAI video object for ``task``."""
    ended = task.finished_at if task.status.is_terminal else None
    return {
        "id": video_id(task.id),
        "object": "video",
        "created_at": int(task.created_at.timestamp()),
        "completed_at": int(ended.timestamp()) if ended else None,
        "expires_at": None,  # the file stays; each download gets a freshly signed URL
        "status": _STATUS[task.status],
        "progress": 100 if task.status is TaskStatus.SUCCEEDED else task.progress,
        "model": _model(task),
        "prompt": task.prompt,
        "remixed_from_video_id": video_id(task.remixed_from) if task.remixed_from else None,
        "seconds": f"{int(task.request.get('duration_ms', 5000)) / 1000:g}",
        "size": _size(task),
        "error": _error(task),
    }


async def _task(tasks: TaskService, video: str, owner: str) -> Task:
    try:
        return await tasks.get(task_id_of(video), owner=owner)
    except NotFoundError:
        raise NotFoundError(f"no video {video!r}") from None


def _poll_hint(response: Response, task: Task) -> None:
    if not task.status.is_terminal:
        response.headers["openai-poll-after-ms"] = str(POLL_AFTER_MS)


# -- routes ---------------------------------------------------------------------------------

_CREATE_FIELDS: dict[str, Any] = {
    "prompt": {"type": "string", "minLength": 1, "maxLength": 2000},
    "model": {
        "type": "string",
        "description": "A provider (preview, seedance, ...), provider/model, or an OpenAI "
        "model name (sora-2: the routing rules choose).",
    },
    "seconds": {
        "type": "string",
        "description": "Whole seconds, 1-60 (OpenAI: 4, 8, 12).",
        "default": "4",
    },
    "size": {
        "type": "string",
        "description": "720x1280, 1280x720, 1024x1792, 1792x1024, or WIDTHxHEIGHT.",
        "default": DEFAULT_SIZE,
    },
}
_CREATE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["prompt"],
                    "properties": {
                        **_CREATE_FIELDS,
                        "input_reference": {
                            "type": "string",
                            "format": "binary",
                            "description": "An image: the first frame (image-to-video).",
                        },
                    },
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["prompt"],
                    "properties": {
                        **_CREATE_FIELDS,
                        "input_reference": {
                            "type": "object",
                            "properties": {"image_url": {"type": "string"}},
                        },
                    },
                }
            },
        },
    }
}


@router.post(
    "",
    response_model=OpenAIVideo,
    responses=_errors(400, 413, 502, 503),
    openapi_extra=_CREATE_BODY,
)
async def create_video(
    request: Request,
    principal: PrincipalDep,
    tasks: TasksDep,
    providers: ProvidersDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Create a video (JSON, or a multipart form with an input_reference image)."""
    fields, upload = await _read_create(request, settings.server.max_upload_bytes)
    if upload is not None and "input_reference" in fields:
        raise BadRequestError("send input_reference as a file or as image_url, not both")
    create = _validated(fields)
    body = task_body(create, providers)
    if upload is not None:
        if len(upload) > settings.server.max_upload_bytes:
            raise PayloadTooLargeError(
                f"input_reference is larger than {settings.server.max_upload_bytes} bytes",
                param="input_reference",
            )
        body["image_url"] = await tasks.store_reference_image(upload, param="input_reference")
    task, _ = await tasks.create(
        body,
        owner=principal.owner,
        idempotency_key=idempotency_key,
        explicit=set(body),
        principal=principal,
    )
    return present(task)


@router.get("", response_model=OpenAIVideoList, responses=_errors(404))
async def list_videos(
    principal: PrincipalDep,
    tasks: TasksDep,
    after: Annotated[str | None, Query(max_length=80, description="The last id seen.")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    order: Literal["asc", "desc"] = "desc",
) -> dict[str, Any]:
    """The caller's videos by creation time (newest first unless order=asc), in pages."""
    found, has_more = await tasks.page(
        owner=principal.owner,
        after=task_id_of(after) if after else None,
        limit=limit,
        ascending=order == "asc",
    )
    data = [present(task) for task in found]
    return {
        "object": "list",
        "data": data,
        "has_more": has_more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


@router.get("/{video}", response_model=OpenAIVideo, responses=_errors(404))
async def retrieve_video(
    video: str, principal: PrincipalDep, tasks: TasksDep, response: Response
) -> dict[str, Any]:
    """A video's status and progress (with an openai-poll-after-ms hint while unfinished)."""
    task = await _task(tasks, video, principal.owner)
    _poll_hint(response, task)
    return present(task)


@router.delete("/{video}", response_model=OpenAIVideoDeleted, responses=_errors(404))
async def delete_video(video: str, principal: PrincipalDep, tasks: TasksDep) -> dict[str, Any]:
    """Delete a video (an unfinished one is cancelled first, also at the provider)."""
    await _task(tasks, video, principal.owner)
    task = await tasks.delete(task_id_of(video), owner=principal.owner)
    return {"id": video_id(task.id), "object": "video.deleted", "deleted": True}


@router.get(
    "/{video}/content",
    status_code=status.HTTP_302_FOUND,
    response_class=RedirectResponse,
    responses={
        302: {"description": "Redirect to a signed URL of the file (MP4, or the thumbnail)."},
        **_errors(404, 409),
    },
)
async def download_video(
    video: str,
    principal: PrincipalDep,
    tasks: TasksDep,
    variant: Literal["video", "thumbnail", "spritesheet"] = "video",
) -> RedirectResponse:
    """Download the MP4 (or its thumbnail): a redirect to a signed URL."""
    task = await _task(tasks, video, principal.owner)
    url = await tasks.content_url(task, variant)
    return RedirectResponse(url, status_code=status.HTTP_302_FOUND)


@router.post("/{video}/remix", response_model=OpenAIVideo, responses=_errors(400, 404))
async def remix_video(
    video: str,
    body: OpenAIVideoRemix,
    principal: PrincipalDep,
    tasks: TasksDep,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """A new video with the same settings as this one and a new prompt."""
    await _task(tasks, video, principal.owner)
    task = await tasks.remix(
        task_id_of(video),
        owner=principal.owner,
        prompt=body.prompt,
        idempotency_key=idempotency_key,
        principal=principal,
    )
    return present(task)
