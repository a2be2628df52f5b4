"""The URL guard: what a caller's URL may reach, checked when the task is created and again
when the gateway connects.

A caller hands the gateway URLs (``callback_url``, ``image_url``, ``last_frame_url``,
``reference_images``, shot images). Without a guard the gateway becomes the caller's proxy into
its own network: cloud metadata (169.254.169.254), admin ports on loopback, the private LAN.
Two checks keep that out::

    create ──► check_url(url)          literal spellings only (no DNS): 422 invalid_url
                 127.0.0.1, 2130706433, 0x7f000001, 127.1, 0177.0.0.1, [::ffff:127.0.0.1],
                 localhost, LOCALHOST., fullwidth digits, percent-encoded hosts …
    connect ──► GuardedBackend         every connection the guarded client opens, redirects
                 resolve the name ──► every address must be public ──► connect to the address
                 that was checked (TLS still verifies and sends SNI for the original name)

An address is public when it is globally routable unicast: not loopback, private (RFC 1918,
ULA), link-local, CGNAT (100.64/10), multicast, reserved, documentation or unspecified, and an
IPv6 address that embeds an IPv4 one (mapped, compatible, 6to4, NAT64, Teredo) must embed a
public one. ``[security] private_url_allowlist`` lets an operator allow networks (``10.0.0.0/8``)
or host names (``dify-api``) that are private on purpose.

Hand-written because the libraries that exist either only check literals or replace the HTTP
client; the seam here is httpcore's network backend, so the gateway keeps httpx (timeouts,
pooling per host name, TLS verification, redirects) and the check sits exactly where the
socket is opened: no DNS rebinding window between the check and the connect. Where the
gateway only passes a URL on to a provider (Ark fetches ``image_url`` itself), the create-time
literal check is what applies.

Tests inject the resolver (no real DNS) and the inner backend (to prove that a refused address
is never connected to).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import typing
import unicodedata
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import httpcore
import httpx

from app.errors import InvalidUrlError
from app.providers.netbackend import use_backend
from app.tls import tls_context

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
#: ``(host, port) -> addresses``: the system resolver by default, a table in tests.
Resolver = Callable[[str, int], Awaitable[list[str]]]

_LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_COMPATIBLE = ipaddress.IPv6Network("::/96")


class BlockedAddressError(httpx.ConnectError):
    """The guarded client refused to connect: the host is or resolves to a non-public address."""


def parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """``host`` as the IPv4 address a URL parser or ``inet_aton`` would read it, or None.

    Follows the WHATWG URL rules (what browsers and ``getaddrinfo`` accept): one to four parts,
    each decimal, ``0x`` hex or ``0``-prefixed octal, the last one filling the remaining bytes:
    ``2130706433``, ``0x7f000001``, ``127.1``, ``0177.0.0.1`` are all 127.0.0.1. A host whose
    last part is numeric but that is not a valid address raises ``ValueError``.
    """
    parts = host.split(".")
    if parts and parts[-1] == "" and len(parts) > 1:
        parts.pop()
    if not parts:
        return None

    def number(part: str) -> int | None:
        text = part.lower()
        base = 10
        if text.startswith("0x"):
            text, base = text[2:], 16
            if not text:
                return 0
        elif len(text) > 1 and text.startswith("0"):
            text, base = text[1:], 8
        digits = "0123456789abcdef"[:base]
        if not text or any(ch not in digits for ch in text):
            return None
        return int(text, base)

    if number(parts[-1]) is None:
        return None  # a host name (it may still contain numeric labels)
    if len(parts) > 4:
        raise ValueError(f"malformed IPv4 address {host!r}")
    values = [number(part) for part in parts]
    if any(value is None for value in values):
        raise ValueError(f"malformed IPv4 address {host!r}")
    numbers = typing.cast(list[int], values)
    if any(value > 255 for value in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise ValueError(f"IPv4 address out of range {host!r}")
    address = numbers[-1]
    for index, value in enumerate(numbers[:-1]):
        address += value << (8 * (3 - index))
    return ipaddress.IPv4Address(address)


def normalise_host(host: str) -> str:
    """Lower case, percent-decoded, NFKC (fullwidth digits), no brackets, zone or final dot."""
    text = unicodedata.normalize("NFKC", unquote(host)).strip().lower()
    text = text.removeprefix("[").removesuffix("]")
    text = text.split("%", 1)[0]  # an IPv6 zone id (fe80::1%eth0)
    return text.rstrip(".") if text not in (".", "") else text


def parse_ip(host: str) -> IPAddress | None:
    """A literal address in any spelling, or None for a host name. ``ValueError`` if malformed."""
    text = normalise_host(host)
    if ":" in text:
        try:
            return ipaddress.IPv6Address(text)
        except ValueError as exc:
            raise ValueError(f"malformed IPv6 address {host!r}") from exc
    return parse_ipv4(text)


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    found = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip in _COMPATIBLE and int(ip) > 1:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip in _NAT64:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.teredo is not None:
        found.extend(ip.teredo)
    return found


def is_public(ip: IPAddress) -> bool:
    """Globally routable unicast, and so is any IPv4 address an IPv6 one carries."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(ip)
        if embedded:
            return all(is_public(inner) for inner in embedded)
    return (
        ip.is_global
        and not ip.is_multicast
        and not ip.is_reserved
        and not ip.is_loopback
        and not ip.is_link_local
        and not ip.is_unspecified
        and not ip.is_private
    )


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (the OS resolver, off the event loop)."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class UrlPolicy:
    """What a caller's URL may reach: public addresses, plus what the operator allows.

    ``allow`` entries are networks (``10.0.0.0/8``, ``127.0.0.1``) or host names (``dify-api``);
    a listed host name is allowed whatever it resolves to.
    """

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def from_allowlist(cls, entries: Iterable[str]) -> UrlPolicy:
        networks: list[IPNetwork] = []
        hosts: set[str] = set()
        for entry in entries:
            text = entry.strip()
            if not text:
                continue
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError:
                hosts.add(normalise_host(text))
        return cls(networks=tuple(networks), hosts=frozenset(hosts))

    def allows_ip(self, ip: IPAddress) -> bool:
        return is_public(ip) or any(ip in net for net in self.networks)

    def allows_name(self, host: str) -> bool:
        return normalise_host(host) in self.hosts

    def check_url(self, url: str, *, field: str) -> None:
        """Refuse (422 ``invalid_url``) a URL whose host is a non-public literal address.

        Host names other than ``localhost`` are not resolved here: they are checked when the
        gateway (or the provider) connects, against what they resolve to then.
        """
        if url.startswith("data:"):
            return
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError as exc:
            raise InvalidUrlError(f"{field}: not a valid URL", field=field) from exc
        if parts.scheme not in ("http", "https") or not host:
            raise InvalidUrlError(f"{field}: must be an http(s) URL with a host", field=field)
        self.check_host(host, field=field)

    def check_host(self, host: str, *, field: str) -> IPAddress | None:
        """The literal address of ``host`` if it is allowed, None for an allowed name."""
        if self.allows_name(host):
            return None
        name = normalise_host(host)
        try:
            ip = parse_ip(name)
        except ValueError as exc:
            raise InvalidUrlError(f"{field}: malformed address in the URL", field=field) from exc
        if ip is None:
            if name in _LOCAL_NAMES or name.endswith(".localhost") or not name:
                raise InvalidUrlError(
                    f"{field}: {name or 'the host'} is a loopback name", field=field
                )
            return None
        if not self.allows_ip(ip):
            raise InvalidUrlError(
                f"{field}: {ip} is a private, loopback, link-local or reserved address "
                "(see [security] private_url_allowlist)",
                field=field,
            )
        return ip


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with the policy at the socket: resolve, check, connect to
    the checked address. httpcore still runs TLS with the original host name (SNI and
    certificate checks), and pools connections per host name."""

    def __init__(
        self,
        policy: UrlPolicy,
        *,
        resolver: Resolver = system_resolver,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self._policy = policy
        self._resolver = resolver
        self._inner = inner or httpcore.AnyIOBackend()

    async def resolve(self, host: str, port: int) -> list[str]:
        """The addresses to connect to, all checked; ``BlockedAddressError`` otherwise."""
        try:
            literal = parse_ip(host)
        except ValueError as exc:
            raise BlockedAddressError(f"malformed address {host!r}") from exc
        if literal is not None:
            if not self._policy.allows_ip(literal):
                raise BlockedAddressError(f"{literal} is not a public address")
            return [str(literal)]
        name = normalise_host(host)
        allowed_name = self._policy.allows_name(name)
        if not allowed_name and (name in _LOCAL_NAMES or name.endswith(".localhost")):
            raise BlockedAddressError(f"{name} is a loopback name")
        try:
            addresses = await self._resolver(name, port)
        except OSError as exc:
            raise httpx.ConnectError(f"cannot resolve {name}: {exc}") from exc
        if not addresses:
            raise httpx.ConnectError(f"{name} has no address")
        checked = [ipaddress.ip_address(address.split("%", 1)[0]) for address in addresses]
        # All of them: a name that answers with one public and one private address must not
        # get the private one on a retry.
        refused = [ip for ip in checked if not (allowed_name or self._policy.allows_ip(ip))]
        if refused:
            raise BlockedAddressError(f"{name} resolves to {refused[0]}, not a public address")
        return [str(ip) for ip in checked]

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self.resolve(host, port)
        last: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise BlockedAddressError("unix sockets are not reachable through the URL guard")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport on a :class:`GuardedBackend` (no proxies, no environment)."""

    def __init__(
        self,
        policy: UrlPolicy,
        *,
        resolver: Resolver = system_resolver,
        inner: httpcore.AsyncNetworkBackend | None = None,
        limits: httpx.Limits = httpx.Limits(max_connections=100, max_keepalive_connections=20),  # noqa: B008
    ) -> None:
        verify = tls_context(trust_env=False)
        super().__init__(verify=verify, limits=limits, trust_env=False)
        self.backend = GuardedBackend(policy, resolver=resolver, inner=inner)
        use_backend(self, self.backend, verify=verify, limits=limits)


def guarded_client(
    policy: UrlPolicy,
    *,
    timeout: httpx.Timeout,
    resolver: Resolver = system_resolver,
    inner: httpcore.AsyncNetworkBackend | None = None,
    max_redirects: int = 5,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for fetching callers' URLs: every hop, redirects included, goes
    through the guard; proxy variables are ignored (a proxy would connect on our behalf)."""
    return httpx.AsyncClient(
        transport=GuardedTransport(policy, resolver=resolver, inner=inner),
        timeout=timeout,
        follow_redirects=True,
        max_redirects=max_redirects,
        trust_env=False,
    )
