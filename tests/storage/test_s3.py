"""The ``s3`` backend beyond the contract, against SeaweedFS (a real SigV4 server)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from botocore.exceptions import ClientError

from app.config import ConfigError, Settings
from app.errors import UnavailableError
from app.storage.base import new_object_key
from app.storage.lifecycle import run_lifecycle
from app.storage.s3 import S3Storage
from tests.emulators.server import free_port
from tests.storage.conftest import (
    S3_BUCKET,
    S3_SECRET,
    MiB,
    SeaweedServer,
    deps_for,
    s3_client,
    s3_settings,
)

pytestmark = pytest.mark.anyio


async def stream(data: bytes, chunk: int = 256 * 1024 + 3) -> AsyncIterator[bytes]:
    for start in range(0, len(data), chunk):
        yield data[start : start + chunk]


def make(server: SeaweedServer, tmp_path: Path, **sections: dict[str, object]) -> S3Storage:
    return S3Storage.from_settings(s3_settings(server, **sections), deps_for(tmp_path))


async def test_streamed_video_goes_up_in_equal_parts(
    seaweed: SeaweedServer, tmp_path: Path
) -> None:
    storage = make(seaweed, tmp_path)
    data = os.urandom(12 * MiB + 1)
    key = new_object_key()
    stored = await storage.put(key, stream(data), size=len(data))
    assert stored.size == len(data)
    head = seaweed.client.head_object(Bucket=S3_BUCKET, Key=key)
    assert head["ETag"].strip('"').endswith("-3")  # 5 + 5 + 2 MiB: a multipart object
    assert head["ContentType"] == "video/mp4"
    first = seaweed.client.head_object(Bucket=S3_BUCKET, Key=key, PartNumber=1)
    assert first["ContentLength"] == 5 * MiB
    async with httpx.AsyncClient() as http:
        response = await http.get(await storage.url(key, expires_s=120))
    assert response.content == data
    await storage.aclose()


async def test_presigned_url_tampering_is_refused(seaweed: SeaweedServer, tmp_path: Path) -> None:
    storage = make(seaweed, tmp_path)
    key = new_object_key()
    await storage.put(key, stream(b"signed video"))
    url = await storage.url(key, expires_s=120)
    assert "X-Amz-Signature=" in url and "X-Amz-Expires=120" in url
    async with httpx.AsyncClient() as http:
        assert (await http.get(url)).status_code == 200
        flipped = url[:-1] + ("0" if url[-1] != "0" else "1")
        assert (await http.get(flipped)).status_code == 403
        longer = url.replace("X-Amz-Expires=120", "X-Amz-Expires=604800")
        assert (await http.get(longer)).status_code == 403
    await storage.aclose()


async def test_presigned_urls_are_signed_for_the_public_endpoint(
    seaweed: SeaweedServer, tmp_path: Path
) -> None:
    """A store behind a proxy that keeps the Host header (deploy/nginx/gateway.conf)."""
    public = "http://media.example.test:8000"
    storage = make(seaweed, tmp_path, s3={"public_endpoint_url": public + "/"})
    key = new_object_key()
    await storage.put(key, stream(b"proxied video"))
    url = await storage.url(key, expires_s=120)
    assert url.startswith(f"{public}/{S3_BUCKET}/{key}?")
    # What the proxy does: the same path and query to the store, with the client's Host header.
    direct = seaweed.endpoint + url.removeprefix(public)
    async with httpx.AsyncClient() as http:
        response = await http.get(direct, headers={"Host": "media.example.test:8000"})
        assert response.status_code == 200 and response.content == b"proxied video"
        # The signature covers the host: the same URL asked for under another name is refused.
        assert (await http.get(direct)).status_code == 403
    await storage.aclose()


async def test_presigned_expiry_is_capped_at_seven_days(
    seaweed: SeaweedServer, tmp_path: Path
) -> None:
    storage = make(seaweed, tmp_path)
    url = await storage.url("videos/x.mp4", expires_s=30 * 86400)
    assert "X-Amz-Expires=604800" in url
    await storage.aclose()


async def test_wrong_secret_is_refused(seaweed: SeaweedServer, tmp_path: Path) -> None:
    storage = make(seaweed, tmp_path, s3={"secret_key": "a-wrong-secret-value"})
    with pytest.raises(UnavailableError) as info:
        await storage.check()
    message = info.value.message
    assert "access_key / secret_key" in message
    assert "a-wrong-secret-value" not in message and S3_SECRET not in message
    with pytest.raises(UnavailableError, match="SignatureDoesNotMatch"):
        await storage.put(new_object_key(), stream(b"x"))
    await storage.aclose()


async def test_missing_bucket_and_unreachable_endpoint_are_explained(
    seaweed: SeaweedServer, tmp_path: Path
) -> None:
    missing = make(seaweed, tmp_path, s3={"bucket": "no-such-bucket"})
    with pytest.raises(UnavailableError, match="does not exist"):
        await missing.check()
    closed = make(seaweed, tmp_path, s3={"endpoint_url": f"http://127.0.0.1:{free_port()}"})
    with pytest.raises(UnavailableError, match="unreachable"):
        await closed.check()
    await missing.aclose()
    await closed.aclose()


def test_missing_keys_are_named(tmp_path: Path) -> None:
    settings = Settings.model_validate({"storage": {"backend": "s3"}, "s3": {"bucket": "b"}})
    with pytest.raises(ConfigError, match=r"\[s3\] access_key, \[s3\] secret_key"):
        S3Storage.from_settings(settings, deps_for(tmp_path))


@pytest.mark.parametrize(
    ("s3", "storage", "expected"),
    [
        ({"region": "eu-west-1"}, {}, "https://clips.s3.eu-west-1.amazonaws.com"),
        (
            {
                "endpoint_url": "https://obs.cn-north-4.myhuaweicloud.com",
                "addressing_style": "virtual",
            },
            {},
            "https://clips.obs.cn-north-4.myhuaweicloud.com",
        ),
        (
            {"endpoint_url": "http://127.0.0.1:9000", "addressing_style": "path"},
            {},
            "http://127.0.0.1:9000/clips",
        ),
        (
            {
                "endpoint_url": "http://seaweedfs:8333",
                "public_endpoint_url": "https://videos.example.com",
                "addressing_style": "path",
            },
            {},
            "https://videos.example.com/clips",
        ),
        (
            {"endpoint_url": "https://acc.r2.cloudflarestorage.com"},
            {"custom_domain": "media.example.com"},
            "https://media.example.com",
        ),
    ],
)
def test_public_url_forms(
    tmp_path: Path, s3: dict[str, str], storage: dict[str, str], expected: str
) -> None:
    settings = Settings.model_validate(
        {
            "storage": {"backend": "s3", "public": True, **storage},
            "s3": {"bucket": "clips", "access_key": "ak-value", "secret_key": "sk-value-1", **s3},
        }
    )
    backend = S3Storage.from_settings(settings, deps_for(tmp_path))
    assert backend.public_base() == expected


def test_lifecycle_without_transitions_is_idempotent(seaweed: SeaweedServer) -> None:
    settings = s3_settings(seaweed, s3={"archive_storage_class": "none"})
    client = seaweed.client
    with contextlib.suppress(ClientError):  # a clean slate: no configuration yet
        client.delete_bucket_lifecycle(Bucket=S3_BUCKET)
    assert "would add" in run_lifecycle(settings, days=30, dry_run=True)[0]
    first = run_lifecycle(settings, days=30, dry_run=False)
    assert "added" in first[0]
    rules = client.get_bucket_lifecycle_configuration(Bucket=S3_BUCKET)["Rules"]
    ours = [r for r in rules if r["ID"] == "vgw-archive-videos"]
    assert ours and ours[0]["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
    assert ours[0]["Filter"] == {"Prefix": "videos/"}
    assert "unchanged" in run_lifecycle(settings, days=30, dry_run=False)[0]


def test_lifecycle_transition_on_a_store_without_it_says_what_to_set(
    seaweed: SeaweedServer,
) -> None:
    # SeaweedFS implements no storage-class transitions: the command explains the fix.
    settings = s3_settings(seaweed)
    with pytest.raises(UnavailableError, match="archive_storage_class"):
        run_lifecycle(settings, days=30, dry_run=False)


def test_the_fixture_server_really_checks_signatures(seaweed: SeaweedServer) -> None:
    bad = s3_client(seaweed.endpoint, secret="not-the-secret")
    with pytest.raises(Exception, match="SignatureDoesNotMatch"):
        bad.put_object(Bucket=S3_BUCKET, Key="videos/x", Body=b"1")
