"""Stream a provider's result URL with bounded memory and a verified size.

``open_url_stream`` yields a :class:`UrlStream` (``.size`` from ``Content-Length`` and async
iteration of chunks of at most ``chunk_size`` bytes); the body is never held whole. A body that
ends early, a transport error mid-way, or a byte count that differs from ``Content-Length``
raises ``ProviderError(retryable=True)`` so the pipeline retries the download. An expired or
forbidden URL (4xx) is not retryable.

Result URLs are fetched with a client of their own (:func:`download_client`) that keeps no
connection: each URL is read once, mostly from a CDN host that no API call shares. Kept
connections would only slow every other request down. httpcore's pool looks at each of its
connections when a request starts or ends, and asks the kernel whether each idle one was closed.
With a hundred videos published at once, the downloads then started one after another over
0.3 s, where they now start within 0.03 s (``bench/concurrency.py``).
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator, Mapping

import httpx

from app.errors import ProviderError
from app.providers.http import describe_transport_error
from app.providers.netbackend import asyncio_transport

CHUNK_SIZE = 1024 * 1024
DOWNLOAD_TIMEOUT = httpx.Timeout(connect=10.0, read=60.0, write=30.0, pool=30.0)
#: Downloads at once per process (more wait for a connection, within ``pool`` seconds).
MAX_DOWNLOADS = 500


def download_client(verify: ssl.SSLContext) -> httpx.AsyncClient:
    """The client for result URLs: redirects followed, no connection kept after its GET."""
    limits = httpx.Limits(max_connections=MAX_DOWNLOADS, max_keepalive_connections=0)
    return httpx.AsyncClient(
        timeout=DOWNLOAD_TIMEOUT,
        transport=asyncio_transport(verify=verify, limits=limits),
        follow_redirects=True,
    )


class UrlStream:
    """One GET's body. Iterate once."""

    def __init__(self, response: httpx.Response, *, provider: str, chunk_size: int) -> None:
        self._response = response
        self._provider = provider
        self._chunk_size = chunk_size
        encoding = response.headers.get("content-encoding", "identity").strip().lower()
        self._raw = encoding in ("", "identity")
        length = response.headers.get("content-length")
        self._declared = int(length) if length and length.isdigit() else None
        # With a content-encoding the declared length counts encoded bytes, not ours.
        self.size: int | None = self._declared if self._raw else None
        self.received = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunks = (
            self._response.aiter_raw(self._chunk_size)
            if self._raw
            else self._response.aiter_bytes(self._chunk_size)
        )
        try:
            async for chunk in chunks:
                self.received += len(chunk)
                yield chunk
        except httpx.TransportError as exc:
            raise ProviderError(
                f"{self._provider}: video download broke after {self.received} bytes: "
                f"{describe_transport_error(exc)}",
                provider=self._provider,
                retryable=True,
            ) from exc
        wire = self._response.num_bytes_downloaded
        if self._declared is not None and wire != self._declared:
            raise ProviderError(
                f"{self._provider}: video download incomplete: {wire} of {self._declared} bytes",
                provider=self._provider,
                retryable=True,
            )


@contextlib.asynccontextmanager
async def open_url_stream(
    http: httpx.AsyncClient,
    url: str,
    *,
    provider: str,
    timeouts: httpx.Timeout = DOWNLOAD_TIMEOUT,
    chunk_size: int = CHUNK_SIZE,
    headers: Mapping[str, str] | None = None,
) -> AsyncIterator[UrlStream]:
    """``async with open_url_stream(http, url, provider="seedance") as stream: ...``"""
    async with contextlib.AsyncExitStack() as stack:
        try:
            response = await stack.enter_async_context(
                http.stream("GET", url, timeout=timeouts, headers=headers)
            )
        except httpx.TransportError as exc:
            # Only the opening is translated here: errors raised by the consumer's own body
            # (e.g. the storage upload) must keep their own kind.
            raise ProviderError(
                f"{provider}: video download {describe_transport_error(exc)}",
                provider=provider,
                retryable=True,
            ) from exc
        if response.status_code >= 400:
            retryable = response.status_code in (408, 429) or response.status_code >= 500
            reason = (
                "the result URL expired or is not accessible"
                if response.status_code in (401, 403, 404, 410)
                else "the result URL failed"
            )
            raise ProviderError(
                f"{provider}: video download answered HTTP {response.status_code}: {reason}",
                provider=provider,
                retryable=retryable,
            )
        yield UrlStream(response, provider=provider, chunk_size=chunk_size)
