"""Captions: ``caption: true`` → a caption and hashtags for the platform, in the prompt's language.

Each platform preset says how its captions look (``caption`` in ``builtin/platforms.yaml``:
length, hashtag count, tone; Douyin titles stay under 55 characters, Xiaohongshu titles under
20, Instagram takes more hashtags)::

    LLM configured ──► JSON {caption, hashtags}, validated and tidied ──► written_by = "llm"
        │ fails, or answers in the wrong language / without a caption
        └──────────────────────────────────────────────────────────────► written_by = "template"
    no LLM ──► template: the idea's first sentence, trimmed; hashtags from its key
               phrases (Chinese split at particles such as 的/和/在, English words of
               four letters or more that are not stop words), the style, and #AI视频/#AIvideo

Hashtags are normalised: ``#`` + the tag without spaces or punctuation, deduplicated,
at most the platform's count; hashtags the LLM put inside the caption move to the list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from app.prompts.catalog import CaptionRules, PlatformPreset, StylePreset
from app.prompts.expander import LlmError
from app.prompts.text import Lang, clean_answer, parse_json_answer, prompt_language, trim_prompt

if TYPE_CHECKING:
    from app.prompts.expander import LlmExpander

WrittenBy = Literal["llm", "template"]
GENERIC_TAG: dict[Lang, str] = {"en": "#AIvideo", "zh": "#AI视频"}
_TAG_CHARS = re.compile(r"[^\w\u4e00-\u9fff]+")
_INLINE_TAG = re.compile(r"#([\w\u4e00-\u9fff]+)#?")
_ZH_BREAKS = re.compile(
    r"[的和与及从到在里上中了着是把被向对为让给地得，。！？、；：,.!?;:\s“”\"'（）()]+"
)
# fmt: off
_STOP = frozenset([
    "a", "an", "the", "and", "or", "but", "with", "from", "into", "onto", "over", "under",
    "about", "above", "below", "after", "before", "this", "that", "these", "those", "there",
    "their", "then", "than", "when", "while", "where", "which", "what", "who", "whom", "your",
    "yours", "ours", "very", "just", "through", "across", "along", "around", "near", "some",
    "many", "much", "more", "most", "other", "such", "only", "also", "each", "every", "make",
    "makes", "made", "shot", "video", "scene", "camera", "slowly",
])
# fmt: on


@dataclass(frozen=True, kw_only=True)
class Caption:
    text: str
    hashtags: tuple[str, ...]
    written_by: WrittenBy
    #: Why the LLM's caption was not used although an LLM is configured.
    fallback_reason: str | None = None

    def render(self) -> str:
        """The caption as posted: the text, then the hashtags on one line."""
        return f"{self.text}\n{' '.join(self.hashtags)}" if self.hashtags else self.text


def normalise_tags(tags: list[str], limit: int) -> tuple[str, ...]:
    """``#tag`` forms without spaces or punctuation, deduplicated (case-insensitively)."""
    seen: set[str] = set()
    out: list[str] = []
    for tag in tags:
        core = _TAG_CHARS.sub("", tag.strip().lstrip("#"))
        if core and core.casefold() not in seen and len(out) < limit:
            seen.add(core.casefold())
            out.append("#" + core)
    return tuple(out)


def key_phrases(prompt: str, lang: Lang) -> list[str]:
    """A few words that say what the video is about (longest first)."""
    if lang == "zh":
        found = [p for p in _ZH_BREAKS.split(prompt) if 2 <= len(p) <= 8]
    else:
        found = [w for w in re.findall(r"[A-Za-z]{4,}", prompt) if w.casefold() not in _STOP]
    unique = list(dict.fromkeys(found))
    return sorted(unique, key=len, reverse=True)


def template_caption(
    prompt: str,
    rules: CaptionRules,
    *,
    style: StylePreset | None = None,
    reason: str | None = None,
) -> Caption:
    """The caption without an LLM (see the module docstring)."""
    lang = prompt_language(prompt)
    text = trim_prompt(clean_answer(prompt) or prompt.strip(), rules.max_chars)
    tags = key_phrases(prompt, lang)[: max(0, rules.hashtags - 1 - (style is not None))]
    if style is not None:
        tags.append(style.name if lang == "en" else style.text.zh.split("，")[0][:8])
    tags.append(GENERIC_TAG[lang])
    return Caption(
        text=text,
        hashtags=normalise_tags(tags, rules.hashtags),
        written_by="template",
        fallback_reason=reason,
    )


SYSTEM_PROMPT_EN = """You write social media captions for short AI-generated videos. Given \
the video's idea and the platform, write a caption in the platform's style and hashtags that \
people on that platform search for. Write in English.
Answer with JSON only, no other text: {"caption": "...", "hashtags": ["#...", "#..."]}
- "caption": within the asked length, no hashtags inside it.
- "hashtags": exactly the asked number, most relevant first."""

SYSTEM_PROMPT_ZH = """你为AI生成的短视频写社交平台文案。根据视频创意和发布平台，\
按平台风格写一段文案，并给出该平台用户会搜索的话题标签。用中文写。
只输出 JSON，不要任何其他文字：{"caption": "...", "hashtags": ["#...", "#..."]}
- "caption"：不超过要求的字数，文案里不要带话题标签。
- "hashtags"：正好是要求的数量，最相关的在前。"""


def caption_request(
    prompt: str, platform: PlatformPreset | None, rules: CaptionRules, lang: Lang
) -> str:
    name = platform.name if platform else ("通用" if lang == "zh" else "any")
    if lang == "zh":
        return "\n".join(
            [
                f"视频创意：{prompt.strip()}",
                f"平台：{name}",
                f"风格：{rules.tone.zh}",
                f"文案不超过{rules.max_chars}字，话题标签数：{rules.hashtags}",
            ]
        )
    return "\n".join(
        [
            f"Video idea: {prompt.strip()}",
            f"Platform: {name}",
            f"Tone: {rules.tone.en}",
            f"Caption at most {rules.max_chars} characters, hashtags: {rules.hashtags}",
        ]
    )


def parse_caption(raw: str, rules: CaptionRules, lang: Lang) -> Caption:
    """Validate and tidy the LLM's answer; :class:`LlmError` when it cannot be used."""
    data = parse_json_answer(raw)
    if not isinstance(data, dict) or not isinstance(data.get("caption"), str):
        raise LlmError("the caption answer was not the asked JSON")
    text = data["caption"]
    inline = _INLINE_TAG.findall(text)
    text = clean_answer(_INLINE_TAG.sub("", text))
    if not text:
        raise LlmError("the LLM wrote an empty caption")
    if lang == "zh" and prompt_language(text) != "zh":
        raise LlmError("the caption is not in Chinese")
    tags = data.get("hashtags")
    listed = [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
    return Caption(
        text=trim_prompt(text, rules.max_chars),
        hashtags=normalise_tags([*listed, *inline], rules.hashtags),
        written_by="llm",
    )


async def write_caption(
    prompt: str,
    *,
    platform: PlatformPreset | None = None,
    style: StylePreset | None = None,
    llm: LlmExpander | None = None,
) -> Caption:
    """A caption for a video of ``prompt``; never raises for an LLM failure (the template is
    the fallback, with ``fallback_reason`` set)."""
    rules = platform.caption if platform else CaptionRules()
    lang = prompt_language(prompt)
    if llm is None:
        return template_caption(prompt, rules, style=style)
    try:
        raw = await llm.complete(
            SYSTEM_PROMPT_ZH if lang == "zh" else SYSTEM_PROMPT_EN,
            caption_request(prompt, platform, rules, lang),
            max_tokens=llm.max_tokens or 512 + rules.max_chars * 4,
            what="write a caption",
        )
        caption = parse_caption(raw, rules, lang)
    except LlmError as exc:
        return template_caption(prompt, rules, style=style, reason=exc.reason)
    if not caption.hashtags:  # a caption without hashtags: borrow the template's
        tags = template_caption(prompt, rules, style=style).hashtags
        caption = Caption(text=caption.text, hashtags=tags, written_by="llm")
    return caption
