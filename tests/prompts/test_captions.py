"""Captions with hashtags for a platform, in the prompt's language: the LLM's (emulator, real
SDK), tidied, and the template when there is no LLM or its answer does not fit."""

from __future__ import annotations

import json

import pytest

from app.prompts.captions import SYSTEM_PROMPT_ZH, normalise_tags
from app.prompts.text import prompt_language
from tests.prompts.conftest import LlmServer, ServiceFactory

pytestmark = pytest.mark.anyio

HARBOUR = "港口小镇从黎明到夜晚的一天，渔船归港，灯塔亮起"


async def test_the_template_caption_fits_the_platform(service_factory: ServiceFactory) -> None:
    service = service_factory()
    douyin = await service.caption(HARBOUR, platform="抖音")
    assert douyin.written_by == "template" and douyin.fallback_reason is None
    assert len(douyin.text) <= 55 and douyin.text.startswith("港口小镇")
    assert len(douyin.hashtags) == 3 and douyin.hashtags[-1] == "#AI视频"
    assert "#港口小镇" in douyin.hashtags
    assert douyin.render() == f"{douyin.text}\n{' '.join(douyin.hashtags)}"

    red = await service.caption(HARBOUR, platform="xiaohongshu")
    assert len(red.text) <= 20

    insta = await service.caption(
        "A lighthouse keeper walks along the harbour at dusk", platform="instagram",
        style="cinematic",
    )  # fmt: skip
    assert prompt_language(insta.text) == "en" and "#cinematic" in insta.hashtags
    assert "#lighthouse" in insta.hashtags and "#AIvideo" in insta.hashtags
    assert all(t.casefold() not in ("#along", "#the") for t in insta.hashtags)


async def test_the_llm_writes_in_the_prompts_language(
    service_factory: ServiceFactory, llm: LlmServer
) -> None:
    caption = await service_factory({"llm": llm.settings()}).caption(HARBOUR, platform="douyin")
    assert caption.written_by == "llm" and prompt_language(caption.text) == "zh"
    assert caption.hashtags == ("#AI视频", "#治愈", "#日常")
    [request] = llm.emulator.requests()
    system, user = (m["content"] for m in request.body["messages"])
    assert system == SYSTEM_PROMPT_ZH
    assert "平台：douyin" in user and "55" in user and "话题标签数：3" in user


async def test_the_llms_caption_is_tidied(service_factory: ServiceFactory, llm: LlmServer) -> None:
    answer = {
        "caption": "A quiet harbour wakes up at dawn #harbor #Dawn and sleeps under the stars",
        "hashtags": ["harbour", "#Harbour", "#sea side", "#dawn", "#a", "#b", "#c", "#d", "#e"],
    }
    llm.emulator.reply("```json\n" + json.dumps(answer) + "\n```")
    caption = await service_factory({"llm": llm.settings()}).caption(
        "a harbour town at dawn", platform="youtube"
    )
    assert caption.written_by == "llm"
    assert "#" not in caption.text and caption.text.startswith("A quiet harbour wakes up")
    assert caption.hashtags == ("#harbour", "#seaside", "#dawn")  # deduplicated, limited to 3


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ("Here's a caption: the harbour at dawn!", "not the asked JSON"),
        (json.dumps({"caption": "A harbour town from dawn to night", "hashtags": []}),
         "not in Chinese"),
        (json.dumps({"caption": "  ", "hashtags": ["#a"]}), "empty caption"),
    ],
)  # fmt: skip
async def test_an_unusable_answer_falls_back_to_the_template(
    service_factory: ServiceFactory, llm: LlmServer, answer: str, reason: str
) -> None:
    llm.emulator.reply(answer)
    caption = await service_factory({"llm": llm.settings()}).caption(HARBOUR, platform="douyin")
    assert caption.written_by == "template" and reason in (caption.fallback_reason or "")
    assert prompt_language(caption.text) == "zh" and caption.hashtags


def test_hashtags_are_normalised() -> None:
    tags = ["#Sea Side", "sea-side", "＃海边", "#海边", "", "#!!", "#夜景"]
    assert normalise_tags(tags, 5) == ("#SeaSide", "#海边", "#夜景")
