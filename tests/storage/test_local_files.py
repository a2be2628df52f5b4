"""``/files``: the local backend's signed, expiring download URLs."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from app.errors import ForbiddenError, ValidationError
from app.storage.local import LocalStorage
from tests.conftest import LiveGateway


@pytest.fixture
def video_url(live_gateway: LiveGateway) -> str:
    response = live_gateway.client.post(
        "/generate-video", json={"prompt": "signed", "duration_ms": 500, "fps": 4}
    )
    return str(response.json()["video_url"])


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()} | changes
    return parts._replace(query=urlencode(query)).geturl()


def test_signed_url_downloads_without_a_token(video_url: str) -> None:
    assert httpx.get(video_url).status_code == 200


@pytest.mark.parametrize(
    "tamper",
    [
        lambda url: with_query(url, sig="0" * 64),
        lambda url: with_query(url, exp=str(int(time.time()) + 999_999)),
        lambda url: url.split("?")[0],
        lambda url: with_query(url, exp="soon"),
        lambda url: url.replace(".mp4?", "x.mp4?"),
    ],
    ids=["signature", "expiry", "unsigned", "malformed", "other-key"],
)
def test_tampered_urls_are_refused(video_url: str, tamper) -> None:  # type: ignore[no-untyped-def]
    response = httpx.get(tamper(video_url))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


@pytest.mark.anyio
async def test_expired_urls_are_refused(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path, base_url="http://gw", signing_key=b"k" * 32)

    async def chunks():  # type: ignore[no-untyped-def]
        yield b"data"

    await storage.put("videos/a.mp4", chunks())
    url = await storage.url("videos/a.mp4", expires_s=60)
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert storage.verify("videos/a.mp4", query["exp"], query["sig"]).read_bytes() == b"data"
    with pytest.raises(ForbiddenError, match="expired"):
        storage.verify("videos/a.mp4", query["exp"], query["sig"], now=time.time() + 61)


@pytest.mark.anyio
async def test_a_put_remakes_directories_removed_since_the_last(tmp_path: Path) -> None:
    """Directories are made only when missing (asking first cost two system calls a video):
    one removed meanwhile, the day's or the partial files', is made again."""
    storage = LocalStorage(tmp_path, base_url="http://gw", signing_key=b"k" * 32)

    async def chunks(data: bytes):  # type: ignore[no-untyped-def]
        yield data

    await storage.put("videos/2026/12/01/a.mp4", chunks(b"first"))
    shutil.rmtree(tmp_path / "videos")
    shutil.rmtree(tmp_path / ".partial")
    stored = await storage.put("videos/2026/12/01/b.mp4", chunks(b"second"))
    assert stored.size == 6
    assert (tmp_path / "videos/2026/12/01/b.mp4").read_bytes() == b"second"
    assert list((tmp_path / ".partial").iterdir()) == []


@pytest.mark.parametrize(
    "key",
    [
        "../secret",
        "videos/../../etc/passwd",
        "/etc/passwd",
        "a//b",
        "videos/./x",
        ".partial/x",
        "a\\b",
        "",
    ],
)
def test_keys_outside_the_root_are_rejected(tmp_path: Path, key: str) -> None:
    storage = LocalStorage(tmp_path, base_url="http://gw", signing_key=b"k" * 32)
    with pytest.raises(ValidationError):
        storage.path_for(key)


def test_traversal_through_http_is_not_served(live_gateway: LiveGateway) -> None:
    for path in ("/files/../gateway.db", "/files/%2e%2e/gateway.db", "/files/..%2fgateway.db"):
        response = httpx.get(f"{live_gateway.base_url}{path}?exp=9999999999&sig=x")
        assert response.status_code in (403, 404, 422), path
        assert b"SQLite" not in response.content
