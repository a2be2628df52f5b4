"""The gateway's own base URL for links it hands out (``/files``, status URLs).

``[server] public_base_url`` when set. Otherwise each request's own address: its ``Host``
header and scheme, or ``X-Forwarded-Host`` / ``X-Forwarded-Proto`` when the request came from
one of ``[server] trusted_proxies`` (anyone else could make the gateway print their host).
Outside a request (webhooks sent by the pipeline) the configured ``http://HOST:PORT`` is used.
"""

from __future__ import annotations

import contextvars
import ipaddress
import re
from collections.abc import Iterable

request_base_url: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_base_url", default=None
)
_HOST = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$")


def base_url(configured: str) -> str:
    """The base URL for the current request, else ``configured``."""
    return request_base_url.get() or configured


class BaseUrlResolver:
    def __init__(self, trusted_proxies: Iterable[str]) -> None:
        self._trusted = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]

    def _trusts(self, client: str | None) -> bool:
        if not client or not self._trusted:
            return False
        try:
            ip = ipaddress.ip_address(client)
        except ValueError:
            return False
        return any(ip in net for net in self._trusted)

    def resolve(
        self, *, scheme: str, headers: dict[bytes, bytes], client: str | None
    ) -> str | None:
        """``scheme://host`` for a request, or None when its headers give nothing usable."""
        host = headers.get(b"host", b"").decode("latin-1").strip()
        if self._trusts(client):
            forwarded_host = headers.get(b"x-forwarded-host", b"").decode("latin-1")
            forwarded_proto = headers.get(b"x-forwarded-proto", b"").decode("latin-1")
            first_host = forwarded_host.split(",")[0].strip()
            first_proto = forwarded_proto.split(",")[0].strip().lower()
            host = first_host or host
            scheme = first_proto if first_proto in ("http", "https") else scheme
        if not host or not _HOST.match(host):
            return None
        scheme = "https" if scheme in ("https", "wss") else "http"
        return f"{scheme}://{host}"
