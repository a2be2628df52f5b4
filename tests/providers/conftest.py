"""Fixtures for the provider adapters: emulators on loopback, a tiny real MP4, fast settings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx
import pytest

from app.config import JimengSettings, SeedanceSettings
from app.providers.base import GenerationRequest, JobState, JobStatus, VideoProvider
from app.providers.http import provider_client
from app.tls import tls_context
from tests.emulators import ark, jimeng_official, jimeng_relay
from tests.emulators.faults import Videos
from tests.emulators.serve import pattern_mp4
from tests.emulators.server import serve_in_thread

S = TypeVar("S")

ARK_KEY = "ark-test-key-0123456789"
JIMENG_AK = "AKLTtestaccesskey"
JIMENG_SK = "dGVzdHNlY3JldGtleQ=="
RELAY_SESSION = "relay-session-1"
FAST = {"retries": 3, "backoff_base_s": 0.01, "backoff_max_s": 0.05}


@dataclass
class Emulator(Generic[S]):
    url: str
    state: S


@pytest.fixture(scope="session")
def mp4_bytes() -> bytes:
    """A real, tiny H.264 MP4 (1 s, 320x240, 8 fps)."""
    return pattern_mp4()


@pytest.fixture
def ark_emu(mp4_bytes: bytes) -> Iterator[Emulator[ark.ArkState]]:
    state = ark.ArkState(api_key=ARK_KEY, videos=Videos(mp4_bytes), queued_s=0.05, running_s=0.1)
    with serve_in_thread(ark.create_app(state)) as url:
        yield Emulator(url, state)


@pytest.fixture
def jimeng_emu(mp4_bytes: bytes) -> Iterator[Emulator[jimeng_official.JimengOfficialState]]:
    state = jimeng_official.JimengOfficialState(
        access_key=JIMENG_AK,
        secret_key=JIMENG_SK,
        videos=Videos(mp4_bytes),
        queued_s=0.05,
        running_s=0.1,
    )
    with serve_in_thread(jimeng_official.create_app(state)) as url:
        yield Emulator(url, state)


@pytest.fixture
def relay_emu(mp4_bytes: bytes) -> Iterator[Emulator[jimeng_relay.RelayState]]:
    state = jimeng_relay.RelayState(
        sessions=frozenset({RELAY_SESSION}), videos=Videos(mp4_bytes), generate_s=0.15
    )
    with serve_in_thread(jimeng_relay.create_app(state)) as url:
        yield Emulator(url, state)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """The client the gateway gives its providers (asyncio's transports, a small pool)."""
    async with provider_client(tls_context()) as client:
        yield client


def seedance_settings(url: str, **changes: Any) -> SeedanceSettings:
    return SeedanceSettings.model_validate({"base_url": url, "api_key": ARK_KEY, **FAST, **changes})


def jimeng_settings(url: str, **changes: Any) -> JimengSettings:
    values = {
        "mode": "official",
        "base_url": url,
        "access_key": JIMENG_AK,
        "secret_key": JIMENG_SK,
        **FAST,
        **changes,
    }
    return JimengSettings.model_validate(values)


def request(**changes: Any) -> GenerationRequest:
    values: dict[str, Any] = {"task_id": "vt_test0001", "prompt": "a red fox running in snow"}
    values.update(changes)
    return GenerationRequest(**values)


async def wait_terminal(provider: VideoProvider, job_id: str, *, polls: int = 400) -> JobStatus:
    """Poll like the pipeline does (bounded, never timed) until the job ends."""
    import anyio

    seen: list[str] = []
    for _ in range(polls):
        status = await provider.poll(job_id)
        seen.append(status.provider_status)
        if status.state.is_terminal:
            return status
        await anyio.sleep(0.02)
    raise AssertionError(f"job {job_id} never ended; statuses seen: {seen[-5:]}")


async def download(provider: VideoProvider, job_id: str, status: JobStatus) -> bytes:
    assert status.state is JobState.SUCCEEDED
    chunks = []
    async with provider.open_video(job_id, status) as stream:
        async for chunk in stream:
            chunks.append(chunk)
        assert stream.size == sum(len(c) for c in chunks)
    return b"".join(chunks)
