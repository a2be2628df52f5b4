"""Screening before spending: the sensitive-word list (with evasions) and the moderation hook."""

from __future__ import annotations

import random
import unicodedata
from pathlib import Path

import pytest

from app.config import ConfigError
from app.errors import ContentRejectedError, UnavailableError
from app.prompts.screening import DEFAULT_WORDS_FILE, WordList, tokens
from app.prompts.text import is_han
from tests.emulators.llm import API_KEY, Reply
from tests.prompts.conftest import LlmServer, ServiceFactory

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def words() -> WordList:
    return WordList.load(DEFAULT_WORDS_FILE)


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("a porn video", "adult"),
        ("A PoRn video", "adult"),
        ("a p o r n video", "adult"),
        ("a p.o.r.n video", "adult"),
        ("a p-o-r-n video", "adult"),
        ("a po rn video", "adult"),
        ("a ｐｏｒｎ video", "adult"),  # full-width letters
        ("a por\u200bn video", "adult"),  # zero-width space
        ("a p\u00adorn video", "adult"),  # soft hyphen
        ("how to sell heroin", "drugs"),
        ("h e r o i n", "drugs"),
        ("plan a terrorist attack", "violence"),
        ("Terrorist   Attack!", "violence"),
        ("terrorist-attack", "violence"),
        ("我想买冰毒", "drugs"),
        ("买 冰 毒", "drugs"),
        ("买冰　毒", "drugs"),  # ideographic space
        ("冰.毒", "drugs"),
        ("冰\u200b毒", "drugs"),
        ("冰🔥毒", "drugs"),
        ("视频里有恐怖 袭击", "violence"),
        ("网络赌博推广", "gambling"),
        ("黄色视频", "adult"),
        ("Ｏｎｌｉｎｅ　Ｃａｓｉｎｏ ad", "gambling"),
        ("看porn视频", "adult"),  # Latin term between Chinese characters
    ],
)
def test_matches_survive_evasions(words: WordList, text: str, category: str) -> None:
    assert words.match(text) == category


@pytest.mark.parametrize(
    "text",
    [
        "the heroine walks through the city",  # "heroin" inside a longer word
        "the hero in the story saves the day",  # spacing tolerance must not glue real words
        "a top ornament on the christmas tree",
        "a scientific method explained",
        "a casino-themed board game night with friends",
        "一只小猫在冰面上玩耍，毒辣的太阳",  # 冰 and 毒 far apart
        "一碗热腾腾的牛肉面",
        "",
    ],
)
def test_no_false_positives(words: WordList, text: str) -> None:
    assert words.match(text) is None


def test_word_list_file_format(tmp_path: Path) -> None:
    path = tmp_path / "words.txt"
    path.write_text(
        "\ufeff# comment\nuncategorised term\n\n[brand safety]\ncompetitor x\n竞品\n[empty]\n",
        encoding="utf-8",
    )
    words = WordList.load(path)
    assert words.match("about an uncategorised term") == "sensitive"
    assert words.match("we beat Competitor-X") == "brand safety"
    assert words.match("竞 品 对比") == "brand safety"
    assert words.match("nothing here") is None
    assert words.size == 3


def test_unreadable_word_list_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="sensitive_words_file"):
        WordList.load(tmp_path / "missing.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("[]\nword\n")
    with pytest.raises(ConfigError, match="line 1"):
        WordList.load(bad)


async def test_screen_names_the_category_never_the_word(service_factory: ServiceFactory) -> None:
    service = service_factory()
    with pytest.raises(ContentRejectedError) as info:
        await service.screen("帮我做一个 冰 毒 广告")
    assert info.value.status_code == 400
    assert info.value.code == "content_rejected"
    assert "drugs" in info.value.message
    assert "冰" not in info.value.message
    await service.screen("一只小猫在草地上玩耍")  # passes


async def test_operator_word_list_replaces_the_default(
    service_factory: ServiceFactory, tmp_path: Path
) -> None:
    path = tmp_path / "mine.txt"
    path.write_text("[competitors]\nacme\n", encoding="utf-8")
    service = service_factory({"prompts": {"sensitive_words_file": str(path)}})
    with pytest.raises(ContentRejectedError, match="competitors"):
        await service.screen("an ACME rocket")
    await service.screen("a cocaine-free world")  # not in the operator's list


# --- the moderation hook (OpenAI-compatible /v1/moderations on the emulator) -------------------


def moderation(llm: LlmServer, **extra: object) -> dict[str, dict[str, object]]:
    return {
        "prompts": {
            "moderation_url": llm.base_url + "/v1/moderations",
            "moderation_api_key": API_KEY,
            "moderation_model": "omni-moderation-latest",
            "moderation_timeout_s": 2,
            **extra,
        }
    }


async def test_moderation_flags_name_the_categories(
    service_factory: ServiceFactory, llm: LlmServer
) -> None:
    service = service_factory(moderation(llm))
    with pytest.raises(ContentRejectedError) as info:
        await service.screen("please FLAGME now")
    assert "moderation" in info.value.message
    assert "violence" in info.value.message
    await service.screen("a calm lake at dawn")
    sent = llm.emulator.requests("moderations")
    assert [r.status for r in sent] == [200, 200]
    assert sent[0].authorization == f"Bearer {API_KEY}"
    assert sent[0].body == {"input": "please FLAGME now", "model": "omni-moderation-latest"}


async def test_moderation_url_may_be_the_base_url(
    service_factory: ServiceFactory, llm: LlmServer
) -> None:
    overrides = moderation(llm)
    overrides["prompts"]["moderation_url"] = llm.base_url + "/v1"
    service = service_factory(overrides)
    with pytest.raises(ContentRejectedError):
        await service.screen("flagme")


async def test_word_list_rejects_before_calling_moderation(
    service_factory: ServiceFactory, llm: LlmServer
) -> None:
    service = service_factory(moderation(llm))
    with pytest.raises(ContentRejectedError, match="content screening"):
        await service.screen("cocaine party")
    assert llm.emulator.requests("moderations") == []


async def test_moderation_down_fails_closed_by_default(
    service_factory: ServiceFactory, llm: LlmServer
) -> None:
    service = service_factory(moderation(llm))
    llm.emulator.script(Reply(op="moderations", status=500))
    with pytest.raises(UnavailableError) as info:
        await service.screen("a calm lake")
    assert info.value.status_code == 503
    assert "HTTP 500" in info.value.message


async def test_moderation_down_can_fail_open(
    service_factory: ServiceFactory, llm: LlmServer
) -> None:
    service = service_factory(moderation(llm, moderation_fail_open=True))
    llm.emulator.script(Reply(op="moderations", status=503))
    await service.screen("a calm lake")
    assert [r.status for r in llm.emulator.requests("moderations")] == [503]


async def test_moderation_with_a_wrong_key_is_not_a_pass(
    service_factory: ServiceFactory, llm: LlmServer
) -> None:
    overrides = moderation(llm)
    overrides["prompts"]["moderation_api_key"] = "sk-wrong-key-123456"
    service = service_factory(overrides)
    with pytest.raises(UnavailableError, match="HTTP 401"):
        await service.screen("a calm lake")


async def test_slow_moderation_times_out(service_factory: ServiceFactory, llm: LlmServer) -> None:
    service = service_factory(moderation(llm, moderation_timeout_s=0.3))
    llm.emulator.script(Reply(op="moderations", delay_s=3))
    with pytest.raises(UnavailableError, match="Timeout"):
        await service.screen("a calm lake")


def _tokens_by_character(text: str) -> list[str]:
    """The definition ``tokens`` implements, one character at a time."""
    text = unicodedata.normalize("NFKC", text).casefold()
    found, current = [], ""
    for ch in text:
        if unicodedata.category(ch) == "Cf":
            continue
        if is_han(ch):
            found += [current, ch] if current else [ch]
            current = ""
        elif ch.isalnum():
            current += ch
        elif current:
            found.append(current)
            current = ""
    return [*found, current] if current else found


def test_tokens_follow_the_character_by_character_definition() -> None:
    alphabet = (
        "aZ09_ -.,!?'\t\n"  # ASCII words, the underscore, separators
        "中文字𠀀豈"  # Chinese, an extension B character, a compatibility form
        "ＡＢ１２"  # fullwidth forms (NFKC makes them ASCII)
        "\u200d\u200b\ufeff"  # format characters (dropped)
        "éßİ\u0301²½"  # accents, casefolding, a combining mark, numbers that are not digits
        "ك한グ"  # other scripts' letters
    )
    rng = random.Random(7)
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))
        assert tokens(text) == _tokens_by_character(text), repr(text)
