"""One TLS context for every outgoing HTTPS client.

httpx builds a new ``ssl.SSLContext`` for each client and transport, and each one parses the
whole CA bundle: 25-40 ms of CPU apiece, and the gateway makes half a dozen clients at start-up
(providers, callers' URLs through the URL guard, webhooks, moderation). A restarted gateway
should spend that time on its tasks, so they share one context, built on first use. An
``SSLContext`` is meant to be shared by many connections; nothing here changes it afterwards.
"""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def tls_context(*, trust_env: bool = True) -> ssl.SSLContext:
    """httpx's default verifying context (``trust_env``: honour ``SSL_CERT_FILE``/``_DIR``)."""
    return httpx.create_ssl_context(trust_env=trust_env)
