"""The OSS emulator refuses what OSS refuses, so the backend tests that pass against it mean
something: unsigned or mis-signed requests, stale signatures, undersized parts."""

from __future__ import annotations

import time

import httpx
import oss2
import pytest
from oss2.credentials import StaticCredentialsProvider
from oss2.models import PartInfo

from tests.emulators.oss import OssEmulator
from tests.storage.conftest import OSS_BUCKET, OSS_KEY_ID, OSS_REGION, OSS_SECRET


def bucket(
    emulator: OssEmulator, *, secret: str = OSS_SECRET, region: str = OSS_REGION
) -> oss2.Bucket:
    auth = oss2.ProviderAuthV4(StaticCredentialsProvider(OSS_KEY_ID, secret))
    return oss2.Bucket(auth, emulator.endpoint, OSS_BUCKET, region=region)


def test_unsigned_requests_are_refused(oss_emulator: OssEmulator) -> None:
    response = httpx.put(f"{oss_emulator.endpoint}/{OSS_BUCKET}/videos/x.mp4", content=b"1")
    assert response.status_code == 403
    assert "<Code>AccessDenied</Code>" in response.text
    assert not oss_emulator.bucket(OSS_BUCKET).objects


@pytest.mark.parametrize("auth", ["v1", "v4"])
def test_wrong_secret_is_signature_does_not_match(oss_emulator: OssEmulator, auth: str) -> None:
    if auth == "v1":
        client = oss2.Bucket(
            oss2.Auth(OSS_KEY_ID, "wrong-secret"), oss_emulator.endpoint, OSS_BUCKET
        )
    else:
        client = bucket(oss_emulator, secret="wrong-secret")
    with pytest.raises(oss2.exceptions.ServerError) as info:
        client.put_object("videos/x.mp4", b"1")
    assert (info.value.status, info.value.code) == (403, "SignatureDoesNotMatch")


def test_wrong_region_in_the_v4_scope_is_refused(oss_emulator: OssEmulator) -> None:
    with pytest.raises(oss2.exceptions.ServerError) as info:
        bucket(oss_emulator, region="cn-shanghai").put_object("videos/x.mp4", b"1")
    assert info.value.status == 403


def test_stale_header_signatures_are_refused(oss_emulator: OssEmulator) -> None:
    oss_emulator.clock = lambda: 0.0  # the server's clock is far from the client's
    try:
        with pytest.raises(oss2.exceptions.ServerError) as info:
            bucket(oss_emulator).put_object("videos/x.mp4", b"1")
    finally:
        oss_emulator.clock = time.time
    assert info.value.code == "RequestTimeTooSkewed"


def test_parts_below_100_kib_are_too_small_except_the_last(oss_emulator: OssEmulator) -> None:
    client = bucket(oss_emulator)
    upload_id = client.init_multipart_upload("videos/m.mp4").upload_id
    parts = []
    for number, size in ((1, 50_000), (2, 10)):
        result = client.upload_part("videos/m.mp4", upload_id, number, b"p" * size)
        parts.append(PartInfo(number, result.etag, size=size, part_crc=result.crc))
    assert [p.size for p in client.list_parts("videos/m.mp4", upload_id).parts] == [50_000, 10]
    with pytest.raises(oss2.exceptions.ServerError) as info:
        client.complete_multipart_upload("videos/m.mp4", upload_id, parts)
    assert info.value.code == "EntityTooSmall"
    client.abort_multipart_upload("videos/m.mp4", upload_id)
    assert not client.list_multipart_uploads().upload_list


def test_downloads_carry_crc64_that_oss2_checks(oss_emulator: OssEmulator) -> None:
    client = bucket(oss_emulator)
    client.put_object("videos/c.mp4", b"checksummed")
    result = client.get_object("videos/c.mp4")
    assert result.read() == b"checksummed"
    assert result.server_crc is not None and result.server_crc == result.client_crc
