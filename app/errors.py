"""Domain errors. Each one knows its HTTP status, its code and whether a retry may help.

One registered handler (``app.api.errors``) renders every ``AppError`` as::

    {"error": {"code": ..., "message": ..., "retryable": ...}, "detail": "<message>"}

The tree::

    AppError
    ├── BadRequestError             400 bad_request
    │   └── ContentRejectedError    400 content_rejected   (moderation, sensitive words)
    ├── UnauthorizedError           401 unauthorized       (missing / non-Bearer header)
    ├── ForbiddenError              403 forbidden          (unknown token)
    ├── NotFoundError               404 not_found          (also another token's task)
    ├── ConflictError               409 conflict           (idempotency key reused, other body)
    ├── PayloadTooLargeError        413 payload_too_large
    ├── ValidationError             422 validation_error
    │   └── InvalidUrlError         422 invalid_url        (a URL that may not be fetched)
    ├── RateLimitedError            429 rate_limited       (the token's request rate)
    │   └── QuotaExceededError      429 quota_exceeded     (active tasks / tasks per day)
    ├── ProviderError               502 provider_error     (retryable unless provider says no)
    │   ├── ProviderAuthError       502 provider_auth      (operator credentials; names provider)
    │   ├── ProviderOutcomeUnknownError 502 provider_outcome_unknown (a create's answer was
    │   │                                 lost: the job may exist; never re-sent or fallen back)
    │   └── ProviderTimeoutError    504 provider_timeout
    ├── UnavailableError            503 unavailable        (store / storage down)
    └── MediaError                  500 media_error        (ffmpeg could not process a video)

Provider adapters raise these (``raise ... from exc``) so that the pipeline and the HTTP
layer never see a vendor exception.
"""

from __future__ import annotations

from typing import Any, ClassVar


class AppError(Exception):
    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    default_retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        retryable: bool | None = None,
        headers: dict[str, str] | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = self.default_retryable if retryable is None else retryable
        self.headers = headers or {}
        # The request field at fault, when there is one (shown by the OpenAI-shaped errors).
        self.param = param

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "retryable": self.retryable}


class BadRequestError(AppError):
    status_code = 400
    code = "bad_request"


class ContentRejectedError(BadRequestError):
    code = "content_rejected"


class UnauthorizedError(AppError):
    status_code = 401
    code = "unauthorized"


class ForbiddenError(AppError):
    status_code = 403
    code = "forbidden"


class NotFoundError(AppError):
    status_code = 404
    code = "not_found"


class ConflictError(AppError):
    status_code = 409
    code = "conflict"


class PayloadTooLargeError(AppError):
    status_code = 413
    code = "payload_too_large"


class ValidationError(AppError):
    status_code = 422
    code = "validation_error"


class InvalidUrlError(ValidationError):
    """A caller's URL points where the gateway may not go (loopback, private, link-local …)."""

    code = "invalid_url"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class RateLimitedError(AppError):
    status_code = 429
    code = "rate_limited"
    default_retryable = True


class QuotaExceededError(RateLimitedError):
    code = "quota_exceeded"


class ProviderError(AppError):
    """The provider failed. ``retryable`` tells the retry loop and the fallback chain what to do."""

    status_code = 502
    code = "provider_error"
    default_retryable = True

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        retryable: bool | None = None,
        retry_after_s: float | None = None,
        headers: dict[str, str] | None = None,
        open_circuit: bool = False,
    ) -> None:
        super().__init__(message, retryable=retryable, headers=headers)
        self.provider = provider
        self.retry_after_s = retry_after_s
        # The provider refused service for a while (a relay's risk control, an account
        # blocked): its circuit opens at once instead of after several failures.
        self.open_circuit = open_circuit


class ProviderAuthError(ProviderError):
    code = "provider_auth"
    default_retryable = False


class ProviderOutcomeUnknownError(ProviderError):
    """A create was sent but its answer was lost (read timeout, dropped connection, garbled
    answer): the provider may have made — and charged for — the job. Never re-sent, never
    fallen back from; the pipeline reconciles where the provider lets it find the job."""

    code = "provider_outcome_unknown"
    default_retryable = False


class ProviderTimeoutError(ProviderError):
    status_code = 504
    code = "provider_timeout"


class UnavailableError(AppError):
    status_code = 503
    code = "unavailable"
    default_retryable = True


class MediaError(AppError):
    """ffmpeg could not read, join or render a video (``app.media``). Retryable after a timeout."""

    status_code = 500
    code = "media_error"


_BY_CODE: dict[str, type[AppError]] = {
    cls.code: cls
    for cls in (
        BadRequestError,
        ContentRejectedError,
        UnauthorizedError,
        ForbiddenError,
        NotFoundError,
        ConflictError,
        PayloadTooLargeError,
        ValidationError,
        InvalidUrlError,
        RateLimitedError,
        QuotaExceededError,
        ProviderError,
        ProviderAuthError,
        ProviderOutcomeUnknownError,
        ProviderTimeoutError,
        UnavailableError,
        MediaError,
    )
}


def error_from_dict(data: dict[str, Any]) -> AppError:
    """Rebuild a stored task error (``{code, message, retryable}``) as the matching AppError."""
    cls = _BY_CODE.get(str(data.get("code")), ProviderError)
    return cls(str(data.get("message", "")), retryable=bool(data.get("retryable", False)))
