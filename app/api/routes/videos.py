"""``POST /generate-video``: the seed's synchronous endpoint, for Dify's HTTP Request node."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import PrincipalDep, SettingsDep, TasksDep
from app.api.errors import app_error_response
from app.api.routes.tasks import IdempotencyKey, task_fields
from app.api.schemas import AUTH_ERRORS, TaskAccepted, VideoCreate, VideoResult, error_responses
from app.errors import ConflictError, ValidationError
from app.tasks.models import TaskStatus, generated_duration_ms
from app.tasks.pipeline import stored_error
from app.tasks.service import caption_text
from app.urls import base_url

router = APIRouter(tags=["videos"])


@router.post(
    "/generate-video",
    response_model=VideoResult,
    responses={
        202: {"model": TaskAccepted, "description": "Still running: poll status_url"},
        **error_responses(*AUTH_ERRORS, 400, 409, 413, 422, 502, 503, 504),
    },
)
async def generate_video(
    body: VideoCreate,
    principal: PrincipalDep,
    tasks: TasksDep,
    settings: SettingsDep,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Generate a video and answer with its URL (202 with a status URL if it takes too long)."""
    if body.n > 1 or body.styles:
        raise ValidationError("variants (n, styles) are created with POST /v1/tasks")
    task, _ = await tasks.create(
        task_fields(body),
        owner=principal.owner,
        idempotency_key=idempotency_key,
        explicit=body.model_fields_set,
        principal=principal,
    )
    wait_s = settings.server.sync_wait_s if body.wait_s is None else body.wait_s
    task = await tasks.wait(task, wait_s)
    if task.status is TaskStatus.SUCCEEDED:
        video_url, expires_at = await tasks.signed_url(task)
        return {
            "video_url": video_url,
            "filename": task.filename,
            "task_id": task.id,
            "status": task.status.value,
            "provider": task.provider,
            "prompt": task.prompt,
            "expanded_prompt": task.expanded_prompt,
            # What was made, after presets and the provider's rounding; not what was asked.
            "duration_ms": generated_duration_ms(task),
            "aspect_ratio": task.request.get("aspect_ratio", body.aspect_ratio),
            "expires_at": expires_at,
            **await tasks.sidecar_urls(task),
            "caption": caption_text(task),
        }
    if task.status is TaskStatus.FAILED:
        return app_error_response(stored_error(task), task_id=task.id)
    if task.status is TaskStatus.CANCELLED:
        return app_error_response(ConflictError("the task was cancelled"), task_id=task.id)
    status_url = f"{base_url(settings.server.base_url())}/v1/tasks/{task.id}"
    accepted = TaskAccepted(
        task_id=task.id,
        status=task.status.value,
        status_url=status_url,
        message=(
            f"The video is still being generated (task {task.id}). Poll {status_url}?wait_s=25 "
            "with the same token, or use the asynchronous (polling) workflow."
        ),
    )
    return JSONResponse(accepted.model_dump(), status_code=202)
