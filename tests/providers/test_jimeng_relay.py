"""Jimeng relay adapter (blocking jimeng-free-api endpoint) against the relay emulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

from app.config import JimengSettings
from app.errors import (
    AppError,
    ContentRejectedError,
    ProviderAuthError,
    ProviderError,
    ProviderOutcomeUnknownError,
    ValidationError,
)
from app.providers.base import JobState
from app.providers.jimeng_relay import JimengRelayProvider
from tests.emulators.jimeng_relay import RelayState
from tests.providers.conftest import FAST, RELAY_SESSION, Emulator, download, request, wait_terminal

pytestmark = pytest.mark.anyio


@pytest.fixture
async def relay(
    relay_emu: Emulator[RelayState], http: httpx.AsyncClient
) -> AsyncIterator[JimengRelayProvider]:
    provider = make(relay_emu, http)
    yield provider
    await provider.aclose()


def make(
    emu: Emulator[RelayState], http: httpx.AsyncClient, *, session: str = RELAY_SESSION, **kw: Any
) -> JimengRelayProvider:
    # No early-answer window unless a test asks: submit returns at once, as these tests expect.
    settings = JimengSettings.model_validate({**FAST, "relay_answer_window_s": 0, **kw})
    return JimengRelayProvider(http=http, settings=settings, base_url=emu.url, session_id=session)


async def test_happy_path(
    relay: JimengRelayProvider, relay_emu: Emulator[RelayState], mp4_bytes: bytes
) -> None:
    job = await relay.submit(request(duration_ms=9000, aspect_ratio="1:1"))
    assert job == "relay-vt_test0001"
    running = await relay.poll(job)
    assert running.state is JobState.RUNNING and running.poll_after_s is not None
    status = await wait_terminal(relay, job)
    assert status.state is JobState.SUCCEEDED
    assert await download(relay, job, status) == mp4_bytes
    assert relay_emu.state.bodies == [
        {
            "model": "jimeng-video-3.0",
            "prompt": "a red fox running in snow",
            "ratio": "1:1",
            "resolution": "720p",
            "duration": 10,
        }
    ]


async def test_submitting_the_same_task_twice_generates_once(
    relay: JimengRelayProvider, relay_emu: Emulator[RelayState]
) -> None:
    first = await relay.submit(request())
    second = await relay.submit(request())
    assert first == second
    await wait_terminal(relay, first)
    assert relay_emu.state.creates == 1


async def test_first_and_last_frame_go_in_file_paths(
    relay: JimengRelayProvider, relay_emu: Emulator[RelayState]
) -> None:
    req = request(image_url="https://img.test/a.png", last_frame_url="https://img.test/b.png")
    await wait_terminal(relay, await relay.submit(req))
    assert relay_emu.state.bodies[0]["file_paths"] == [
        "https://img.test/a.png",
        "https://img.test/b.png",
    ]


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (-2000, ValidationError),
        (-2002, ProviderAuthError),
        (-2006, ContentRejectedError),
        (-2008, ProviderError),
        (-2009, ProviderAuthError),
    ],
)
async def test_http_200_error_bodies_are_translated(
    relay: JimengRelayProvider, relay_emu: Emulator[RelayState], code: int, kind: type[AppError]
) -> None:
    relay_emu.state.fail_next(code)
    status = await wait_terminal(relay, await relay.submit(request()))
    assert status.state is JobState.FAILED and type(status.error) is kind
    assert str(code) in status.error.message


async def test_trigger_words_reach_the_relay_checks(
    relay: JimengRelayProvider, relay_emu: Emulator[RelayState]
) -> None:
    blocked = await wait_terminal(relay, await relay.submit(request(prompt="BLOCKED_INPUT")))
    assert isinstance(blocked.error, ContentRejectedError)


async def test_an_unknown_session_is_a_provider_auth_error_without_the_session(
    relay_emu: Emulator[RelayState], http: httpx.AsyncClient
) -> None:
    relay = make(relay_emu, http, session="stale-session-777")
    status = await wait_terminal(relay, await relay.submit(request()))
    assert isinstance(status.error, ProviderAuthError)
    assert "stale-session-777" not in status.error.message


async def test_a_job_unknown_after_a_restart_fails_retryably_without_resubmitting(
    relay: JimengRelayProvider, relay_emu: Emulator[RelayState]
) -> None:
    await relay.resume("relay-vt_from_old_process", request())
    status = await relay.poll("relay-vt_from_old_process")
    assert status.state is JobState.FAILED and status.provider_status == "lost"
    assert isinstance(status.error, ProviderOutcomeUnknownError) and not status.error.retryable
    assert "restart" in status.error.message and relay_emu.state.creates == 0


async def test_the_long_answer_has_an_explicit_timeout(
    relay_emu: Emulator[RelayState], http: httpx.AsyncClient
) -> None:
    relay_emu.state.generate_s = 2.0
    relay = make(relay_emu, http, relay_timeout_s=0.2)
    status = await wait_terminal(relay, await relay.submit(request()))
    # The relay may still finish (and charge): the outcome is unknown, and it says when.
    assert isinstance(status.error, ProviderOutcomeUnknownError)
    assert "relay_timeout_s" in status.error.message and "UTC" in status.error.message
    assert relay_emu.state.creates == 1
    await relay.aclose()


async def test_a_proxy_5xx_is_not_retried_because_generation_is_paid(
    relay: JimengRelayProvider, relay_emu: Emulator[RelayState]
) -> None:
    relay_emu.state.fail_next(status=502, times=2)
    status = await wait_terminal(relay, await relay.submit(request()))
    assert status.state is JobState.FAILED and status.error is not None and status.error.retryable
    assert relay_emu.state.faults.pending() == 1


async def test_429_is_retried(relay: JimengRelayProvider, relay_emu: Emulator[RelayState]) -> None:
    relay_emu.state.fail_next(status=429, retry_after=0.01)
    status = await wait_terminal(relay, await relay.submit(request()))
    assert status.state is JobState.SUCCEEDED and relay_emu.state.creates == 1


async def test_a_success_that_cannot_be_read_may_have_been_paid(
    relay: JimengRelayProvider, relay_emu: Emulator[RelayState]
) -> None:
    relay_emu.state.fail_next(status=200, garbage=True)
    status = await wait_terminal(relay, await relay.submit(request()))
    assert isinstance(status.error, ProviderOutcomeUnknownError) and not status.error.retryable


async def test_cancel_stops_the_blocking_call(
    relay_emu: Emulator[RelayState], http: httpx.AsyncClient
) -> None:
    relay_emu.state.generate_s = 30
    relay = make(relay_emu, http)
    job = await relay.submit(request())
    for _ in range(200):  # let the call reach the relay before hanging up
        if relay_emu.state.in_flight:
            break
        await anyio.sleep(0.01)
    await relay.cancel(job)
    assert (await relay.poll(job)).state is JobState.CANCELLED
    for _ in range(200):
        if relay_emu.state.disconnected:
            break
        await anyio.sleep(0.01)
    assert relay_emu.state.disconnected == 1 and relay_emu.state.in_flight == 0


async def test_check_reaches_the_relay(
    relay: JimengRelayProvider, relay_emu: Emulator[RelayState]
) -> None:
    await relay.check()
