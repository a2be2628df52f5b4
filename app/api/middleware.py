"""ASGI middleware: request ids (and the last word on unhandled errors), the request-body
size limit, and the base URL derived from a request."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.errors import error_response
from app.logs import request_id_var
from app.urls import BaseUrlResolver, request_base_url

access_log = logging.getLogger("app.access")
error_log = logging.getLogger("app.api.errors")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
#: Room for a multipart form's boundaries and small fields next to its file.
FORM_OVERHEAD_BYTES = 64 * 1024


class RequestIdMiddleware:
    """Take a sane incoming ``X-Request-ID`` or make one; echo it and bind it to logs.

    Also writes the access log line: method, path and status — never the query string, which
    carries URL signatures. An exception no handler took becomes the 500 error body here, so
    that it carries ``X-Request-ID`` and its log line the request id.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SAFE_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)

        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            error_log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if status:  # the response had started: nothing more can be said to the client
                raise
            response = error_response(
                500, "internal_error", "internal error", retryable=True, path=scope["path"]
            )
            await response(scope, receive, send_with_id)
        finally:
            access_log.info(
                "%s %s %s %.0fms",
                scope["method"],
                scope["path"],
                status,
                (time.perf_counter() - started) * 1000,
            )
            request_id_var.reset(token)


class BodyLimitMiddleware:
    """Refuse bodies over the limit with 413, by Content-Length or while streaming.

    A body without Content-Length (chunked) is read up to the limit before the app sees it:
    an error raised while the framework reads the body would become its 400.

    The limit is ``max_bytes``, except for multipart uploads to ``upload_paths`` (an image for
    ``/v1/videos``, a CSV for ``/v1/batches``): those may carry a file of ``upload_bytes`` plus
    the form's other fields. The route checks the file's own size and says so.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        upload_bytes: int = 0,
        upload_paths: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.upload_bytes = upload_bytes
        self.upload_paths = upload_paths

    def _limit(self, scope: Scope, headers: dict[bytes, bytes]) -> int:
        content_type = headers.get(b"content-type", b"").lower()
        path: str = scope["path"]
        if content_type.startswith(b"multipart/form-data") and any(
            path == prefix or path.startswith(prefix + "/") for prefix in self.upload_paths
        ):
            return max(self.max_bytes, self.upload_bytes + FORM_OVERHEAD_BYTES)
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        limit = self._limit(scope, headers)
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await self._reject(scope, receive, send, limit)
            return
        if length is None and scope["method"] in ("POST", "PUT", "PATCH"):
            replay = await self._buffer(receive, limit)
            if replay is None:
                await self._reject(scope, receive, send, limit)
                return
            await self.app(scope, replay, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLargeError
            return message

        try:
            await self.app(scope, limited_receive, send)
        except _TooLargeError:
            await self._reject(scope, receive, send, limit)

    async def _buffer(self, receive: Receive, limit: int) -> Receive | None:
        """The whole body as one message (None when it is over the limit)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return _repeat(message)  # a disconnect: hand it on as it is
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay

    async def _reject(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = error_response(
            413,
            "payload_too_large",
            f"request body is larger than {limit} bytes",
            path=scope["path"],
        )
        await response(scope, receive, send)


class _TooLargeError(Exception):
    pass


def _repeat(message: Message) -> Receive:
    async def receive() -> Message:
        return message

    return receive


class BaseUrlMiddleware:
    """Without ``[server] public_base_url``: links in answers use the address the client
    reached (``Host``; ``X-Forwarded-*`` only from trusted proxies)."""

    def __init__(self, app: ASGIApp, *, resolver: BaseUrlResolver) -> None:
        self.app = app
        self.resolver = resolver

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        base = self.resolver.resolve(
            scheme=scope.get("scheme", "http"),
            headers=dict(scope["headers"]),
            client=client[0] if client else None,
        )
        token = request_base_url.set(base)
        try:
            await self.app(scope, receive, send)
        finally:
            request_base_url.reset(token)
