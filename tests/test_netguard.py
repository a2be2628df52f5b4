"""The URL guard: every spelling of a non-public address is refused before any connection.

Nothing here sends traffic beyond loopback: names resolve through an injected table, and the
inner network backend records connection attempts and refuses anything but 127.0.0.1.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import httpcore
import httpx
import pytest

from app.errors import InvalidUrlError
from app.netguard import BlockedAddressError, GuardedBackend, UrlPolicy, guarded_client
from tests.conftest import GatewayFactory
from tests.emulators.server import serve_handler

REFUSED = [
    "http://127.0.0.1/",
    "http://127.0.0.1./x",
    "http://2130706433/",  # decimal
    "http://0x7f000001/",  # hex
    "http://0X7F.0.0.1/",
    "http://127.1/",  # short
    "http://0177.0.0.1/",  # octal
    "http://017700000001/",
    "http://0x7f.1/",
    "http://%31%32%37.0.0.1/",  # percent-encoded
    "http://１２７.０.０.１/",  # fullwidth digits
    "http://user:pw@127.0.0.1:8080/",
    "http://localhost/",
    "http://LOCALHOST./",
    "http://api.localhost/",
    "http://ip6-localhost/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",  # IPv4-mapped
    "http://[::ffff:7f00:1]/",
    "http://[::127.0.0.1]/",  # IPv4-compatible
    "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
    "http://0.0.0.0/",
    "http://0/",
    "http://[::]/",
    "http://10.0.0.1/",
    "http://172.16.5.4/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://0xa9fea9fe/",  # 169.254.169.254 in hex
    "http://100.64.0.1/",  # CGNAT
    "http://198.18.0.1/",  # benchmarking
    "http://192.0.2.1/",  # documentation
    "http://224.0.0.1/",  # multicast
    "http://239.255.255.250/",
    "http://240.0.0.1/",  # reserved
    "http://255.255.255.255/",
    "http://[fc00::1]/",  # ULA
    "http://[fe80::1%25eth0]/",  # link-local with a zone
    "http://[ff02::1]/",
    "http://[2001:db8::1]/",
    "http://256.0.0.1/",  # malformed
    "http://1.2.3.4.5/",
    "ftp://example.com/x.png",
    "http:///nohost",
]
ALLOWED = [
    "https://example.com/image.png",
    "http://93.184.216.34/x",  # a public literal
    "http://[2606:4700::6810:84e5]/",
    "https://cdn.example.com:8443/a.png?x=1",
    "http://1.2.3.example.com/",  # numeric labels in a name
    "data:image/png;base64,iVBORw0KGgo=",
]


@pytest.mark.parametrize("url", REFUSED)
def test_refused_spellings(url: str) -> None:
    with pytest.raises(InvalidUrlError) as caught:
        UrlPolicy().check_url(url, field="image_url")
    assert caught.value.code == "invalid_url" and caught.value.status_code == 422
    assert caught.value.message.startswith("image_url:")


@pytest.mark.parametrize("url", ALLOWED)
def test_public_urls_pass(url: str) -> None:
    UrlPolicy().check_url(url, field="image_url")


def test_the_allowlist_opens_networks_and_names() -> None:
    policy = UrlPolicy.from_allowlist(["10.0.0.0/8", "dify-api", "127.0.0.1"])
    policy.check_url("http://10.1.2.3:5001/hook", field="callback_url")
    policy.check_url("http://DIFY-API./hook", field="callback_url")
    policy.check_url("http://2130706433/", field="callback_url")  # 127.0.0.1, spelled oddly
    for url in ("http://192.168.0.1/", "http://127.0.0.2/", "http://other-api/", "http://[::1]/"):
        if "other-api" in url:
            policy.check_url(url, field="callback_url")  # a name: checked when connecting
            continue
        with pytest.raises(InvalidUrlError):
            policy.check_url(url, field="callback_url")


class Recorder(httpcore.AsyncNetworkBackend):
    """The inner backend: records every connection attempt; only loopback really connects."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, int]] = []
        self._real = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.attempts.append((host, port))
        if host != "127.0.0.1":
            raise httpcore.ConnectError(f"test backend: not connecting to {host}")
        return await self._real.connect_tcp(host, port, timeout=timeout)

    async def sleep(self, seconds: float) -> None:
        await self._real.sleep(seconds)


def table(entries: dict[str, list[str]]) -> typing.Any:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in entries:
            raise OSError(f"no such name {host}")
        return entries[host]

    return resolve


NAMES = {
    "loopback.test": ["127.0.0.1"],
    "metadata.test": ["169.254.169.254"],
    "mixed.test": ["93.184.216.34", "10.0.0.7"],
    "mapped.test": ["::ffff:192.168.0.1"],
    "public.test": ["93.184.216.34"],
}


@pytest.mark.anyio
@pytest.mark.parametrize(
    "url",
    [
        "http://loopback.test/",
        "http://metadata.test/latest",
        "http://mixed.test/",
        "http://mapped.test/",
        "http://2130706433/",
        "http://127.1/",
        "http://localhost./",
        "http://[::ffff:127.0.0.1]/",
    ],
)
async def test_the_client_refuses_before_connecting(url: str) -> None:
    recorder = Recorder()
    async with guarded_client(
        UrlPolicy(), timeout=httpx.Timeout(2.0), resolver=table(NAMES), inner=recorder
    ) as client:
        with pytest.raises(BlockedAddressError):
            await client.get(url)
    assert recorder.attempts == []


@pytest.mark.anyio
async def test_a_public_name_connects_to_the_address_that_was_checked() -> None:
    recorder = Recorder()
    async with guarded_client(
        UrlPolicy(), timeout=httpx.Timeout(2.0), resolver=table(NAMES), inner=recorder
    ) as client:
        with pytest.raises(httpx.ConnectError):  # the recorder does not really connect
            await client.get("http://public.test:8080/x")
    assert recorder.attempts == [("93.184.216.34", 8080)]


@pytest.fixture
def loopback_server() -> Iterator[tuple[str, list[dict[str, str]]]]:
    """127.0.0.1: /redirect sends the client on to the cloud metadata address."""
    seen: list[dict[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append({"path": self.path, "host": self.headers.get("Host", "")})
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", "http://169.254.169.254/latest/meta-data/")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:
            pass

    with serve_handler(Handler) as address:
        yield address, seen


@pytest.mark.anyio
async def test_redirects_are_checked_hop_by_hop(
    loopback_server: tuple[str, list[dict[str, str]]],
) -> None:
    address, seen = loopback_server
    recorder = Recorder()
    policy = UrlPolicy.from_allowlist(["127.0.0.1"])
    async with guarded_client(
        policy, timeout=httpx.Timeout(5.0), resolver=table(NAMES), inner=recorder
    ) as client:
        with pytest.raises(BlockedAddressError):
            await client.get(f"http://{address}/redirect")
    assert [path["path"] for path in seen] == ["/redirect"]
    assert [host for host, _ in recorder.attempts] == ["127.0.0.1"]  # never 169.254.169.254


@pytest.mark.anyio
async def test_an_allowed_name_keeps_its_host_header(
    loopback_server: tuple[str, list[dict[str, str]]],
) -> None:
    """No rebinding: the connection goes to the resolved, checked address; Host stays."""
    address, seen = loopback_server
    port = int(address.rsplit(":", 1)[1])
    recorder = Recorder()
    policy = UrlPolicy.from_allowlist(["127.0.0.0/8"])
    async with guarded_client(
        policy, timeout=httpx.Timeout(5.0), resolver=table(NAMES), inner=recorder
    ) as client:
        response = await client.get(f"http://loopback.test:{port}/image.png")
    assert response.status_code == 200
    assert seen == [{"path": "/image.png", "host": f"loopback.test:{port}"}]
    assert recorder.attempts == [("127.0.0.1", port)]


@pytest.mark.anyio
async def test_the_backend_refuses_unix_sockets_and_unresolvable_names() -> None:
    backend = GuardedBackend(UrlPolicy(), resolver=table({}), inner=Recorder())
    with pytest.raises(BlockedAddressError):
        await backend.connect_unix_socket("/var/run/docker.sock")
    with pytest.raises(httpx.ConnectError):
        await backend.resolve("nowhere.test", 80)


def test_literal_private_urls_are_422_at_create(gateway_factory: GatewayFactory) -> None:
    """The default policy (no allowlist) over HTTP, for every URL field."""
    with gateway_factory({"security": {"private_url_allowlist": ""}}) as gateway:
        body = {"prompt": "guarded", "duration_ms": 500, "fps": 4}
        for field, url in [
            ("callback_url", "http://2130706433:8080/hook"),
            ("image_url", "http://169.254.169.254/latest/meta-data/"),
            ("last_frame_url", "http://[::ffff:10.0.0.1]/x.png"),
        ]:
            extra = {"image_url": "https://example.com/a.png"} if field == "last_frame_url" else {}
            for path in ("/v1/tasks", "/generate-video"):
                answer = gateway.client.post(path, json={**body, **extra, field: url})
                assert answer.status_code == 422, answer.text
                error = answer.json()["error"]
                assert error["code"] == "invalid_url" and error["message"].startswith(field)
        assert gateway.client.get("/v1/tasks").json()["data"] == []
