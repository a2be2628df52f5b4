"""Worker errors. Each knows its HTTP status, code and whether a retry can help; one handler in
``app.py`` renders them as ``{"error": {"code", "message", "retryable"}, "detail": message}``.

    WorkerError
    ├── ValidationFailedError   422 validation_error (detail is FastAPI's list)
    ├── UnauthorizedError       401 unauthorized
    ├── ForbiddenError          403 forbidden
    ├── NotFoundError           404 not_found
    ├── ConflictError           409 conflict
    ├── QueueFullError          429 rate_limited (Retry-After)
    └── UnavailableError        503 unavailable (model still loading, or setup failed)

    GenerationError             a job failed; its message is stored on the task, the worker goes on
    ├── MemoryExhaustedError    out of GPU (or host) memory for these parameters
    └── JobCancelledError       raised from the step callback to stop a cancelled job

    SetupError                  the model could not be loaded; /health reports setup_failed + reason
"""

from __future__ import annotations

from typing import Any


class WorkerError(Exception):
    status_code = 500
    code = "internal_error"
    retryable = False

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}

    def detail(self) -> Any:
        return self.message


class ValidationFailedError(WorkerError):
    status_code = 422
    code = "validation_error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.reason = message

    def detail(self) -> Any:
        loc = ["body", self.field] if self.field else ["body"]
        return [{"type": "value_error", "loc": loc, "msg": self.reason}]


class UnauthorizedError(WorkerError):
    status_code = 401
    code = "unauthorized"

    def __init__(self, message: str) -> None:
        super().__init__(message, headers={"WWW-Authenticate": "Bearer"})


class ForbiddenError(WorkerError):
    status_code = 403
    code = "forbidden"


class NotFoundError(WorkerError):
    status_code = 404
    code = "not_found"


class ConflictError(WorkerError):
    status_code = 409
    code = "conflict"


class QueueFullError(WorkerError):
    status_code = 429
    code = "rate_limited"
    retryable = True

    def __init__(self, message: str, *, retry_after_s: int) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})
        self.retry_after_s = retry_after_s


class UnavailableError(WorkerError):
    status_code = 503
    code = "unavailable"

    def __init__(self, message: str, *, retryable: bool, retry_after_s: int | None = None) -> None:
        headers = {"Retry-After": str(retry_after_s)} if retry_after_s else None
        super().__init__(message, headers=headers)
        self.retryable = retryable


class GenerationError(Exception):
    """A generation failed; ``str(exc)`` is what the task's ``error`` field shows."""


class MemoryExhaustedError(GenerationError):
    pass


class JobCancelledError(GenerationError):
    pass


class SetupError(Exception):
    """The model could not be loaded; ``str(exc)`` is the reason /health reports."""
