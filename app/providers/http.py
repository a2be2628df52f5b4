"""Outbound calls to providers: bounded retries with exponential backoff and full jitter.

:func:`send` retries transport errors and 408/429/5xx answers (and whatever ``retry_if`` adds,
e.g. a vendor's "too busy" code in an HTTP-200 body). It honours ``Retry-After`` (seconds or an
HTTP date) and stops at once on ``x-should-retry: false``. When the attempts run out it returns
the last response, so the adapter can translate the vendor's error body; a transport failure
after the last attempt becomes ``ProviderError(retryable=True)`` (``ProviderTimeoutError`` is
reserved for the task deadline). A request is rebuilt for every attempt because signed requests
carry the time (Volcengine V4).

A *create* (``creates=True``: a call that starts a paid job) is re-sent only when the provider
surely did not take it: the connection was never made, or it answered with an error status (an
answer that came back is not a job that was created). After a read timeout, a dropped
connection or any other failure once the request may have arrived, the outcome is unknown:
:class:`~app.errors.ProviderOutcomeUnknownError` at once, no retry.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx

from app.errors import ProviderError, ProviderOutcomeUnknownError
from app.providers.netbackend import asyncio_transport

log = logging.getLogger(__name__)

RETRY_STATUSES: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})
#: How long an idle connection to a provider is kept. It must stay under the 5 s after which
#: uvicorn, Node.js and many gateways close idle connections. A create sent on a connection
#: the server is closing at that moment loses its answer, and the job may exist: the task
#: then waits to be reconciled. httpx's own default is the same 5 s, hence the race.
KEEPALIVE_S = 4.0


def provider_client(verify: ssl.SSLContext) -> httpx.AsyncClient:
    """The client for providers' APIs: a few connections kept, none past ``KEEPALIVE_S``, on
    asyncio's own transports (:mod:`app.providers.netbackend`)."""
    limits = httpx.Limits(
        max_connections=200, max_keepalive_connections=20, keepalive_expiry=KEEPALIVE_S
    )
    return httpx.AsyncClient(
        timeout=httpx.Timeout(30.0, connect=10.0),
        transport=asyncio_transport(verify=verify, limits=limits),
        follow_redirects=True,
    )


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """``attempts`` counts the first try. Sleep before retry n (0-based) is
    ``uniform(0, min(max_backoff_s, base_s * 2**n))`` or the server's ``Retry-After``."""

    attempts: int = 4
    base_s: float = 0.5
    max_backoff_s: float = 8.0
    # A Retry-After longer than this is not waited for here; the error carries it instead.
    max_retry_after_s: float = 30.0
    statuses: frozenset[int] = RETRY_STATUSES
    # "connect": only errors where the request surely never reached the server (safe for
    # non-idempotent, expensive calls such as the relay's blocking generation).
    transport: str = "all"
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def backoff(self, retry_number: int) -> float:
        return self.rng.uniform(0.0, min(self.max_backoff_s, self.base_s * 2**retry_number))


Sleep = Callable[[float], Awaitable[None]]


def retry_after_s(response: httpx.Response, *, now: dt.datetime | None = None) -> float | None:
    """``Retry-After`` as seconds (delta or HTTP date); ``None`` when absent or unparsable."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())


def should_retry_header(response: httpx.Response) -> bool | None:
    value = response.headers.get("x-should-retry")
    if value is None:
        return None
    return bool(value.strip().lower() == "true")


def never_connected(exc: httpx.TransportError) -> bool:
    """The request surely never reached the server (safe to re-send anything)."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def _transport_retryable(exc: httpx.TransportError, policy: RetryPolicy) -> bool:
    return policy.transport == "all" or never_connected(exc)


def describe_transport_error(exc: httpx.TransportError) -> str:
    kind = "timed out" if isinstance(exc, httpx.TimeoutException) else "connection failed"
    return f"{kind} ({type(exc).__name__})"


async def send(
    http: httpx.AsyncClient,
    build: Callable[[], httpx.Request],
    *,
    provider: str,
    policy: RetryPolicy,
    retry_if: Callable[[httpx.Response], bool] | None = None,
    sleep: Sleep = asyncio.sleep,
    creates: bool = False,
) -> httpx.Response:
    """Send ``build()`` with retries; return the final (read) response.

    Raises ``ProviderError(retryable=True)`` when every attempt failed at the transport level
    without reaching the provider, and ``ProviderOutcomeUnknownError`` when a create may have
    reached it but its answer was lost.
    """
    attempt = 0
    while True:
        request = build()
        try:
            response = await http.send(request)
        except httpx.TransportError as exc:
            if creates and not never_connected(exc):
                raise ProviderOutcomeUnknownError(
                    f"{provider}: the answer to {request.method} {request.url.path} was lost "
                    f"({describe_transport_error(exc)}); the job may exist at the provider",
                    provider=provider,
                ) from exc
            retryable = _transport_retryable(exc, policy)
            if not retryable or attempt + 1 >= policy.attempts:
                raise ProviderError(
                    f"{provider}: {request.method} {request.url.path} "
                    f"{describe_transport_error(exc)} after {attempt + 1} attempt(s)",
                    provider=provider,
                    retryable=True,
                ) from exc
            delay = policy.backoff(attempt)
            log.info(
                "provider call failed, retrying",
                extra={"provider": provider, "error": type(exc).__name__, "delay_s": delay},
            )
            await sleep(delay)
            attempt += 1
            continue

        retry = response.status_code in policy.statuses or bool(retry_if and retry_if(response))
        if not retry or should_retry_header(response) is False:
            return response
        if attempt + 1 >= policy.attempts:
            return response
        wait = retry_after_s(response)
        if wait is not None and wait > policy.max_retry_after_s:
            return response
        delay = wait if wait is not None else policy.backoff(attempt)
        log.info(
            "provider answered %s, retrying",
            response.status_code,
            extra={"provider": provider, "delay_s": delay},
        )
        await sleep(delay)
        attempt += 1
