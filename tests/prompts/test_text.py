"""Language detection, cleaning an LLM's answer, trimming to a provider's limit."""

from __future__ import annotations

import pytest

from app.prompts.text import clean_answer, looks_like_refusal, prompt_language, trim_prompt

ZH = (
    "画面中心是身着蓝色足球服的小男孩，脚蹬黑色球鞋，正奋力踢向黑白相间的足球。"
    "翠绿草坪边缘有白色边线，围栏外是蓝色观众座椅。"
    "天空湛蓝飘着白云，男孩表情专注兴奋，镜头跟随足球运动轨迹推进。"
)
EN = (
    "A young boy in a blue kit strikes the ball. Green grass with white lines stretches to "
    "the fence! Is the crowd cheering? The camera tracks the ball as it flies."
)


@pytest.mark.parametrize(
    ("text", "lang"),
    [
        ("小男孩踢足球", "zh"),
        ("a boy playing football", "en"),
        ("iPhone 15 产品展示视频", "zh"),
        ("A cat named 小白 sleeping on the sofa", "en"),
        ("", "en"),
        ("１２３", "en"),
    ],
)
def test_prompt_language(text: str, lang: str) -> None:
    assert prompt_language(text) == lang


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("A red fox runs through snow.", "A red fox runs through snow."),
        ('"A red fox runs through snow."', "A red fox runs through snow."),
        ("“一只红狐狸在雪地里奔跑。”", "一只红狐狸在雪地里奔跑。"),
        ("「一只红狐狸」", "一只红狐狸"),
        ("```\nA red fox in the snow.\n```", "A red fox in the snow."),
        ("```text\nA red fox in the snow.\n```\n", "A red fox in the snow."),
        ("Here is the prompt:\n\nA red fox in the snow.", "A red fox in the snow."),
        ("Here's an expanded prompt: A red fox in the snow.", "A red fox in the snow."),
        ('Sure! Here is your video prompt:\n"A red fox."', "A red fox."),
        ("Prompt: A red fox in the snow.", "A red fox in the snow."),
        ("**Prompt:** A red fox in the snow.", "A red fox in the snow."),
        ("以下是扩写后的提示词：\n一只红狐狸在雪地里奔跑。", "一只红狐狸在雪地里奔跑。"),
        ("好的，以下是扩写后的提示词：“一只红狐狸在雪地里奔跑。”", "一只红狐狸在雪地里奔跑。"),
        ("提示词：一只红狐狸在雪地里奔跑。", "一只红狐狸在雪地里奔跑。"),
        ("<think>The user wants a fox.</think>\nA red fox in the snow.", "A red fox in the snow."),
        ("<think>still thinking about the fox", ""),
        ("A red fox in the snow.\n\nLet me know if you'd like changes!", "A red fox in the snow."),
        ("一只红狐狸在雪地里奔跑。\n希望对你有帮助！", "一只红狐狸在雪地里奔跑。"),
        (
            "- A red fox\n- running through snow\n- slow push-in",
            "A red fox running through snow slow push-in",
        ),
        ("主体：红狐狸。\n场景：雪地。", "主体：红狐狸。场景：雪地。"),
        ("   \n\t  ", ""),
        ("", ""),
        ('A "quoted" word and "another".', 'A "quoted" word and "another".'),
    ],
)
def test_clean_answer(raw: str, clean: str) -> None:
    assert clean_answer(raw) == clean


@pytest.mark.parametrize(
    "text",
    [
        "I'm sorry, but I can't help with that.",
        "I’m sorry, I cannot assist.",
        "Sorry, I can't create that.",
        "I cannot comply with this request.",
        "As an AI language model, I can't",
        "抱歉，我无法满足这个请求。",
        "很抱歉，这个内容我不能提供。",
        "作为一个人工智能，我不能……",
    ],
)
def test_refusals_are_recognised(text: str) -> None:
    assert looks_like_refusal(text)


@pytest.mark.parametrize(
    "text", ["A sorry-looking dog in the rain.", "I canter across the field.", "抱着猫的女孩"]
)
def test_ordinary_prompts_are_not_refusals(text: str) -> None:
    assert not looks_like_refusal(text)


def test_trim_keeps_text_within_the_limit_untouched() -> None:
    assert trim_prompt(ZH, len(ZH)) == ZH
    assert trim_prompt("  a fox  ", 5) == "a fox"


def test_trim_cuts_chinese_at_the_last_sentence_end() -> None:
    limit = ZH.index("天空") + 5  # inside the third sentence
    trimmed = trim_prompt(ZH, limit)
    assert trimmed == ZH[: ZH.index("天空")]
    assert trimmed.endswith("。")
    assert len(trimmed) <= limit


def test_trim_cuts_english_at_the_last_sentence_end() -> None:
    limit = EN.index("The camera") + 10
    trimmed = trim_prompt(EN, limit)
    assert trimmed == EN[: EN.index(" The camera")]
    assert trimmed.endswith("?")


def test_trim_does_not_take_a_decimal_point_for_a_sentence_end() -> None:
    text = "A sports car with a 3.5 litre engine speeds along the coast at sunset, " * 3
    trimmed = trim_prompt(text, 60)
    assert "3." not in trimmed[-3:]
    assert len(trimmed) <= 60
    assert trimmed.endswith(".")


def test_trim_falls_back_to_a_clause_break_and_closes_the_sentence() -> None:
    text = "镜头缓缓推进，" * 20 + "结束。"
    trimmed = trim_prompt(text, 50)
    assert len(trimmed) <= 50
    assert trimmed.endswith("推进。")
    assert "，。" not in trimmed


def test_trim_falls_back_to_a_word_boundary_in_english() -> None:
    text = " ".join(["golden"] * 100)
    trimmed = trim_prompt(text, 40)
    assert len(trimmed) <= 40
    assert trimmed.endswith("golden.")


def test_trim_prefers_a_late_clause_over_an_early_sentence() -> None:
    text = "A fox. " + "It runs through the deep snow under the pale moon, " * 10
    trimmed = trim_prompt(text, 100)
    assert len(trimmed) > 50
    assert trimmed.endswith(".")
    assert not trimmed.endswith(",.")


def test_trim_hard_cuts_text_without_any_break() -> None:
    text = "狐" * 900
    trimmed = trim_prompt(text, 800)
    assert len(trimmed) == 800
    assert trimmed.endswith("。")


@pytest.mark.parametrize("limit", [1, 2, 7, 31, 120, 499, 500])
def test_trim_never_exceeds_the_limit(limit: int) -> None:
    for text in (ZH * 5, EN * 5, "x" * 1000, "a, " * 400):
        assert len(trim_prompt(text, limit)) <= limit
