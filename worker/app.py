"""The worker's HTTP API: ``create_app(settings)`` builds it; nothing happens at import time.

Handlers validate, enqueue and answer; the runner thread (``worker.jobs``) does the work. Errors
are ``worker.errors.WorkerError`` subclasses rendered by one handler.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, Query, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from worker import __version__
from worker.config import WorkerSettings
from worker.errors import (
    ForbiddenError,
    NotFoundError,
    UnauthorizedError,
    ValidationFailedError,
    WorkerError,
)
from worker.images import check_image, fetch_image
from worker.netguard import UrlPolicy, guarded_client
from worker.runtime import Loader, Runtime
from worker.schemas import (
    MAX_SEED,
    GenerateCreate,
    HealthPublic,
    SubmitPublic,
    TaskList,
    TaskPublic,
)

log = logging.getLogger("worker.app")

_GENERATE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": GenerateCreate.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "description": "The JSON fields as form fields, plus the image as `image`.",
                    "properties": {"image": {"type": "string", "format": "binary"}},
                }
            },
        },
    }
}


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


def require_token(request: Request) -> None:
    """Bearer auth when the worker has a token: missing → 401, wrong → 403."""
    expected: str | None = request.app.state.runtime.settings.token
    if expected is None:
        return
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise UnauthorizedError("missing bearer token")
    if not hmac.compare_digest(credentials.strip().encode(), expected.encode()):
        raise ForbiddenError("invalid token")


api = APIRouter(prefix="/api/v1", dependencies=[Depends(require_token)])


async def _read_generate(request: Request) -> tuple[GenerateCreate, bytes | None]:
    """The body as JSON, or as multipart form fields with an uploaded ``image``."""
    content_type = request.headers.get("content-type", "")
    upload: bytes | None = None
    payload: Any
    if content_type.startswith("multipart/form-data"):
        max_bytes = request.app.state.runtime.settings.max_image_bytes
        form = await request.form(max_files=1, max_fields=32)
        payload = {}
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key != "image":
                    raise ValidationFailedError(
                        f"unexpected file field {key!r}; send the image as 'image'", field=key
                    )
                upload = await value.read(max_bytes + 1)
                if len(upload) > max_bytes:
                    raise ValidationFailedError(
                        f"the image is larger than {max_bytes} bytes", field="image"
                    )
            else:
                payload[key] = value
    else:
        try:
            payload = await request.json()
        except ValueError as exc:
            raise RequestValidationError(
                [
                    {
                        "type": "json_invalid",
                        "loc": ("body",),
                        "msg": f"invalid JSON: {exc}",
                        "input": None,
                    }
                ]
            ) from exc
    try:
        body = GenerateCreate.model_validate(payload)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False)
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in errors]) from exc
    if upload is not None and body.image_url is not None:
        raise ValidationFailedError(
            "send either image_url or an uploaded image, not both", field="image"
        )
    return body, upload


@api.post("/generate", status_code=status.HTTP_202_ACCEPTED, openapi_extra=_GENERATE_BODY)
async def generate(request: Request, runtime: RuntimeDep) -> SubmitPublic:
    """Queue a generation; a client-chosen task_id makes the call idempotent."""
    profile = runtime.ready_profile()
    body, upload = await _read_generate(request)
    has_image = upload is not None or body.image_url is not None
    body.check_against(profile, has_image=has_image)
    fingerprint = body.fingerprint(upload)
    view = runtime.queue.lookup(body.task_id, fingerprint)
    created = False
    if view is None:
        image = upload
        if body.image_url is not None:
            image = await fetch_image(
                request.app.state.http, body.image_url, max_bytes=runtime.settings.max_image_bytes
            )
        if image is not None:
            await asyncio.to_thread(
                check_image, image, field="image" if upload is not None else "image_url"
            )
        seed = body.seed if body.seed is not None else secrets.randbelow(MAX_SEED)
        params = body.to_input(profile, image=image, seed=seed)
        view, created = runtime.queue.submit(params, fingerprint=fingerprint, task_id=body.task_id)
    return SubmitPublic(
        task_id=view.task_id,
        status=view.status,
        status_url=str(request.url_for("get_status", task_id=view.task_id)),
        created=created,
    )


def _public(request: Request, runtime: Runtime, task_id: str) -> TaskPublic:
    view = runtime.queue.get(task_id)
    return TaskPublic.from_view(
        view, video_url=str(request.url_for("download_video", task_id=task_id))
    )


@api.get("/status/{task_id}")
async def get_status(task_id: str, request: Request, runtime: RuntimeDep) -> TaskPublic:
    """A task's status, progress (0–100) and, once completed, its video URL."""
    return _public(request, runtime, task_id)


#: Task ids one status read may ask about (the gateway asks about all its jobs here at once).
MAX_STATUS_IDS = 500


@api.get("/status")
async def get_statuses(
    request: Request,
    runtime: RuntimeDep,
    ids: Annotated[str, Query(max_length=64 * MAX_STATUS_IDS, description="Comma-separated.")],
) -> TaskList:
    """Many tasks' statuses in one read; ids the worker does not know are left out."""
    wanted = list(dict.fromkeys(part.strip() for part in ids.split(",") if part.strip()))
    if len(wanted) > MAX_STATUS_IDS:
        raise ValidationFailedError(f"at most {MAX_STATUS_IDS} ids per read", field="ids")
    found = []
    for task_id in wanted:
        try:
            found.append(_public(request, runtime, task_id))
        except NotFoundError:
            continue
    return TaskList(data=found)


@api.get("/videos/{task_id}.mp4", response_class=FileResponse)
async def download_video(task_id: str, runtime: RuntimeDep) -> FileResponse:
    """The finished MP4 (H.264, +faststart)."""
    path: Path = runtime.queue.video_path(task_id)
    if not await asyncio.to_thread(path.is_file):
        raise NotFoundError(f"the video of task {task_id} has been deleted")
    return FileResponse(path, media_type="video/mp4", filename=f"{task_id}.mp4")


@api.delete("/tasks/{task_id}")
async def cancel_task(task_id: str, request: Request, runtime: RuntimeDep) -> TaskPublic:
    """Cancel: a queued task at once, a running one after its current step."""
    runtime.queue.cancel(task_id)
    return _public(request, runtime, task_id)


async def health(runtime: RuntimeDep) -> HealthPublic:
    """Setup state and load, for the gateway's least-busy choice (no auth)."""
    state = runtime.health()
    stats = runtime.queue.stats()
    profile = state.profile
    return HealthPublic(
        status=state.status,
        queue_length=stats.queue_length,
        running=stats.running,
        max_queue=stats.max_queue,
        model=profile.name if profile is not None else runtime.settings.model_path,
        device=state.device,
        dtype=state.dtype,
        fps=profile.fps if profile is not None else None,
        error=state.error,
        model_info=profile.describe() if profile is not None else None,
    )


def _error_body(
    status_code: int, code: str, message: str, retryable: bool, detail: Any
) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "retryable": retryable}, "detail": detail}


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(WorkerError)
    async def _worker_error(request: Request, exc: WorkerError) -> JSONResponse:
        body = _error_body(exc.status_code, exc.code, exc.message, exc.retryable, exc.detail())
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = jsonable_encoder(exc.errors())
        message = "; ".join(
            f"{'.'.join(str(part) for part in e.get('loc', ())[1:]) or 'body'}: {e.get('msg')}"
            for e in errors
        )
        return JSONResponse(
            _error_body(422, "validation_error", message, False, errors), status_code=422
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        body = _error_body(exc.status_code, code, str(exc.detail), False, str(exc.detail))
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


def create_app(settings: WorkerSettings, *, loader: Loader | None = None) -> FastAPI:
    """Build the worker app; ``loader`` replaces the diffusers model loader (tests)."""
    if loader is None:
        from worker.engine import load_engine

        loader = load_engine
    runtime = Runtime(settings, loader=loader)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime.start()
        timeout = httpx.Timeout(settings.image_fetch_timeout_s, connect=5.0)
        policy = UrlPolicy.from_allowlist(settings.private_url_allowlist)
        async with guarded_client(policy, timeout=timeout) as client:
            app.state.http = client
            try:
                yield
            finally:
                await asyncio.to_thread(runtime.stop)

    app = FastAPI(title="CogVideoX worker", version=__version__, lifespan=lifespan)
    app.state.runtime = runtime
    app.include_router(api)
    app.add_api_route("/health", health, methods=["GET"], response_model_exclude_none=False)
    _install_error_handlers(app)
    return app
