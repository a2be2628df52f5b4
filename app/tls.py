"""One TLS context for every outgoing HTTPS client.

httpx builds a new ``ssl.SSLContext`` for each client and transport, and each one parses the
whole CA bundle: 25-40 ms of CPU apiece, and the gateway makes half a dozen clients at start-up
(providers, callers' URLs through the URL guard, webhooks, moderation). A restarted gateway
should spend that time on its tasks, so they share one context, built once. ``python -m app
serve`` starts building it in a thread while the app is still being imported (:func:`warm_up`;
OpenSSL reads the bundle without holding the interpreter lock). An ``SSLContext`` is meant to
be shared by many connections; nothing here changes it afterwards.
"""

from __future__ import annotations

import os
import ssl
import threading

import httpx

_lock = threading.Lock()
_contexts: dict[bool, ssl.SSLContext] = {}


def tls_context(*, trust_env: bool = True) -> ssl.SSLContext:
    """httpx's default verifying context (``trust_env``: honour ``SSL_CERT_FILE``/``_DIR``)."""
    if not (os.environ.get("SSL_CERT_FILE") or os.environ.get("SSL_CERT_DIR")):
        trust_env = True  # the environment names no other CAs: both are the same context
    with _lock:
        context = _contexts.get(trust_env)
        if context is None:
            context = _contexts[trust_env] = httpx.create_ssl_context(trust_env=trust_env)
        return context


def warm_up() -> None:
    """Build the context in a background thread (the first client then finds it made)."""
    threading.Thread(target=tls_context, name="tls-warm-up", daemon=True).start()
