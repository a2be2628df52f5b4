"""Fixtures for task tests that cross processes: an Ark emulator with timings of the test's
choosing, and the settings that point a gateway at it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.emulators import ark
from tests.emulators.faults import Videos
from tests.emulators.server import serve_in_thread
from tests.providers.conftest import ARK_KEY, Emulator, mp4_bytes  # noqa: F401 (fixture)

ArkFactory = Callable[..., contextlib.AbstractContextManager[Emulator[ark.ArkState]]]


@pytest.fixture
def ark_server(mp4_bytes: bytes) -> ArkFactory:  # noqa: F811
    """``ark_server(queued_s=…, running_s=…)`` → an Ark emulator on a loopback port."""

    @contextlib.contextmanager
    def start(**timings: float) -> Iterator[Emulator[ark.ArkState]]:
        state = ark.ArkState(api_key=ARK_KEY, videos=Videos(mp4_bytes), **timings)
        with serve_in_thread(ark.create_app(state)) as url:
            yield Emulator(url, state)

    return start


def seedance_overrides(url: str, **seedance: Any) -> dict[str, dict[str, Any]]:
    """Gateway settings with Seedance (the emulator at ``url``) as the default provider."""
    return {
        "providers": {"default": "seedance"},
        "seedance": {
            "base_url": url,
            "api_key": ARK_KEY,
            "retries": 2,
            "backoff_base_s": 0.01,
            "backoff_max_s": 0.05,
            **seedance,
        },
    }
