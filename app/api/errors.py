"""The one place error bodies are rendered: ``{"error": {...}, "detail": ...}``."""

from __future__ import annotations

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


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    retryable: bool = False,
    detail: Any = None,
    headers: dict[str, str] | None = None,
    task_id: str | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "error": {"code": code, "message": message, "retryable": retryable},
        "detail": message if detail is None else detail,
    }
    if task_id is not None:
        body["task_id"] = task_id
    return JSONResponse(jsonable_encoder(body), status_code=status, headers=headers)


def app_error_response(exc: AppError, *, task_id: str | None = None) -> JSONResponse:
    return error_response(
        exc.status_code,
        exc.code,
        exc.message,
        retryable=exc.retryable,
        headers=exc.headers or None,
        task_id=task_id,
    )


def _summarise(errors: list[Any]) -> str:
    parts = []
    for err in errors[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
        parts.append(f"{loc}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> JSONResponse:
        return app_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {k: v for k, v in err.items() if k in ("type", "loc", "msg", "ctx")}
            for err in exc.errors()
        ]
        return error_response(422, "validation_error", _summarise(errors), detail=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        return error_response(
            exc.status_code, code, str(exc.detail), headers=getattr(exc, "headers", None)
        )

    # Unhandled exceptions become the 500 body in RequestIdMiddleware, which still knows the
    # request id (a handler here would run outside it).
