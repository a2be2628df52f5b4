"""Storyboards: durations a provider can make, shot prompts from the LLM (emulator, real SDK)
validated and repaired, and the deterministic split when there is no usable answer."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.errors import UnavailableError, ValidationError
from app.prompts.storyboard import (
    SYSTEM_PROMPT_ZH,
    ClipLimits,
    durations_for,
    given_storyboard,
    split_durations,
)
from app.prompts.text import prompt_language
from app.providers.base import GenerationRequest
from app.providers.cogvideox import CogVideoXProvider
from app.providers.seedance import SeedanceProvider
from tests.conftest import make_settings
from tests.emulators.llm import Reply
from tests.prompts.conftest import LlmServer, ServiceFactory

pytestmark = pytest.mark.anyio

SEEDANCE = ClipLimits(min_ms=2000, max_ms=12000, step_ms=1000)
JIMENG = ClipLimits(min_ms=5000, max_ms=10000, allowed_ms=(5000, 10000))
HARBOUR = "港口小镇从黎明到夜晚的一天"


def llm_on(llm: LlmServer, **settings: Any) -> dict[str, dict[str, Any]]:
    return {"llm": llm.settings(**settings)}


def test_durations_sum_to_the_total_in_as_few_even_shots_as_fit() -> None:
    assert split_durations(30000, SEEDANCE) == [10000, 10000, 10000]
    assert split_durations(25000, SEEDANCE) == [9000, 8000, 8000]
    assert split_durations(12000, SEEDANCE) == [12000]
    assert split_durations(25000, JIMENG) == [10000, 10000, 5000]
    assert durations_for(6, 30000, SEEDANCE) == [5000] * 6
    for total in range(2000, 120001, 1000):  # every whole-second total up to the 120 s cap
        found = split_durations(total, SEEDANCE)
        assert sum(found) == total and len(found) == -(-total // 12000)
        assert all(d in SEEDANCE.choices() for d in found) and max(found) - min(found) <= 1000


def test_totals_the_provider_cannot_make_get_the_nearest_one() -> None:
    assert split_durations(7500, SEEDANCE) == [8000]  # whole seconds only
    assert split_durations(32000, JIMENG) == [10000, 10000, 10000]
    with pytest.raises(ValidationError, match="more than 20 shots"):
        split_durations(300000, SEEDANCE)


async def test_without_an_llm_the_split_keeps_the_idea_in_every_shot(
    service_factory: ServiceFactory,
) -> None:
    board = await service_factory().storyboard(HARBOUR, 30000, SEEDANCE, max_chars=500)
    assert board.planned_by == "split" and board.fallback_reason is None
    assert [s.duration_ms for s in board.shots] == [10000] * 3 and board.total_ms == 30000
    prompts = [s.prompt for s in board.shots]
    assert all(HARBOUR in p and "保持一致" in p and len(p) <= 500 for p in prompts)
    assert len(set(prompts)) == 3  # a different camera cue per shot
    assert "收尾" in prompts[-1]
    assert board.shots[0].subtitle.startswith(HARBOUR)


async def test_the_llm_writes_consistent_shots(
    service_factory: ServiceFactory, llm: LlmServer
) -> None:
    service = service_factory(llm_on(llm))
    board = await service.storyboard(HARBOUR, 30000, SEEDANCE, style="animated", max_chars=500)
    assert board.planned_by == "llm" and board.fallback_reason is None
    assert board.continuity and "水彩动画风格" in board.continuity
    assert [s.duration_ms for s in board.shots] == [10000, 10000, 10000]
    assert all("穿红色雨衣的小女孩" in s.prompt and "水彩动画风格" in s.prompt for s in board.shots)

    [request] = llm.emulator.requests()
    system, user = (m["content"] for m in request.body["messages"])
    assert system == SYSTEM_PROMPT_ZH
    assert "镜头数：3" in user and "10, 10, 10" in user and "500" in user
    assert "动画风格" in user  # the style preset's words reach the LLM


async def test_a_messy_answer_is_repaired(service_factory: ServiceFactory, llm: LlmServer) -> None:
    shots = [
        {"prompt": "A red fox in a snowy pine forest at dawn, watercolor animation"},
        {"prompt": "The red fox leaps over a frozen stream", "subtitle": "The leap"},
        {"prompt": "The red fox curls up in its den, watercolor animation", "subtitle": "Home"},
        {"prompt": "an extra shot nobody asked for", "subtitle": "extra"},
    ]
    body = json.dumps({"characters": "a red fox", "style": "watercolor animation",
                       "shots": shots})[:-1] + ",}"  # fmt: skip
    llm.emulator.reply(f"Sure! Here is the storyboard:\n```json\n{body}\n```")
    service = service_factory(llm_on(llm))
    board = await service.storyboard("a fox's winter day", 15000, SEEDANCE, shots=3)
    assert board.planned_by == "llm" and len(board.shots) == 3
    assert [s.duration_ms for s in board.shots] == [5000, 5000, 5000]
    assert board.shots[0].subtitle.startswith("A red fox in a snowy")  # taken from the prompt
    assert board.shots[1].prompt.endswith("watercolor animation.")  # the style, appended
    assert board.shots[2].subtitle == "Home"


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("I'd rather describe it in prose: a harbour at dawn, then noon, then night.", "not the"),
        (json.dumps({"shots": [{"prompt": "只有一个镜头"}]}), "1 shots, 3 were asked"),
        (json.dumps({"shots": [{"prompt": "A harbour"}, {"prompt": "B"}, {"prompt": "C"}]}),
         "not in Chinese"),
        (json.dumps({"shots": [{"prompt": "码头"}, {"prompt": ""}, {"prompt": "夜"}]}),
         "shot 2 of the storyboard has no prompt"),
    ],
)  # fmt: skip
async def test_an_unusable_answer_falls_back_to_the_split(
    service_factory: ServiceFactory, llm: LlmServer, answer: str, reason: str
) -> None:
    llm.emulator.reply(answer)
    board = await service_factory(llm_on(llm)).storyboard(HARBOUR, 30000, SEEDANCE)
    assert board.planned_by == "split" and board.fallback_reason is not None
    assert reason in board.fallback_reason
    assert board.total_ms == 30000 and all(prompt_language(s.prompt) == "zh" for s in board.shots)


async def test_an_llm_outage_falls_back_unless_the_llm_is_required(
    service_factory: ServiceFactory, llm: LlmServer
) -> None:
    llm.emulator.script(Reply(status=500, times=2))
    board = await service_factory(llm_on(llm)).storyboard("a harbour day", 20000, SEEDANCE)
    assert board.planned_by == "split" and "HTTP 500" in (board.fallback_reason or "")
    llm.emulator.script(Reply(status=500))
    required = service_factory({"llm": {**llm.settings(), "required": "true"}})
    with pytest.raises(UnavailableError, match="storyboard failed"):
        await required.storyboard("a harbour day", 20000, SEEDANCE)


def test_given_shots_keep_their_words_and_get_lengths_the_provider_makes() -> None:
    board = given_storyboard(
        [{"prompt": "a seed in dark soil", "duration_ms": 5400}, {"prompt": "a sprout"},
         {"prompt": "一朵花开了"}],
        SEEDANCE,
        total_ms=20000,
    )  # fmt: skip
    assert board.planned_by == "given"
    assert [s.duration_ms for s in board.shots] == [5000, 8000, 7000]
    assert [s.subtitle for s in board.shots] == ["a seed in dark soil", "a sprout", "一朵花开了"]
    assert [s.duration_ms for s in given_storyboard([{"prompt": "x"}], JIMENG).shots] == [5000]
    with pytest.raises(ValidationError, match=r"shots\[1\]\.prompt"):
        given_storyboard([{"prompt": "a"}, {"prompt": "  "}], SEEDANCE)
    with pytest.raises(ValidationError, match="at most 20 shots"):
        given_storyboard([{"prompt": "a"}] * 21, SEEDANCE)


async def test_shots_are_lengths_the_routed_provider_makes_exactly(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        {"seedance": {"api_key": "ark-0123456789abcdef"},
         "cogvideox": {"worker_urls": "http://127.0.0.1:9"}},
    )  # fmt: skip
    async with httpx.AsyncClient() as http:
        seedance = SeedanceProvider(http=http, settings=settings.seedance)
        cogvideox = CogVideoXProvider(settings.cogvideox, http)
        made = []
        for provider, total in ((seedance, 30000), (cogvideox, 20000)):
            for duration in split_durations(total, provider.capabilities.clips):
                params = provider.plan(
                    GenerationRequest(task_id="t", prompt="x", duration_ms=duration)
                )
                made.append(
                    (
                        duration,
                        params.get("duration_s", 0) * 1000 or params["duration_ms_effective"],
                    )
                )
    assert all(asked == got for asked, got in made) and len(made) == 3 + 4
