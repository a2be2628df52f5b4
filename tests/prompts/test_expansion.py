"""LLM expansion through the real ``openai`` SDK against the emulator, and every fallback path."""

from __future__ import annotations

from typing import Any

import pytest

from app.errors import UnavailableError
from app.prompts.expander import SYSTEM_PROMPT_EN, SYSTEM_PROMPT_ZH
from tests.emulators.llm import MODEL, Reply
from tests.emulators.server import free_port
from tests.prompts.conftest import LlmServer, ServiceFactory

pytestmark = pytest.mark.anyio

SEEDANCE_LIMIT = 500
JIMENG_LIMIT = 800


def llm_on(llm: LlmServer, **settings: Any) -> dict[str, dict[str, Any]]:
    return {"llm": llm.settings(**settings)}


async def test_expansion_by_the_llm_in_chinese(
    service_factory: ServiceFactory, llm: LlmServer
) -> None:
    service = service_factory(llm_on(llm))
    answer = "画面中心是一只橘猫趴在红瓦屋顶上，夕阳余晖洒在它的毛发上，镜头缓缓推近。"
    llm.emulator.reply(answer)
    result = await service.expand("屋顶上的猫", max_chars=SEEDANCE_LIMIT)
    assert result.expanded_by == "llm"
    assert result.expanded_prompt == answer
    assert result.fallback_reason is None

    [request] = llm.emulator.requests()
    assert request.status == 200
    assert request.authorization == f"Bearer {llm.settings()['api_key']}"
    body = request.body
    assert body["model"] == MODEL
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert body["messages"][0]["content"] == SYSTEM_PROMPT_ZH
    assert "屋顶上的猫" in body["messages"][1]["content"]
    assert "500" in body["messages"][1]["content"]
    assert body["temperature"] == 0.7
    assert body["max_tokens"] >= SEEDANCE_LIMIT


async def test_english_prompts_get_the_english_system_prompt(
    service_factory: ServiceFactory, llm: LlmServer
) -> None:
    service = service_factory(llm_on(llm))
    result = await service.expand("a cat on a roof", max_chars=SEEDANCE_LIMIT)
    assert result.expanded_by == "llm"
    assert result.expanded_prompt.startswith("a cat on a roof.")  # the emulator's default answer
    [request] = llm.emulator.requests()
    assert request.body["messages"][0]["content"] == SYSTEM_PROMPT_EN


def test_the_default_system_prompts_carry_the_seed_instructions() -> None:
    for needle in ("主体细节", "场景环境", "风格定义", "镜头运动", "只输出"):
        assert needle in SYSTEM_PROMPT_ZH
    for needle in ("subject details", "scene", "style", "camera movement", "prompt only"):
        assert needle in SYSTEM_PROMPT_EN


async def test_configured_system_prompt_overrides_both(
    service_factory: ServiceFactory, llm: LlmServer
) -> None:
    service = service_factory(llm_on(llm, system_prompt="You write prompts for Jimeng."))
    await service.expand("小狗", max_chars=JIMENG_LIMIT)
    await service.expand("a puppy", max_chars=JIMENG_LIMIT)
    systems = [r.body["messages"][0]["content"] for r in llm.emulator.requests()]
    assert systems == ["You write prompts for Jimeng.", "You write prompts for Jimeng."]


async def test_template_style_and_platform_reach_the_llm(
    service_factory: ServiceFactory, llm: LlmServer
) -> None:
    service = service_factory(llm_on(llm))
    result = await service.expand(
        "一款降噪耳机", template="product", style="minimalist", platform="douyin", max_chars=500
    )
    assert result.expanded_by == "llm"
    user = llm.emulator.requests()[0].body["messages"][1]["content"]
    assert "电商产品展示" in user  # the template's hint
    assert "极简风格" in user  # the style
    assert "9:16" in user  # the platform's framing


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ('"A cat on a red roof at sunset."', "A cat on a red roof at sunset."),
        ("```\nA cat on a red roof at sunset.\n```", "A cat on a red roof at sunset."),
        (
            "Here is the prompt:\n\nA cat on a red roof at sunset.\n\nLet me know if you like it!",
            "A cat on a red roof at sunset.",
        ),
        ("以下是扩写后的提示词：\n“红色屋顶上的猫。”", "红色屋顶上的猫。"),
    ],
)
async def test_odd_answers_are_cleaned(
    service_factory: ServiceFactory, llm: LlmServer, answer: str, expected: str
) -> None:
    service = service_factory(llm_on(llm))
    llm.emulator.reply(answer)
    result = await service.expand("a cat", max_chars=SEEDANCE_LIMIT)
    assert (result.expanded_by, result.expanded_prompt) == ("llm", expected)


async def test_a_very_long_answer_is_trimmed_at_a_sentence_end(
    service_factory: ServiceFactory, llm: LlmServer
) -> None:
    service = service_factory(llm_on(llm))
    sentence = "镜头缓缓掠过金色的麦田，远处的风车在微风中慢慢转动。"
    llm.emulator.reply(sentence * 60)
    result = await service.expand("麦田", max_chars=SEEDANCE_LIMIT)
    assert result.expanded_by == "llm"
    assert len(result.expanded_prompt) <= SEEDANCE_LIMIT
    assert len(result.expanded_prompt) > SEEDANCE_LIMIT - len(sentence)
    assert result.expanded_prompt.endswith("转动。")

    llm.emulator.reply(("The camera glides over a golden wheat field. " * 40).strip())
    result = await service.expand("wheat field", max_chars=JIMENG_LIMIT)
    assert len(result.expanded_prompt) <= JIMENG_LIMIT
    assert result.expanded_prompt.endswith("field.")


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        (Reply(content=""), "empty"),
        (Reply(content="   \n\t "), "empty"),
        (Reply(content="I'm sorry, but I can't help with that request."), "refused"),
        (Reply(content="抱歉，我无法完成这个请求。"), "refused"),
        (Reply(refusal="I can't help with that."), "refused"),
        (Reply(content="A cat.", finish_reason="content_filter"), "refused"),
        (Reply(content="<think>hmm, a cat, let me think"), "empty"),
        (Reply(no_choices=True), "without any choice"),
        (Reply(status=500), "HTTP 500"),
        (Reply(status=503), "HTTP 503"),
        (Reply(status=429, headers={"retry-after": "0"}), "429"),
        (Reply(status=400), "HTTP 400"),
    ],
)
async def test_garbage_and_errors_fall_back_to_the_template(
    service_factory: ServiceFactory, llm: LlmServer, reply: Reply, why: str
) -> None:
    service = service_factory(llm_on(llm))
    llm.emulator.script(reply)
    result = await service.expand("a cat on a roof", max_chars=SEEDANCE_LIMIT)
    assert result.expanded_by == "template"
    assert result.expanded_prompt == (
        "a cat on a roof, detailed subject, clear scene with natural lighting, "
        "smooth camera movement."
    )
    assert result.fallback_reason is not None and why in result.fallback_reason
    assert llm.emulator.pending() == 0


async def test_fallback_uses_the_requested_template_and_style(
    service_factory: ServiceFactory, llm: LlmServer
) -> None:
    service = service_factory(llm_on(llm))
    llm.emulator.fail_next(500)
    result = await service.expand("牛肉面", template="food", style="vintage", max_chars=500)
    assert result.expanded_by == "template"
    assert result.expanded_prompt.startswith("牛肉面的美食视频")
    assert "复古风格" in result.expanded_prompt


async def test_a_slow_llm_falls_back_within_timeout_s(
    service_factory: ServiceFactory, llm: LlmServer
) -> None:
    # The answer would come after 3 s, but timeout_s is 0.5: if the hard timeout did not hold,
    # the expansion would be the LLM's answer.
    service = service_factory(llm_on(llm, timeout_s=0.5))
    llm.emulator.script(Reply(content="A late answer.", delay_s=3))
    result = await service.expand("a cat", max_chars=SEEDANCE_LIMIT)
    assert result.expanded_by == "template"
    assert "0.5 s" in (result.fallback_reason or "") or "timed out" in (
        result.fallback_reason or ""
    )


async def test_retry_after_waits_cannot_outlive_timeout_s(
    service_factory: ServiceFactory, llm: LlmServer
) -> None:
    # The SDK would honour Retry-After: 30 and then succeed; the overall timeout stops it.
    service = service_factory(llm_on(llm, timeout_s=0.5, max_retries=2))
    llm.emulator.fail_next(429, retry_after=30)
    result = await service.expand("a cat", max_chars=SEEDANCE_LIMIT)
    assert result.expanded_by == "template"
    assert len(llm.emulator.requests()) == 1


async def test_the_sdk_retries_a_429_then_succeeds(
    service_factory: ServiceFactory, llm: LlmServer
) -> None:
    service = service_factory(llm_on(llm, max_retries=1))
    llm.emulator.fail_next(429, retry_after=0.01)
    llm.emulator.reply("A cat on a roof at dawn.")
    result = await service.expand("a cat", max_chars=SEEDANCE_LIMIT)
    assert (result.expanded_by, result.expanded_prompt) == ("llm", "A cat on a roof at dawn.")
    assert [r.status for r in llm.emulator.requests()] == [429, 200]


async def test_a_wrong_key_falls_back(service_factory: ServiceFactory, llm: LlmServer) -> None:
    service = service_factory(llm_on(llm, api_key="sk-wrong-0000000000"))
    result = await service.expand("a cat", max_chars=SEEDANCE_LIMIT)
    assert result.expanded_by == "template"
    assert "api_key" in (result.fallback_reason or "")
    assert "sk-wrong" not in (result.fallback_reason or "")
    assert [r.status for r in llm.emulator.requests()] == [401]


async def test_an_unknown_model_falls_back(service_factory: ServiceFactory, llm: LlmServer) -> None:
    service = service_factory(llm_on(llm, model="no-such-model"))
    result = await service.expand("a cat", max_chars=SEEDANCE_LIMIT)
    assert result.expanded_by == "template"
    assert "404" in (result.fallback_reason or "")


async def test_an_unreachable_llm_falls_back(
    service_factory: ServiceFactory, llm: LlmServer
) -> None:
    closed = f"http://127.0.0.1:{free_port()}/v1"
    service = service_factory(llm_on(llm, base_url=closed, max_retries=1))
    result = await service.expand("a cat", max_chars=SEEDANCE_LIMIT)
    assert result.expanded_by == "template"
    assert "unreachable" in (result.fallback_reason or "")


@pytest.mark.parametrize(
    ("reply", "retryable"),
    [(Reply(status=500), True), (Reply(content=""), True), (Reply(status=401), False)],
)
async def test_required_llm_fails_with_a_clear_error(
    service_factory: ServiceFactory, llm: LlmServer, reply: Reply, retryable: bool
) -> None:
    service = service_factory(llm_on(llm, required=True))
    llm.emulator.script(reply)
    with pytest.raises(UnavailableError) as info:
        await service.expand("a cat", max_chars=SEEDANCE_LIMIT)
    assert info.value.status_code == 503
    assert info.value.retryable is retryable
    assert "required" in info.value.message


async def test_required_llm_that_is_slow_fails_within_timeout_s(
    service_factory: ServiceFactory, llm: LlmServer
) -> None:
    service = service_factory(llm_on(llm, required=True, timeout_s=0.5))
    llm.emulator.script(Reply(content="too late", delay_s=3))
    with pytest.raises(UnavailableError, match=r"did not answer within 0\.5 s"):
        await service.expand("a cat", max_chars=SEEDANCE_LIMIT)


async def test_without_an_llm(service_factory: ServiceFactory) -> None:
    service = service_factory()
    assert service.expands_by_default is False
    untouched = await service.expand("  a cat on a roof  ", max_chars=SEEDANCE_LIMIT, use_llm=False)
    assert (untouched.expanded_by, untouched.expanded_prompt) == ("none", "a cat on a roof")
    assert untouched.fallback_reason is None
    # Asked to expand with no LLM configured: the deterministic expansion, saying why.
    asked = await service.expand("a cat on a roof", max_chars=SEEDANCE_LIMIT)
    assert asked.expanded_by == "template" and "a cat on a roof" in asked.expanded_prompt
    assert asked.expanded_prompt != "a cat on a roof"
    assert asked.fallback_reason and "no LLM" in asked.fallback_reason
    styled = await service.expand("a cat on a roof", style="cinematic", max_chars=500)
    assert styled.expanded_by == "template"
    assert styled.expanded_prompt.startswith("a cat on a roof, cinematic style")


async def test_use_llm_false_skips_the_llm(service_factory: ServiceFactory, llm: LlmServer) -> None:
    service = service_factory(llm_on(llm))
    assert service.expands_by_default is True
    result = await service.expand("a cat", platform="youtube", max_chars=500, use_llm=False)
    assert result.expanded_by == "template"
    assert "16:9" in result.expanded_prompt
    assert llm.emulator.requests() == []


async def test_expand_by_default_can_be_switched_off(
    service_factory: ServiceFactory, llm: LlmServer
) -> None:
    service = service_factory(llm_on(llm, expand_by_default=False))
    assert service.expands_by_default is False


async def test_negative_prompt_choice(service_factory: ServiceFactory, tmp_path: Any) -> None:
    service = service_factory()
    default = (await service.expand("a cat")).negative_prompt
    assert default is not None and "watermark" in default and "extra limbs" in default
    assert (await service.expand("a cat", negative_prompt="dogs")).negative_prompt == "dogs"
    off = service_factory({"prompts": {"default_negative_prompt": "none"}})
    assert (await off.expand("a cat")).negative_prompt is None
    assert off.negative_prompt() == ""
