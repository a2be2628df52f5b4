"""The one place error bodies are rendered.

Every error — a domain ``AppError``, a request that fails validation, an unknown route, a body
that is too large — becomes a :class:`Problem` and is rendered in the shape of the API it was
addressed to, chosen by the request path:

* everywhere: ``{"error": {"code", "message", "retryable"}, "detail": ...}``
* under ``/v1/videos`` (the OpenAI-compatible facade): OpenAI's
  ``{"error": {"message", "type", "code", "param"}}``, plus an ``x-should-retry`` header, so
  the ``openai`` SDK raises its own exception classes and does not retry what cannot succeed.

The HTTP status is the same in both shapes; only the body differs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.errors import AppError

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}


@dataclass(kw_only=True)
class Problem:
    """An error on its way to the client, before it has a shape."""

    status: int
    code: str
    message: str
    retryable: bool = False
    detail: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    task_id: str | None = None
    param: str | None = None

    @classmethod
    def of(cls, exc: AppError, *, task_id: str | None = None) -> Problem:
        return cls(
            status=exc.status_code,
            code=exc.code,
            message=exc.message,
            retryable=exc.retryable,
            headers=dict(exc.headers),
            task_id=task_id,
            param=exc.param,
        )


def _native(problem: Problem) -> JSONResponse:
    body: dict[str, Any] = {
        "error": {"code": problem.code, "message": problem.message, "retryable": problem.retryable},
        "detail": problem.message if problem.detail is None else problem.detail,
    }
    if problem.task_id is not None:
        body["task_id"] = problem.task_id
    return JSONResponse(
        jsonable_encoder(body), status_code=problem.status, headers=problem.headers or None
    )


def openai_error_type(status: int) -> str:
    """OpenAI's ``error.type`` word for an HTTP status."""
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def _openai(problem: Problem) -> JSONResponse:
    body = {
        "error": {
            "message": problem.message,
            "type": openai_error_type(problem.status),
            "code": problem.code,
            "param": problem.param,
        }
    }
    # The SDK retries 409, 429 and 5xx unless told otherwise; say whether a retry can help.
    headers = {**problem.headers, "x-should-retry": "true" if problem.retryable else "false"}
    return JSONResponse(jsonable_encoder(body), status_code=problem.status, headers=headers)


#: Path prefix -> renderer; the first match wins, the native shape otherwise.
SHAPES: tuple[tuple[str, Callable[[Problem], JSONResponse]], ...] = (("/v1/videos", _openai),)


def render(problem: Problem, path: str = "") -> JSONResponse:
    for prefix, renderer in SHAPES:
        if path == prefix or path.startswith(prefix + "/"):
            return renderer(problem)
    return _native(problem)


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    retryable: bool = False,
    detail: Any = None,
    headers: dict[str, str] | None = None,
    task_id: str | None = None,
    path: str = "",
) -> JSONResponse:
    problem = Problem(
        status=status,
        code=code,
        message=message,
        retryable=retryable,
        detail=detail,
        headers=headers or {},
        task_id=task_id,
    )
    return render(problem, path)


def app_error_response(exc: AppError, *, task_id: str | None = None) -> JSONResponse:
    """The native error body for ``exc`` (for routes that answer a task's failure)."""
    return render(Problem.of(exc, task_id=task_id))


def _summarise(errors: list[Any]) -> str:
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def _first_param(errors: list[Any]) -> str | None:
    for err in errors:
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path", "header")]
        if loc:
            return ".".join(loc)
    return None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> JSONResponse:
        return render(Problem.of(exc), request.url.path)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {k: v for k, v in err.items() if k in ("type", "loc", "msg", "ctx")}
            for err in exc.errors()
        ]
        problem = Problem(
            status=422,
            code="validation_error",
            message=_summarise(errors),
            detail=errors,
            param=_first_param(errors),
        )
        return render(problem, request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        problem = Problem(
            status=exc.status_code,
            code=_HTTP_CODES.get(exc.status_code, "error"),
            message=str(exc.detail),
            headers=dict(getattr(exc, "headers", None) or {}),
        )
        return render(problem, request.url.path)

    # Unhandled exceptions become the 500 body in RequestIdMiddleware, which still knows the
    # request id (a handler here would run outside it).
