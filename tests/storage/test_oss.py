"""The ``oss`` backend beyond the contract: settings, signing versions, URLs, CRC64, failures,
readiness messages and lifecycle, against the OSS emulator driven by real ``oss2``."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import oss2
import pytest
from oss2.credentials import StaticCredentialsProvider

from app.config import ConfigError, Settings, load_settings
from app.errors import UnavailableError
from app.storage.base import new_object_key
from app.storage.lifecycle import run_lifecycle
from app.storage.oss import OssStorage
from app.storage.registry import build_storage
from tests.emulators.oss import OssEmulator
from tests.emulators.server import free_port
from tests.storage.conftest import (
    OSS_BUCKET,
    OSS_KEY_ID,
    OSS_REGION,
    OSS_SECRET,
    MiB,
    deps_for,
    oss_settings,
)

pytestmark = pytest.mark.anyio


async def stream(data: bytes, chunk: int = 100_000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), chunk):
        yield data[start : start + chunk]


def make(emulator: OssEmulator, tmp_path: Path, **sections: dict[str, object]) -> OssStorage:
    return OssStorage.from_settings(oss_settings(emulator, **sections), deps_for(tmp_path))


# -- settings -----------------------------------------------------------------------------------
SEED_INI = """\
[common]
video_output_path = ./videos
region = oss-cn-beijing
secret_id = LTAI5tSeedKeyId
secret_key = seed-secret-value-123
bucket = my-videos
endpoint = https://oss-cn-beijing.aliyuncs.com
"""


def test_the_seeds_common_section_selects_and_configures_oss(tmp_path: Path) -> None:
    ini = tmp_path / "config.ini"
    ini.write_text(SEED_INI)
    settings = load_settings(ini, environ={})
    storage = build_storage(settings, deps_for(tmp_path))
    assert isinstance(storage, OssStorage)
    assert storage.bucket_name == "my-videos"
    assert storage.endpoint == "https://oss-cn-beijing.aliyuncs.com"
    assert storage.region == "cn-beijing"  # "oss-" prefix dropped for V4 signing
    # The seed's URL was https://my-videos.https://oss-…; the public form strips the scheme.
    assert storage.public_base() == "https://my-videos.oss-cn-beijing.aliyuncs.com"


def test_oss_section_overrides_common_key_by_key(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {
            "storage": {"backend": "oss"},
            "common": {
                "endpoint": "oss-cn-hangzhou.aliyuncs.com",
                "bucket": "seed-bucket",
                "secret_id": "seed-id-value",
                "secret_key": "seed-secret-value",
            },
            "oss": {"bucket": "other-bucket"},
        }
    )
    storage = OssStorage.from_settings(settings, deps_for(tmp_path))
    assert storage.bucket_name == "other-bucket"
    assert storage.endpoint == "https://oss-cn-hangzhou.aliyuncs.com"  # scheme added
    assert storage.region == "cn-hangzhou"  # derived from the endpoint


def test_missing_keys_are_named(tmp_path: Path) -> None:
    settings = Settings.model_validate({"storage": {"backend": "oss"}, "oss": {"bucket": "b"}})
    with pytest.raises(ConfigError, match=r"\[oss\] endpoint.*\[oss\] secret_id.*\[common\]"):
        OssStorage.from_settings(settings, deps_for(tmp_path))


def test_region_contradicting_the_endpoint_is_refused(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {
            "storage": {"backend": "oss"},
            "oss": {
                "endpoint": "https://oss-cn-beijing.aliyuncs.com",
                "region": "oss-cn-hangzhou",
                "bucket": "b-1",
                "secret_id": "some-id-value",
                "secret_key": "some-secret-value",
            },
        }
    )
    with pytest.raises(ConfigError, match="does not match the endpoint"):
        OssStorage.from_settings(settings, deps_for(tmp_path))


def test_v4_needs_a_region_unless_v1(tmp_path: Path) -> None:
    base = {
        "endpoint": "https://oss.example.internal",
        "bucket": "b-1",
        "secret_id": "some-id-value",
        "secret_key": "some-secret-value",
    }
    with pytest.raises(ConfigError, match="region is required"):
        OssStorage.from_settings(Settings.model_validate({"oss": base}), deps_for(tmp_path))
    v1 = Settings.model_validate({"oss": {**base, "signature_version": "v1"}})
    assert OssStorage.from_settings(v1, deps_for(tmp_path)).region is None


def test_placeholder_secrets_are_refused() -> None:
    with pytest.raises(Exception, match="placeholder"):
        Settings.model_validate({"common": {"secret_id": "your_secret_id"}})


# -- signing ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("version", "header", "query"), [("v4", "v4", "v4-url"), ("v1", "v1", "v1-url")]
)
async def test_both_signature_versions_are_accepted_by_a_checking_server(
    oss_emulator: OssEmulator, tmp_path: Path, version: str, header: str, query: str
) -> None:
    storage = make(oss_emulator, tmp_path, oss={"signature_version": version})
    data = os.urandom(2 * MiB + 5)
    key = new_object_key()
    await storage.put(key, stream(data), size=len(data))
    async with httpx.AsyncClient() as http:
        response = await http.get(await storage.url(key, expires_s=60))
    assert response.content == data
    kinds = {r.auth for r in oss_emulator.requests}
    assert kinds == {header, query}
    await storage.aclose()


async def test_wrong_secret_is_refused_with_signature_does_not_match(
    oss_emulator: OssEmulator, tmp_path: Path
) -> None:
    storage = make(oss_emulator, tmp_path, oss={"secret_key": "a-wrong-secret-value"})
    with pytest.raises(UnavailableError) as info:
        await storage.check()
    message = info.value.message
    assert "SignatureDoesNotMatch" in message
    assert "secret_key" in message
    assert "a-wrong-secret-value" not in message and OSS_SECRET not in message
    assert info.value.status_code == 503
    with pytest.raises(UnavailableError, match="refused the credentials"):
        await storage.put(new_object_key(), stream(b"x"))
    await storage.aclose()


async def test_unknown_key_id_and_missing_bucket_are_explained(
    oss_emulator: OssEmulator, tmp_path: Path
) -> None:
    unknown = make(oss_emulator, tmp_path, oss={"secret_id": "LTAI-nobody"})
    with pytest.raises(UnavailableError, match="InvalidAccessKeyId"):
        await unknown.check()
    missing = make(oss_emulator, tmp_path, oss={"bucket": "no-such-bucket"})
    with pytest.raises(UnavailableError, match="does not exist"):
        await missing.check()
    await unknown.aclose()
    await missing.aclose()


async def test_unreachable_endpoint_is_reported(tmp_path: Path, oss_emulator: OssEmulator) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    storage = make(oss_emulator, tmp_path, oss={"endpoint": closed, "connect_timeout_s": 2})
    with pytest.raises(UnavailableError, match="unreachable"):
        await storage.check()
    await storage.aclose()


async def test_tampered_or_expired_signed_urls_are_refused(oss_emulator: OssEmulator) -> None:
    # Straight oss2, so the test is about the server's checks, which the contract relies on.
    auth = oss2.ProviderAuthV4(StaticCredentialsProvider(OSS_KEY_ID, OSS_SECRET))
    bucket = oss2.Bucket(auth, oss_emulator.endpoint, OSS_BUCKET, region=OSS_REGION)
    bucket.put_object("videos/t.mp4", b"data")
    url = bucket.sign_url("GET", "videos/t.mp4", 60, slash_safe=True)
    async with httpx.AsyncClient() as http:
        assert (await http.get(url)).status_code == 200
        flipped = url[:-1] + ("0" if url[-1] != "0" else "1")
        response = await http.get(flipped)
        assert response.status_code == 403
        assert "<Code>SignatureDoesNotMatch</Code>" in response.text
        longer = url.replace("x-oss-expires=60", "x-oss-expires=600")
        assert (await http.get(longer)).status_code == 403
    oss_emulator.clock = lambda: time.time() + 61
    try:
        async with httpx.AsyncClient() as http:
            response = await http.get(url)
        assert response.status_code == 403
        assert "expired" in response.text
    finally:
        oss_emulator.clock = time.time


# -- uploads ------------------------------------------------------------------------------------
async def test_multipart_keeps_parts_in_flight_bounded(
    oss_emulator: OssEmulator, tmp_path: Path
) -> None:
    oss_emulator.part_delay_s = 0.2
    storage = make(oss_emulator, tmp_path, oss={"max_parts_in_flight": 2})
    data = os.urandom(6 * MiB)
    key = new_object_key()
    stored = await storage.put(key, stream(data), size=len(data))
    assert stored.size == len(data)
    assert oss_emulator.peak_parts_in_flight == 2
    obj = oss_emulator.bucket(OSS_BUCKET).objects[key]
    assert obj.content_type == "video/mp4"
    assert obj.blob.md5.endswith("-6")  # six 1 MiB parts
    await storage.aclose()


async def test_small_video_is_a_single_put(oss_emulator: OssEmulator, tmp_path: Path) -> None:
    storage = make(oss_emulator, tmp_path, oss={"multipart_threshold_mb": 4})
    data = os.urandom(3 * MiB)
    await storage.put(new_object_key(), stream(data))
    assert [(r.method, r.params) for r in oss_emulator.requests] == [("PUT", ())]
    await storage.aclose()


@pytest.mark.parametrize("size", [10, 3 * MiB])
async def test_crc64_mismatch_fails_and_leaves_nothing(
    oss_emulator: OssEmulator, tmp_path: Path, size: int
) -> None:
    oss_emulator.corrupt_crc = True
    storage = make(oss_emulator, tmp_path)
    key = new_object_key()
    with pytest.raises(UnavailableError, match="CRC64"):
        await storage.put(key, stream(os.urandom(size)))
    bucket = oss_emulator.bucket(OSS_BUCKET)
    assert not bucket.uploads
    assert key not in bucket.objects
    await storage.aclose()


async def test_failed_part_aborts_the_upload(oss_emulator: OssEmulator, tmp_path: Path) -> None:
    oss_emulator.fail_parts = {2}
    storage = make(oss_emulator, tmp_path)
    key = new_object_key()
    with pytest.raises(UnavailableError, match="HTTP 500 InternalError"):
        await storage.put(key, stream(os.urandom(4 * MiB)))
    bucket = oss_emulator.bucket(OSS_BUCKET)
    assert not bucket.uploads
    assert key not in bucket.objects
    assert any(r.method == "DELETE" and "uploadId" in r.params for r in oss_emulator.requests)
    await storage.aclose()


# -- URLs ---------------------------------------------------------------------------------------
async def test_public_objects_get_public_read_and_plain_urls(
    oss_emulator: OssEmulator, tmp_path: Path
) -> None:
    storage = make(oss_emulator, tmp_path, storage={"public": True})
    key = new_object_key()
    await storage.put(key, stream(b"public video"))
    url = await storage.url(key, expires_s=60)
    assert url == f"{oss_emulator.endpoint}/{OSS_BUCKET}/{key}"
    assert oss_emulator.bucket(OSS_BUCKET).objects[key].acl == "public-read"
    async with httpx.AsyncClient() as http:
        assert (await http.get(url)).content == b"public video"
    await storage.aclose()


async def test_private_objects_are_not_readable_unsigned(
    oss_emulator: OssEmulator, tmp_path: Path
) -> None:
    storage = make(oss_emulator, tmp_path)
    key = new_object_key()
    await storage.put(key, stream(b"private video"))
    assert oss_emulator.bucket(OSS_BUCKET).objects[key].acl == "default"
    async with httpx.AsyncClient() as http:
        response = await http.get(f"{oss_emulator.endpoint}/{OSS_BUCKET}/{key}")
    assert response.status_code == 403
    await storage.aclose()


def test_public_url_forms(tmp_path: Path) -> None:
    base = {
        "endpoint": "https://oss-cn-shanghai.aliyuncs.com",
        "bucket": "clips",
        "secret_id": "some-id-value",
        "secret_key": "some-secret-value",
    }

    def storage(**extra: object) -> OssStorage:
        data = {"storage": {"public": True, **extra}, "oss": base}
        return OssStorage.from_settings(Settings.model_validate(data), deps_for(tmp_path))

    assert storage().public_base() == "https://clips.oss-cn-shanghai.aliyuncs.com"
    assert storage(custom_domain="video.example.com").public_base() == "https://video.example.com"
    assert (
        storage(custom_domain="http://cdn.example.com/").public_base() == "http://cdn.example.com"
    )


async def test_url_quotes_keys_and_caps_expiry(oss_emulator: OssEmulator, tmp_path: Path) -> None:
    public = make(
        oss_emulator, tmp_path, storage={"public": True, "custom_domain": "v.example.com"}
    )
    assert await public.url("videos/a b+c.mp4", expires_s=60) == (
        "https://v.example.com/videos/a%20b%2Bc.mp4"
    )
    private = make(oss_emulator, tmp_path, storage={"custom_domain": "v.example.com"})
    signed = await private.url("videos/x.mp4", expires_s=30 * 86400)
    assert signed.startswith("https://v.example.com/videos/x.mp4?")
    assert "x-oss-expires=604800" in signed
    await public.aclose()
    await private.aclose()


# -- lifecycle ----------------------------------------------------------------------------------
def lifecycle_settings(emulator: OssEmulator) -> Settings:
    return oss_settings(emulator)


def test_lifecycle_is_applied_once_and_reports_changes(oss_emulator: OssEmulator) -> None:
    settings = lifecycle_settings(oss_emulator)
    bucket = oss_emulator.bucket(OSS_BUCKET)
    dry = run_lifecycle(settings, days=30, dry_run=True)
    assert "would add" in dry[0] and bucket.lifecycle is None
    first = run_lifecycle(settings, days=30, dry_run=False)
    assert "added" in first[0] and "Archive after 30 days" in first[0]
    xml = (bucket.lifecycle or b"").decode()
    assert "<StorageClass>Archive</StorageClass>" in xml
    assert "<AbortMultipartUpload><Days>7</Days></AbortMultipartUpload>" in xml
    assert "<Prefix>videos/</Prefix>" in xml
    again = run_lifecycle(settings, days=30, dry_run=False)
    assert "unchanged" in again[0]
    assert bucket.lifecycle is not None and bucket.lifecycle.decode() == xml
    changed = run_lifecycle(settings, days=60, dry_run=False)
    assert "updated" in changed[0] and "<Days>60</Days>" in bucket.lifecycle.decode()


def test_lifecycle_keeps_other_rules(oss_emulator: OssEmulator) -> None:
    auth = oss2.ProviderAuthV4(StaticCredentialsProvider(OSS_KEY_ID, OSS_SECRET))
    bucket = oss2.Bucket(auth, oss_emulator.endpoint, OSS_BUCKET, region=OSS_REGION)
    other = oss2.models.LifecycleRule(
        "logs-expire", "logs/", status="Enabled", expiration=oss2.models.LifecycleExpiration(days=3)
    )
    bucket.put_bucket_lifecycle(oss2.models.BucketLifecycle([other]))
    run_lifecycle(lifecycle_settings(oss_emulator), days=30, dry_run=False)
    ids = sorted(rule.id for rule in bucket.get_bucket_lifecycle().rules)
    assert ids == ["logs-expire", "vgw-archive-videos"]


def test_lifecycle_with_wrong_credentials_is_a_clear_error(oss_emulator: OssEmulator) -> None:
    settings = oss_settings(oss_emulator, oss={"secret_key": "a-wrong-secret-value"})
    with pytest.raises(UnavailableError, match="refused the credentials"):
        run_lifecycle(settings, days=30, dry_run=False)


def test_lifecycle_on_local_storage_says_there_is_nothing_to_do(tmp_path: Path) -> None:
    settings = Settings.model_validate({"server": {"data_dir": str(tmp_path)}})
    lines = run_lifecycle(settings, days=30, dry_run=False)
    assert len(lines) == 1 and "local" in lines[0]
