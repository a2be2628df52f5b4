"""Seedance (Ark) adapter against the Ark emulator."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.errors import (
    ContentRejectedError,
    ProviderAuthError,
    ProviderError,
    ProviderOutcomeUnknownError,
    ProviderTimeoutError,
    ValidationError,
)
from app.providers.base import JobState
from app.providers.seedance import SeedanceProvider, nearest_duration, verify_callback
from tests.emulators.ark import ArkState
from tests.providers.conftest import (
    ARK_KEY,
    Emulator,
    download,
    request,
    seedance_settings,
    wait_terminal,
)

pytestmark = pytest.mark.anyio

PRO_10 = "doubao-seedance-1-0-pro-250528"
V20 = "doubao-seedance-2-0-260128"
REFS = [f"https://img.test/ref{i}.png" for i in range(1, 10)]


def provider(
    emu: Emulator[ArkState], http: httpx.AsyncClient, *, callback: str | None = None, **kw: Any
) -> SeedanceProvider:
    return SeedanceProvider(
        http=http, settings=seedance_settings(emu.url, **kw), callback_base_url=callback
    )


@pytest.mark.parametrize(
    ("duration_ms", "allowed", "expected"),
    [
        (5000, list(range(2, 13)), 5),
        (5400, list(range(2, 13)), 5),
        (7500, list(range(2, 13)), 8),
        (500, list(range(2, 13)), 2),
        (30000, list(range(2, 13)), 12),
        (7500, [5, 10], 10),
        (7000, [5, 10], 5),
    ],
)
def test_duration_is_the_nearest_allowed_halves_up(
    duration_ms: int, allowed: list[int], expected: int
) -> None:
    assert nearest_duration(duration_ms, allowed) == expected


async def test_plan_reports_the_effective_parameters(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    params = provider(ark_emu, http, resolution="720p").plan(
        request(duration_ms=7400, aspect_ratio="9:16", seed=42)
    )
    assert params["duration_s"] == 7 and params["duration_ms"] == 7000
    assert params["ratio"] == "9:16" and params["resolution"] == "720p" and params["seed"] == 42
    assert params["mode"] == "text_to_video" and params["fps"] == 24


@pytest.mark.parametrize(
    "changes",
    [
        {"last_frame_url": "https://img.test/last.png"},
        {"resolution": "4k"},
        {"seed": 2**32},
    ],
)
async def test_plan_refuses_what_ark_cannot_do(
    changes: dict[str, Any], ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    with pytest.raises(ValidationError):
        provider(ark_emu, http).plan(request(**changes))


async def test_adaptive_ratio_without_an_image_only_where_the_model_chooses_from_the_prompt(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    adaptive = request(options={"ratio": "adaptive"})
    with pytest.raises(ValidationError, match="adaptive"):
        provider(ark_emu, http, model_t2v=PRO_10).plan(adaptive)
    seedance = provider(ark_emu, http)  # 1.5 pro: picks the ratio from the prompt
    await seedance.submit(adaptive)
    assert ark_emu.state.create_bodies[0]["ratio"] == "adaptive"


async def test_text_to_video_happy_path(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient, mp4_bytes: bytes
) -> None:
    seedance = provider(ark_emu, http)
    job = await seedance.submit(request(seed=7, options={"camera_fixed": True}))
    assert job.startswith("cgt-")
    status = await wait_terminal(seedance, job)
    assert status.state is JobState.SUCCEEDED and status.provider_status == "succeeded"
    assert await download(seedance, job, status) == mp4_bytes
    body = ark_emu.state.create_bodies[0]
    assert body["content"] == [{"type": "text", "text": "a red fox running in snow"}]
    assert body["model"] == "doubao-seedance-1-5-pro-251215"
    assert body["duration"] == 5 and body["ratio"] == "16:9" and body["seed"] == 7
    assert body["camera_fixed"] is True and body["watermark"] is False
    assert None not in body.values() and "--" not in body["content"][0]["text"]
    assert "callback_url" not in body


async def test_the_video_comes_through_the_download_client_and_nothing_else_does(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient, mp4_bytes: bytes
) -> None:
    fetched: list[str] = []

    async def note(request: httpx.Request) -> None:
        fetched.append(request.url.path)

    async with httpx.AsyncClient(event_hooks={"request": [note]}) as downloads:
        seedance = SeedanceProvider(
            http=http, settings=seedance_settings(ark_emu.url), downloads=downloads
        )
        job = await seedance.submit(request())
        status = await wait_terminal(seedance, job)
        assert await download(seedance, job, status) == mp4_bytes
    assert len(fetched) == 1 and fetched[0].startswith("/videos/")


async def test_first_and_last_frame(ark_emu: Emulator[ArkState], http: httpx.AsyncClient) -> None:
    seedance = provider(ark_emu, http, model_i2v="doubao-seedance-1-0-lite-i2v-250428")
    req = request(image_url="https://img.test/a.png", last_frame_url="https://img.test/b.png")
    assert seedance.plan(req)["mode"] == "first_last_frame"
    job = await seedance.submit(req)
    assert (await wait_terminal(seedance, job)).state is JobState.SUCCEEDED
    body = ark_emu.state.create_bodies[0]
    assert body["model"] == "doubao-seedance-1-0-lite-i2v-250428"
    roles = [(c["image_url"]["url"], c["role"]) for c in body["content"] if c["type"] != "text"]
    assert roles == [
        ("https://img.test/a.png", "first_frame"),
        ("https://img.test/b.png", "last_frame"),
    ]


async def test_input_moderation_is_a_content_rejection(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    with pytest.raises(ContentRejectedError) as info:
        await provider(ark_emu, http).submit(request(prompt="BLOCKED_INPUT scene"))
    assert "InputTextSensitiveContentDetected" in info.value.message
    assert not info.value.retryable and ark_emu.state.creates == 0


async def test_image_moderation_is_a_content_rejection(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    with pytest.raises(ContentRejectedError, match="InputImageSensitiveContentDetected"):
        await provider(ark_emu, http).submit(request(image_url="https://img.test/blocked.png"))


async def test_invalid_parameters_carry_ark_reason(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    # The operator allowed a duration the model does not accept: Ark's reason reaches the user.
    seedance = provider(ark_emu, http, durations="[15]")
    with pytest.raises(ValidationError) as info:
        await seedance.submit(request(duration_ms=15000))
    assert "duration" in info.value.message and "InvalidParameter" in info.value.message


async def test_a_wrong_key_is_a_provider_auth_error_without_the_key(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    seedance = provider(ark_emu, http, api_key="ark-wrong-key-987654")
    with pytest.raises(ProviderAuthError) as info:
        await seedance.submit(request())
    assert "seedance" in info.value.message and "ark-wrong-key" not in info.value.message
    with pytest.raises(ProviderAuthError):
        await seedance.check()


async def test_a_model_not_open_is_an_operator_problem(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    with pytest.raises(ProviderAuthError, match="model_t2v"):
        await provider(ark_emu, http, model_t2v="doubao-nope").submit(request())


async def test_rate_limits_are_retried_honouring_retry_after(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    ark_emu.state.fail_next(429, times=2, retry_after=0.05)
    job = await provider(ark_emu, http).submit(request())
    assert job.startswith("cgt-") and ark_emu.state.creates == 1
    assert ark_emu.state.faults.pending() == 0


async def test_x_should_retry_false_is_final(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    ark_emu.state.fail_next(429, times=2, should_retry=False, code="QuotaExceeded")
    with pytest.raises(ProviderError) as info:
        await provider(ark_emu, http).submit(request())
    assert not info.value.retryable and "QuotaExceeded" in info.value.message
    assert ark_emu.state.faults.pending() == 1  # one attempt only


async def test_server_errors_after_retries_are_retryable(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    ark_emu.state.fail_next(500, times=4)
    with pytest.raises(ProviderError) as info:
        await provider(ark_emu, http, retries=3).submit(request())
    assert info.value.retryable and not isinstance(info.value, ProviderAuthError)
    assert ark_emu.state.faults.pending() == 0 and ark_emu.state.creates == 0


async def test_a_create_answer_that_never_came_is_not_resent(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    ark_emu.state.slow_answer_next(0.4, times=2)
    with pytest.raises(ProviderOutcomeUnknownError) as info:
        await provider(ark_emu, http, timeout_s=0.1, retries=3).submit(request())
    assert not info.value.retryable and "timed out" in info.value.message
    assert ark_emu.state.creates == 1  # sent once; the job exists


async def test_a_create_answer_that_cannot_be_read_is_an_unknown_outcome(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    ark_emu.state.fail_next(200, garbage=True)
    with pytest.raises(ProviderOutcomeUnknownError) as info:
        await provider(ark_emu, http).submit(request())
    assert not info.value.retryable and "could not be read" in info.value.message


async def test_a_slow_status_read_is_retried(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    seedance = provider(ark_emu, http, timeout_s=0.2, retries=2)
    job = await seedance.submit(request())
    ark_emu.state.slow_next(0.5, on="get")
    status = await seedance.poll(job)
    assert status.provider_status in ("queued", "running", "succeeded")


async def test_find_job_adopts_only_an_unambiguous_match(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    import datetime as dt

    seedance = provider(ark_emu, http)
    since = dt.datetime.now(dt.UTC)
    mine = await seedance.submit(request(task_id="vt_mine"))
    await seedance.submit(request(task_id="vt_other"))  # another task: another derived seed

    async def nobody(_: str) -> bool:
        return False

    assert await seedance.find_job(request(task_id="vt_mine"), since=since, is_known=nobody) == mine
    # With an explicit seed, two tasks of the same parameters cannot be told apart.
    for task_id in ("vt_a", "vt_b"):
        await seedance.submit(request(task_id=task_id, seed=7))
    found = await seedance.find_job(request(task_id="vt_a", seed=7), since=since, is_known=nobody)
    assert found is None

    async def taken(job_id: str) -> bool:
        return job_id == mine

    assert await seedance.find_job(request(task_id="vt_mine"), since=since, is_known=taken) is None


async def test_output_moderation_fails_the_job_as_content_rejected(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    seedance = provider(ark_emu, http)
    job = await seedance.submit(request(prompt="BLOCKED_OUTPUT"))
    status = await wait_terminal(seedance, job)
    assert status.state is JobState.FAILED and isinstance(status.error, ContentRejectedError)
    assert "OutputVideoSensitiveContentDetected" in status.error.message


async def test_an_expired_task_is_a_provider_timeout(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    seedance = provider(ark_emu, http)
    job = await seedance.submit(request(prompt="EXPIRE_ME"))
    status = await wait_terminal(seedance, job)
    assert status.state is JobState.FAILED and status.provider_status == "expired"
    assert isinstance(status.error, ProviderTimeoutError)


async def test_a_failed_generation_is_a_provider_error(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    seedance = provider(ark_emu, http)
    status = await wait_terminal(seedance, await seedance.submit(request(prompt="FAIL_ME")))
    assert status.state is JobState.FAILED and isinstance(status.error, ProviderError)
    assert "InternalServiceError" in status.error.message


async def test_unknown_status_words_are_in_progress(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    ark_emu.state.status_alias = {"queued": "pending", "running": "processing"}
    ark_emu.state.queued_s = 30
    seedance = provider(ark_emu, http)
    status = await seedance.poll(await seedance.submit(request()))
    assert status.state is JobState.RUNNING and status.provider_status == "pending"


async def test_poll_errors_are_translated(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    seedance = provider(ark_emu, http)
    job = await seedance.submit(request())
    ark_emu.state.fail_next(503, times=2, on="get")
    assert (await wait_terminal(seedance, job)).state is JobState.SUCCEEDED
    gone = await seedance.poll("cgt-unknown")
    assert gone.state is JobState.FAILED and gone.error is not None


async def test_cancel_deletes_a_queued_task(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    ark_emu.state.queued_s = 30
    seedance = provider(ark_emu, http)
    job = await seedance.submit(request())
    await seedance.cancel(job)
    assert ark_emu.state.deletes == [job]
    assert (await seedance.poll(job)).state is JobState.CANCELLED


async def test_cancel_of_a_running_task_is_best_effort(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    ark_emu.state.queued_s, ark_emu.state.running_s = 0, 30
    seedance = provider(ark_emu, http)
    job = await seedance.submit(request())
    await seedance.cancel(job)  # Ark refuses; no exception
    assert (await seedance.poll(job)).state is JobState.RUNNING


async def test_callback_url_is_signed_and_verifiable(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    seedance = provider(ark_emu, http, callback="https://gw.example.com/")
    await seedance.submit(request(task_id="vt_abc"))
    url = httpx.URL(ark_emu.state.create_bodies[0]["callback_url"])
    assert str(url).startswith("https://gw.example.com/v1/callbacks/seedance/vt_abc?sig=")
    settings = seedance_settings(ark_emu.url)
    assert verify_callback(settings, "vt_abc", url.params["sig"])
    assert not verify_callback(settings, "vt_other", url.params["sig"])
    assert ARK_KEY not in str(url)


async def test_broken_and_expired_downloads(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    seedance = provider(ark_emu, http)
    job = await seedance.submit(request())
    status = await wait_terminal(seedance, job)
    ark_emu.state.videos.break_next()
    with pytest.raises(ProviderError) as broken:
        await download(seedance, job, status)
    assert broken.value.retryable
    ark_emu.state.videos.expired = True
    with pytest.raises(ProviderError) as expired:
        await download(seedance, job, status)
    assert not expired.value.retryable


async def test_poll_many_reads_many_jobs_in_one_list_request(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    seedance = provider(ark_emu, http)
    ids = [await seedance.submit(request(task_id=f"vt_many{n}")) for n in range(3)]
    other = await seedance.submit(request(task_id="vt_other"))
    reads = len(ark_emu.state.status_reads)
    statuses = await seedance.poll_many([*ids, "cgt-unknown"])
    assert len(ark_emu.state.status_reads) == reads + 1 and ark_emu.state.lists == 1
    assert set(statuses) == set(ids)  # the unknown job is left out, never another one
    assert other not in statuses
    for job_id in ids:
        final = await wait_terminal(seedance, job_id)
        assert final.state is JobState.SUCCEEDED
    ended = await seedance.poll_many(ids)
    assert {s.state for s in ended.values()} == {JobState.SUCCEEDED}
    assert all(s.video_url for s in ended.values())


async def test_poll_many_sends_task_ids_as_ark_documents_them(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    sent: list[httpx.URL] = []

    async def record(request: httpx.Request) -> None:
        sent.append(request.url)

    async with httpx.AsyncClient(event_hooks={"request": [record]}) as client:
        await provider(ark_emu, client).poll_many(["cgt-a", "cgt-b"])
    [url] = sent
    assert url.params.get_list("filter.task_ids") == ["cgt-a", "cgt-b"]
    assert url.params["page_size"] == "2"


async def test_poll_many_errors_are_translated(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    ark_emu.state.fail_next(401, on="list")
    with pytest.raises(ProviderAuthError):
        await provider(ark_emu, http, retries=0).poll_many(["cgt-a"])
