"""Run an ASGI app (an emulator, or the gateway itself) on a real loopback port.

Tests talk to emulators over real HTTP, exactly as the gateway talks to the real
service. ``serve_in_thread`` starts uvicorn in a daemon thread on a free port and
yields the base URL; the server is shut down when the context exits. ``serve_handler`` does
the same for a standard-library request handler (a few lines of a server that misbehaves on
purpose: a redirect to a forbidden address, a front that drops an answer).
"""

from __future__ import annotations

import contextlib
import http.server
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve_in_thread(app: Any, *, port: int | None = None, **options: Any) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 in a background thread; yield ``http://127.0.0.1:PORT``
    (``https://`` when ``options`` name a certificate). ``options`` go to ``uvicorn.Config``."""
    port = port or free_port()
    # proxy_headers off, as `python -m app serve` runs: [server] trusted_proxies decides.
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        proxy_headers=False,
        **options,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"asgi-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"server on port {port} did not start")
        time.sleep(0.01)
    try:
        yield f"{'https' if options.get('ssl_certfile') else 'http'}://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def serve_handler(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` on 127.0.0.1 (a thread per request); yield ``127.0.0.1:PORT``."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
