"""httpcore's network layer written on asyncio's transports, for the clients that call providers.

Why this is hand-written: under asyncio, httpcore reaches the network only through anyio's
streams (its own asyncio backend was removed, and putting it back was declined upstream), and
that layer is where a provider call spends much of its time on the event loop. Every read and
write opens a cancel scope with a loop timer and a ``map_exceptions`` context, every send adds
a ``sleep(0)`` checkpoint (one more trip round the loop), and every receive pauses and resumes
the socket's reading. In a burst of 100 Seedance calls (``bench/concurrency.py``) these clients
took the gateway's CPU per burst from 1.00 s to 0.84 s. No maintained library offers the same
layer without those costs.

Here a connection is an :class:`asyncio.Protocol` that keeps reading (up to a bound, then the
socket is paused until the reader catches up). A read hands over what has arrived or waits on
one future, with a timer only when a timeout is set; a write goes to the transport and waits
only when the transport asks the writer to pause. Whether an idle connection was closed by its
server is answered from what the loop has seen, and only when it has seen nothing, from the
kernel (the loop may have been busy since). Errors are httpcore's own (``ConnectError``,
``ReadTimeout``...), exactly as with anyio, so httpx maps them to the same exceptions and the
retry rules in :mod:`app.providers.http` see no difference.
"""

# httpcore's interface passes each operation its timeout; asyncio.timeout cannot replace it.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import select
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, cast

import httpcore
import httpx

#: Bytes read ahead of the reader before the socket is paused, and the level it resumes at.
HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024

SocketOption = tuple[Any, ...]  # (level, option, value) or (level, option, None, length)


class _Connection(asyncio.Protocol):
    """One socket's incoming bytes and state, filled by the loop as they arrive."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.transport: asyncio.Transport | None = None
        self._chunks: list[bytes | memoryview] = []
        self._buffered = 0
        self._reading_paused = False
        self.eof = False
        self.lost: Exception | None = None
        self.closed = False
        self._reader: asyncio.Future[None] | None = None
        self._writable: asyncio.Future[None] | None = None

    # -- the loop's side ----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without deriving from it.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER and not self._reading_paused and self.transport:
            self._reading_paused = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool | None:
        self.eof = True
        self._wake_reader()
        return None  # let the transport close its side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.eof = True
        self.lost = exc
        self._wake_reader()
        self._wake_writer(exc or ConnectionResetError("the connection was closed"))

    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = self._loop.create_future()

    def resume_writing(self) -> None:
        self._wake_writer(None)

    # -- the stream's side --------------------------------------------------------------------

    def take(self, max_bytes: int) -> bytes:
        chunk = self._chunks[0]
        if len(chunk) > max_bytes:
            # The rest stays a view: a large chunk read in pieces is copied once, not again
            # for every piece taken from its front.
            view = memoryview(chunk)
            taken = bytes(view[:max_bytes])
            self._chunks[0] = view[max_bytes:]
        else:
            del self._chunks[0]
            taken = bytes(chunk) if isinstance(chunk, memoryview) else chunk
        self._buffered -= len(taken)
        if self._reading_paused and self._buffered <= LOW_WATER and self.transport:
            self._reading_paused = False
            self.transport.resume_reading()
        return taken

    def has_data(self) -> bool:
        return bool(self._chunks)

    def reader(self) -> asyncio.Future[None]:
        self._reader = self._loop.create_future()
        return self._reader

    def writable(self) -> asyncio.Future[None] | None:
        return self._writable

    def _wake_reader(self) -> None:
        if self._reader is not None:
            if not self._reader.done():
                self._reader.set_result(None)
            self._reader = None

    def _wake_writer(self, exc: BaseException | None) -> None:
        waiter, self._writable = self._writable, None
        if waiter is not None and not waiter.done():
            if exc is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(exc)


async def _within(
    future: asyncio.Future[None], seconds: float | None, error: type[Exception], what: str
) -> None:
    """Wait for ``future``; ``error`` when ``seconds`` pass first."""
    if seconds is None:
        await future
        return
    loop = asyncio.get_running_loop()

    def expire() -> None:
        if not future.done():
            future.set_exception(error(f"{what} timed out"))

    timer = loop.call_later(seconds, expire)
    try:
        await future
    finally:
        timer.cancel()


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, connection: _Connection) -> None:
        self._connection = connection

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        connection = self._connection
        while not connection.has_data():
            if connection.eof:
                if connection.lost is not None:
                    raise httpcore.ReadError(str(connection.lost) or "connection lost")
                return b""  # the server closed its side: httpcore reads that as a disconnect
            await _within(connection.reader(), timeout, httpcore.ReadTimeout, "read")
        return connection.take(max_bytes)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        connection = self._connection
        transport = connection.transport
        if transport is None or connection.closed or transport.is_closing():
            raise httpcore.WriteError("the connection is closed")
        try:
            transport.write(buffer)
            waiter = connection.writable()
            if waiter is not None:
                await _within(waiter, timeout, httpcore.WriteTimeout, "write")
        except OSError as exc:
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        transport = self._connection.transport
        if transport is not None and not transport.is_closing():
            transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        connection = self._connection
        assert connection.transport is not None
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    connection.transport,
                    connection,
                    ssl_context,
                    server_hostname=server_hostname,
                )
        except TimeoutError as exc:
            await self.aclose()
            raise httpcore.ConnectTimeout("TLS handshake timed out") from exc
        except (OSError, ssl.SSLError) as exc:
            await self.aclose()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        assert transport is not None
        connection.transport = transport
        return AsyncioStream(connection)

    def get_extra_info(self, info: str) -> Any:
        connection = self._connection
        transport = connection.transport
        if transport is None:
            return True if info == "is_readable" else None
        if info == "is_readable":
            # Asked of idle connections only: anything arriving there (data, or the server's
            # close) means it can no longer carry a request. What the loop has not taken in
            # yet (it may have been busy since the server closed) only the kernel knows.
            return connection.has_data() or connection.eof or _readable(transport)
        if info == "ssl_object":
            return transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return transport.get_extra_info("sockname")
        if info == "server_addr":
            return transport.get_extra_info("peername")
        if info == "socket":
            return transport.get_extra_info("socket")
        return None


class AsyncioBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local = (local_address, 0) if local_address else None

        async def connect(connection: _Connection) -> object:
            return await loop.create_connection(lambda: connection, host, port, local_addr=local)

        return await _opened(connect, f"{host}:{port}", timeout, socket_options)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()

        async def connect(connection: _Connection) -> object:
            return await loop.create_unix_connection(lambda: connection, path)

        return await _opened(connect, path, timeout, socket_options)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def _opened(
    connect: Callable[[_Connection], Awaitable[object]],
    what: str,
    timeout: float | None,
    options: Iterable[SocketOption] | None,
) -> AsyncioStream:
    """A stream on a connection ``connect`` opens within ``timeout``, as httpcore's errors."""
    connection = _Connection(asyncio.get_running_loop())
    try:
        async with asyncio.timeout(timeout):
            await connect(connection)
    except TimeoutError as exc:
        raise httpcore.ConnectTimeout(f"connecting to {what} timed out") from exc
    except OSError as exc:
        raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
    _set_options(connection, options)
    return AsyncioStream(connection)


def _readable(transport: asyncio.Transport) -> bool:
    sock = transport.get_extra_info("socket")
    if sock is None:
        return True
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(0))


def _set_options(connection: _Connection, options: Iterable[SocketOption] | None) -> None:
    if not options or connection.transport is None:
        return
    sock: socket.socket = connection.transport.get_extra_info("socket")
    for option in options:
        sock.setsockopt(*option)


def asyncio_transport(*, verify: ssl.SSLContext, limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """httpx's own HTTP/1.1 transport, reaching the network through :class:`AsyncioBackend`."""
    transport = httpx.AsyncHTTPTransport(verify=verify, limits=limits)
    use_backend(transport, AsyncioBackend(), verify=verify, limits=limits)
    return transport


def use_backend(
    transport: httpx.AsyncHTTPTransport,
    backend: httpcore.AsyncNetworkBackend,
    *,
    verify: ssl.SSLContext,
    limits: httpx.Limits,
) -> None:
    """Make ``transport`` reach the network through ``backend``. httpx builds its pool without
    a way to name one, so the same pool is rebuilt with it (httpx is pinned; the tests of each
    backend's clients cover this seam)."""
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=verify,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=backend,
    )
