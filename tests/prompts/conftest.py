"""Fixtures for the prompt tests: the LLM emulator on a real port and PromptService builders."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from app.config import Settings
from app.prompts.service import PromptService
from tests.conftest import make_settings
from tests.emulators.llm import API_KEY, MODEL, LlmEmulator
from tests.emulators.server import serve_in_thread


class LlmServer:
    def __init__(self, emulator: LlmEmulator, base_url: str) -> None:
        self.emulator = emulator
        self.base_url = base_url

    def settings(self, **llm: Any) -> dict[str, Any]:
        """``[llm]`` overrides pointing at the emulator (short timeout, no SDK retries)."""
        return {
            "base_url": self.base_url + "/v1",
            "api_key": API_KEY,
            "model": MODEL,
            "timeout_s": 5,
            "max_retries": 0,
            **llm,
        }


@pytest.fixture(scope="module")
def llm_server() -> Iterator[LlmServer]:
    emulator = LlmEmulator()
    with serve_in_thread(emulator.app) as base_url:
        yield LlmServer(emulator, base_url)


@pytest.fixture
def llm(llm_server: LlmServer) -> Iterator[LlmServer]:
    """The module's emulator, with an empty script and no recorded requests."""
    llm_server.emulator.reset()
    yield llm_server
    llm_server.emulator.reset()


ServiceFactory = Callable[..., Any]


@pytest.fixture
async def service_factory(tmp_path: Path) -> AsyncIterator[ServiceFactory]:
    """``service_factory({"llm": {...}, "prompts": {...}})`` → a PromptService (closed after)."""
    made: list[PromptService] = []

    def build(overrides: Mapping[str, Mapping[str, Any]] | None = None) -> PromptService:
        settings: Settings = make_settings(tmp_path / "data", overrides)
        service = PromptService.from_settings(settings)
        made.append(service)
        return service

    yield build
    for service in made:
        await service.aclose()
