"""Jimeng official (Volcengine visual API) adapter against the signature-verifying emulator."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
import pytest

from app.config import load_settings
from app.errors import (
    ContentRejectedError,
    ProviderAuthError,
    ProviderError,
    ProviderOutcomeUnknownError,
    ProviderTimeoutError,
    ValidationError,
)
from app.providers import volc_sign
from app.providers.base import JobState
from app.providers.jimeng import frames_for, relay_base_url, resolve_mode
from app.providers.jimeng_official import JimengOfficialProvider
from tests.emulators.jimeng_official import JimengOfficialState
from tests.providers.conftest import (
    JIMENG_AK,
    JIMENG_SK,
    Emulator,
    download,
    jimeng_settings,
    request,
    wait_terminal,
)

pytestmark = pytest.mark.anyio


def provider(
    emu: Emulator[JimengOfficialState], http: httpx.AsyncClient, **kw: Any
) -> JimengOfficialProvider:
    return JimengOfficialProvider(http=http, settings=jimeng_settings(emu.url, **kw))


@pytest.mark.parametrize(
    ("duration_ms", "frames"), [(500, 121), (5000, 121), (7500, 121), (7501, 241), (12000, 241)]
)
def test_frames_from_duration(duration_ms: int, frames: int) -> None:
    assert frames_for(duration_ms) == frames


async def test_text_to_video_happy_path(
    jimeng_emu: Emulator[JimengOfficialState], http: httpx.AsyncClient, mp4_bytes: bytes
) -> None:
    jimeng = provider(jimeng_emu, http)
    req = request(duration_ms=10000, aspect_ratio="9:16")
    assert jimeng.plan(req)["frames"] == 241
    job = await jimeng.submit(req)
    assert job.startswith("jimeng_t2v_v30:")
    status = await wait_terminal(jimeng, job)
    assert status.state is JobState.SUCCEEDED and status.provider_status == "done"
    assert await download(jimeng, job, status) == mp4_bytes
    body = jimeng_emu.state.submit_bodies[0]
    assert body == {
        "req_key": "jimeng_t2v_v30",
        "prompt": "a red fox running in snow",
        "seed": -1,
        "frames": 241,
        "aspect_ratio": "9:16",
    }
    assert jimeng_emu.state.signature_failures == []


async def test_image_to_video_first_and_tail(
    jimeng_emu: Emulator[JimengOfficialState], http: httpx.AsyncClient
) -> None:
    jimeng = provider(jimeng_emu, http)
    req = request(image_url="https://img.test/a.png", last_frame_url="https://img.test/b.png")
    job = await jimeng.submit(req)
    assert job.startswith("jimeng_i2v_first_tail_v30:")
    assert (await wait_terminal(jimeng, job)).state is JobState.SUCCEEDED
    body = jimeng_emu.state.submit_bodies[0]
    assert body["image_urls"] == ["https://img.test/a.png", "https://img.test/b.png"]
    assert "aspect_ratio" not in body


async def test_a_wrong_secret_is_a_provider_auth_error(
    jimeng_emu: Emulator[JimengOfficialState], http: httpx.AsyncClient
) -> None:
    jimeng = provider(jimeng_emu, http, secret_key="d3Jvbmctc2VjcmV0LWtleQ==")
    with pytest.raises(ProviderAuthError) as info:
        await jimeng.submit(request())
    assert "SignatureDoesNotMatch" in info.value.message and "d3Jvbmc" not in info.value.message
    assert jimeng_emu.state.signature_failures == ["signature"]
    with pytest.raises(ProviderAuthError):
        await jimeng.check()


async def test_an_unknown_access_key_is_a_provider_auth_error(
    jimeng_emu: Emulator[JimengOfficialState], http: httpx.AsyncClient
) -> None:
    with pytest.raises(ProviderAuthError, match="InvalidAccessKey"):
        await provider(jimeng_emu, http, access_key="AKLTother").submit(request())


def _signed(emu_url: str, body: bytes, x_date: str) -> dict[str, str]:
    return volc_sign.sign_headers(
        method="POST",
        host=httpx.URL(emu_url).netloc.decode(),
        query={"Action": "CVSync2AsyncGetResult", "Version": "2022-08-31"},
        body=body,
        access_key=JIMENG_AK,
        secret_key=JIMENG_SK,
        region="cn-north-1",
        service="cv",
        x_date=x_date,
    )


@pytest.mark.parametrize(("skew_s", "accepted"), [(-240, True), (-360, False), (360, False)])
async def test_the_emulator_allows_five_minutes_of_clock_skew(
    jimeng_emu: Emulator[JimengOfficialState], http: httpx.AsyncClient, skew_s: int, accepted: bool
) -> None:
    body = json.dumps({"req_key": "jimeng_t2v_v30", "task_id": "1"}).encode()
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=skew_s)
    headers = _signed(jimeng_emu.url, body, volc_sign.format_x_date(when))
    response = await http.post(
        f"{jimeng_emu.url}/?Action=CVSync2AsyncGetResult&Version=2022-08-31",
        content=body,
        headers=headers,
    )
    if accepted:
        assert response.json()["code"] == 10000
    else:
        assert response.json()["ResponseMetadata"]["Error"]["Code"] == "InvalidTimestamp"


async def test_the_emulator_checks_the_payload_hash(
    jimeng_emu: Emulator[JimengOfficialState], http: httpx.AsyncClient
) -> None:
    body = json.dumps({"req_key": "jimeng_t2v_v30", "task_id": "1"}).encode()
    headers = _signed(jimeng_emu.url, body, volc_sign.format_x_date(dt.datetime.now(dt.UTC)))
    response = await http.post(
        f"{jimeng_emu.url}/?Action=CVSync2AsyncGetResult&Version=2022-08-31",
        content=body + b" ",
        headers=headers,
    )
    assert response.status_code == 401
    assert jimeng_emu.state.signature_failures == ["payload hash"]


async def test_input_moderation_is_a_content_rejection(
    jimeng_emu: Emulator[JimengOfficialState], http: httpx.AsyncClient
) -> None:
    with pytest.raises(ContentRejectedError, match="50411") as info:
        await provider(jimeng_emu, http).submit(request(prompt="BLOCKED_INPUT"))
    assert not info.value.retryable and jimeng_emu.state.submits == 0


async def test_output_moderation_fails_the_job_retryably(
    jimeng_emu: Emulator[JimengOfficialState], http: httpx.AsyncClient
) -> None:
    jimeng = provider(jimeng_emu, http)
    status = await wait_terminal(jimeng, await jimeng.submit(request(prompt="BLOCKED_OUTPUT")))
    assert status.state is JobState.FAILED and isinstance(status.error, ContentRejectedError)
    assert status.error.retryable and "50511" in status.error.message


async def test_the_prompt_limit_is_enforced_before_any_call(
    jimeng_emu: Emulator[JimengOfficialState], http: httpx.AsyncClient
) -> None:
    with pytest.raises(ValidationError, match="800"):
        await provider(jimeng_emu, http).submit(request(prompt="x" * 801))
    assert jimeng_emu.state.submits == 0


@pytest.mark.parametrize("code", [50429, 50430, 50500, 100018])
async def test_busy_and_internal_errors_are_retried(
    jimeng_emu: Emulator[JimengOfficialState], http: httpx.AsyncClient, code: int
) -> None:
    jimeng_emu.state.fail_next(code, times=2)
    job = await provider(jimeng_emu, http).submit(request())
    assert job and jimeng_emu.state.submits == 1


async def test_busy_after_all_retries_is_retryable_with_retry_after(
    jimeng_emu: Emulator[JimengOfficialState], http: httpx.AsyncClient
) -> None:
    jimeng_emu.state.fail_next(50430, times=3, retry_after=0.01)
    with pytest.raises(ProviderError) as info:
        await provider(jimeng_emu, http, retries=2).submit(request())
    assert info.value.retryable and info.value.retry_after_s == pytest.approx(0.01)


async def test_same_code_in_http_200_is_also_retried(
    jimeng_emu: Emulator[JimengOfficialState], http: httpx.AsyncClient
) -> None:
    jimeng_emu.state.fail_next(50500, status=200)
    assert await provider(jimeng_emu, http).submit(request())


async def test_a_submit_answer_that_cannot_be_read_may_have_made_a_job(
    jimeng_emu: Emulator[JimengOfficialState], http: httpx.AsyncClient
) -> None:
    jimeng_emu.state.fail_next(50500, status=200, garbage=True)
    with pytest.raises(ProviderOutcomeUnknownError) as info:
        await provider(jimeng_emu, http, retries=3).submit(request())
    assert not info.value.retryable and jimeng_emu.state.submits == 0  # the fault ate it: sent once


async def test_a_garbage_answer_to_a_status_read_is_retryable(
    jimeng_emu: Emulator[JimengOfficialState], http: httpx.AsyncClient
) -> None:
    jimeng = provider(jimeng_emu, http, retries=0)
    job = await jimeng.submit(request())
    jimeng_emu.state.fail_next(50500, on="get", status=200, garbage=True)
    with pytest.raises(ProviderError) as info:
        await jimeng.poll(job)
    assert info.value.retryable


async def test_expired_and_unknown_tasks_fail(
    jimeng_emu: Emulator[JimengOfficialState], http: httpx.AsyncClient
) -> None:
    jimeng = provider(jimeng_emu, http)
    expired = await wait_terminal(jimeng, await jimeng.submit(request(prompt="EXPIRE_ME")))
    assert expired.state is JobState.FAILED and isinstance(expired.error, ProviderTimeoutError)
    unknown = await jimeng.poll("jimeng_t2v_v30:123")
    assert unknown.state is JobState.FAILED and unknown.provider_status == "not_found"


async def test_unknown_status_words_are_in_progress(
    jimeng_emu: Emulator[JimengOfficialState], http: httpx.AsyncClient
) -> None:
    jimeng_emu.state.status_alias = {"in_queue": "waiting"}
    jimeng_emu.state.queued_s = 30
    jimeng = provider(jimeng_emu, http)
    status = await jimeng.poll(await jimeng.submit(request()))
    assert status.state is JobState.RUNNING and status.provider_status == "waiting"


def test_mode_and_relay_url_from_seed_config() -> None:
    seed = load_settings(
        None,
        environ={},
        overrides={
            "video_api": {"cookie": "sessionid-abc"},
            "DEFAULT": {"image_generation_url": "https://jimeng.example.com/v1/images/generations"},
        },
    )
    assert resolve_mode(seed) == "relay"
    assert relay_base_url(seed) == "https://jimeng.example.com"
    keys = load_settings(
        None, environ={}, overrides={"jimeng": {"access_key": "AKLTx", "secret_key": "c2Vj"}}
    )
    assert resolve_mode(keys) == "official"
    assert resolve_mode(load_settings(None, environ={})) is None
    forced = load_settings(None, environ={}, overrides={"jimeng": {"mode": "official"}})
    assert resolve_mode(forced) is None
