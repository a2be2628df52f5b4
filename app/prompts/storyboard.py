"""Storyboards: one idea and a total length → shots a provider can make, that read as one video.

Durations come first and never from the LLM: :func:`split_durations` cuts the asked total
into as few shots as the provider's clip lengths (:class:`ClipLimits`, e.g. Seedance's whole
seconds 2–12) allow, as even as possible, summing to the total (or, when the provider's steps
cannot make it, to the nearest total they can).

Then the words, in the prompt's language::

    LLM configured ──► JSON storyboard, validated and repaired ──► planned_by = "llm"
        │ unreachable, refused, not JSON, too few shots, empty prompts
        └──────────────────────────────────────────────► planned_by = "split"
    no LLM ──► deterministic split: the idea, a camera cue per shot,
               "same characters, setting and style"              planned_by = "split"

Each shot is generated separately, so consistency has to be written into every shot prompt:
the LLM is asked for the characters, the setting and the style once, and to repeat them in
every shot; the repair appends the style to shots that dropped it. Prompts are trimmed to the
provider's limit on sentence ends. Shots a user wrote themselves go through
:func:`given_storyboard` (durations fitted, nothing rewritten).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from app.errors import ValidationError
from app.prompts.expander import LlmError
from app.prompts.text import (
    Lang,
    clean_answer,
    compose,
    parse_json_answer,
    prompt_language,
    trim_prompt,
)
from app.providers.base import ClipLimits

if TYPE_CHECKING:
    from app.prompts.expander import LlmExpander

__all__ = ["ClipLimits", "Shot", "Storyboard", "given_storyboard", "plan_storyboard"]

PlannedBy = Literal["llm", "split", "given"]
SUBTITLE_CHARS = 40
MAX_SHOTS = 20


@dataclass(frozen=True, kw_only=True)
class Shot:
    index: int
    prompt: str
    duration_ms: int
    #: One short line for this shot's subtitle cue.
    subtitle: str


@dataclass(frozen=True, kw_only=True)
class Storyboard:
    shots: tuple[Shot, ...]
    planned_by: PlannedBy
    #: Why the LLM's storyboard was not used although an LLM is configured.
    fallback_reason: str | None = None
    #: The characters, setting and style the LLM fixed for every shot.
    continuity: str | None = None

    @property
    def total_ms(self) -> int:
        return sum(shot.duration_ms for shot in self.shots)


# --- durations ---------------------------------------------------------------------------


def _even_split(n: int, total_ms: int, choices: list[int]) -> list[int]:
    """``n`` lengths from ``choices``, at most two adjacent values, summing nearest ``total``."""
    base = total_ms / n
    lo = max((c for c in choices if c <= base), default=choices[0])
    hi = min((c for c in choices if c >= base), default=choices[-1])
    k = min(range(n + 1), key=lambda k: (abs(k * hi + (n - k) * lo - total_ms), -k))  # halves up
    return [hi] * k + [lo] * (n - k)


def durations_for(n: int, total_ms: int, limits: ClipLimits) -> list[int]:
    """``n`` shot lengths the provider can make, as even as possible, summing nearest
    ``total_ms``."""
    if n < 1:
        raise ValidationError("a storyboard needs at least one shot")
    return _even_split(n, total_ms, limits.choices())


def split_durations(total_ms: int, limits: ClipLimits, *, max_shots: int = MAX_SHOTS) -> list[int]:
    """The fewest, most even shot lengths that sum to ``total_ms`` (or nearest to it)."""
    if total_ms <= 0:
        raise ValidationError("duration_ms must be positive")
    choices = limits.choices()
    first = max(1, math.ceil(total_ms / choices[-1]))
    if first > max_shots:
        raise ValidationError(
            f"{total_ms} ms needs more than {max_shots} shots of at most {choices[-1]} ms"
        )
    # More shots than needed only when they make the total exact (each shot is a paid job);
    # otherwise the closest of the fewest (one shot fewer can be as close: 32 s from 10 s clips).
    for n in range(first, min(max_shots, first + 3) + 1):
        found = _even_split(n, total_ms, choices)
        if sum(found) == total_ms:
            return found
    options = [_even_split(n, total_ms, choices) for n in range(max(1, first - 1), first + 1)]
    return min(options, key=lambda found: abs(sum(found) - total_ms))


# --- the deterministic split -------------------------------------------------------------

CAMERA: dict[Lang, tuple[str, ...]] = {
    "en": (
        "establishing wide shot",
        "medium shot, the action unfolds",
        "close-up on the details",
        "tracking shot following the movement",
        "low-angle shot",
        "aerial view",
    ),
    "zh": (
        "开场远景，交代环境",
        "中景，情节展开",
        "特写，刻画细节",
        "跟拍镜头，动作延续",
        "低角度仰拍",
        "航拍俯瞰",
    ),
}
CLOSING: dict[Lang, str] = {
    "en": "closing wide shot, the scene settles",
    "zh": "收尾远景，画面归于平静",
}
CONSISTENT: dict[Lang, str] = {
    "en": "same characters, setting and visual style as the other shots",
    "zh": "人物、场景与画风与其他镜头保持一致",
}


def _subtitle(text: str) -> str:
    return trim_prompt(text.strip(), SUBTITLE_CHARS).rstrip("。.")


def split_storyboard(
    prompt: str,
    durations: Sequence[int],
    *,
    max_chars: int = 2000,
    extras: Sequence[str] = (),
    reason: str | None = None,
) -> Storyboard:
    """The storyboard without an LLM: the idea in every shot, a different camera cue for
    each, the last one closing, and a reminder to keep everything consistent."""
    lang = prompt_language(prompt)
    n = len(durations)
    shots = []
    for i, duration in enumerate(durations):
        if n == 1:
            cue = None
        elif i == n - 1:
            cue = CLOSING[lang]
        else:
            cue = CAMERA[lang][i % len(CAMERA[lang])]
        label = ""
        if cue:
            label = (f"第{i + 1}/{n}镜：" if lang == "zh" else f"shot {i + 1}/{n}: ") + cue
        parts = [*extras, label, CONSISTENT[lang]] if n > 1 else list(extras)
        shots.append(
            Shot(
                index=i,
                prompt=compose(prompt, [p for p in parts if p], lang, max_chars),
                duration_ms=duration,
                subtitle=_subtitle(prompt) + (f" ({i + 1}/{n})" if n > 1 else ""),
            )
        )
    return Storyboard(shots=tuple(shots), planned_by="split", fallback_reason=reason)


# --- the LLM's storyboard ------------------------------------------------------------------

SYSTEM_PROMPT_EN = """You write storyboards for text-to-video models. Split the user's idea \
into exactly the number of shots asked for; played in order they form one continuous video. \
Every shot is generated on its own, so every shot prompt must stand alone: describe the main \
characters (appearance, clothing), the setting and the visual style in every shot, with the \
same words each time, so that they stay consistent. Vary the camera and the action from shot \
to shot and follow the story from beginning to end.
Answer with JSON only, no other text:
{"characters": "...", "setting": "...", "style": "...", \
"shots": [{"prompt": "...", "subtitle": "..."}]}
- "shots": exactly the asked number of items, in order.
- "prompt": a complete video prompt for that shot, within the asked length, in English.
- "subtitle": one short line for that shot's subtitle (at most 40 characters), in English."""

SYSTEM_PROMPT_ZH = """你是文生视频的分镜编剧。把用户的创意拆成指定数量的镜头，\
按顺序播放时构成一个连贯的视频。每个镜头单独生成，所以每个镜头的提示词都必须能独立成立：\
在每个镜头里都描写主要人物（外貌、服装）、场景和画面风格，每次用相同的措辞，保证前后一致。\
镜头之间变化机位和动作，从头到尾推进故事。
只输出 JSON，不要任何其他文字：
{"characters": "...", "setting": "...", "style": "...", \
"shots": [{"prompt": "...", "subtitle": "..."}]}
- "shots"：正好是要求的数量，按顺序排列。
- "prompt"：该镜头完整的视频提示词，不超过要求的字数，用中文。
- "subtitle"：该镜头的一句简短字幕（不超过40字），用中文。"""


def storyboard_system_prompt(lang: Lang) -> str:
    return SYSTEM_PROMPT_ZH if lang == "zh" else SYSTEM_PROMPT_EN


def storyboard_request(
    prompt: str, durations: Sequence[int], *, lang: Lang, max_chars: int, extras: Sequence[str]
) -> str:
    """The user message: the idea, the shot count and lengths, the limits and the wishes."""
    seconds = ", ".join(f"{d / 1000:g}" for d in durations)
    if lang == "zh":
        lines = [
            f"创意：{prompt.strip()}",
            f"镜头数：{len(durations)}",
            f"各镜头时长（秒）：{seconds}",
            f"每个提示词不超过{max_chars}字。",
        ]
        if extras:
            lines.append("要求：" + "；".join(extras))
    else:
        lines = [
            f"Idea: {prompt.strip()}",
            f"Shots: {len(durations)}",
            f"Shot lengths (seconds): {seconds}",
            f"Each prompt at most {max_chars} characters.",
        ]
        if extras:
            lines.append("Wishes: " + "; ".join(extras))
    return "\n".join(lines)


def _text(value: Any) -> str:
    return clean_answer(value) if isinstance(value, str) else ""


def parse_storyboard(
    raw: str, durations: Sequence[int], *, lang: Lang, max_chars: int
) -> Storyboard:
    """Validate and repair the LLM's answer; :class:`LlmError` when it cannot be used.

    Repairs: JSON inside prose or fences, trailing commas, extra shots dropped, a missing
    subtitle taken from the prompt, the style appended to shots that left it out. Rejected:
    no JSON, fewer shots than asked, an empty prompt, a shot in the wrong language.
    """
    data = parse_json_answer(raw)
    if isinstance(data, list):
        data = {"shots": data}
    if not isinstance(data, dict) or not isinstance(data.get("shots"), list):
        raise LlmError("the storyboard answer was not the asked JSON")
    items = data["shots"]
    if len(items) < len(durations):
        raise LlmError(f"the storyboard has {len(items)} shots, {len(durations)} were asked")
    style = _text(data.get("style"))
    continuity = "; ".join(
        t for t in (_text(data.get(k)) for k in ("characters", "setting", "style")) if t
    )
    shots = []
    for i, duration in enumerate(durations):
        item = items[i]
        if isinstance(item, dict):
            text = _text(item.get("prompt") or item.get("description"))
        else:
            text = _text(item)
        if not text:
            raise LlmError(f"shot {i + 1} of the storyboard has no prompt")
        if lang == "zh" and prompt_language(text) != "zh":
            raise LlmError(f"shot {i + 1} of the storyboard is not in Chinese")
        if style and style.casefold() not in text.casefold():
            text = compose(text, [style], lang, max_chars)
        subtitle = _text(item.get("subtitle")) if isinstance(item, dict) else ""
        shots.append(
            Shot(
                index=i,
                prompt=trim_prompt(text, max_chars),
                duration_ms=duration,
                subtitle=_subtitle(subtitle or text),
            )
        )
    return Storyboard(shots=tuple(shots), planned_by="llm", continuity=continuity or None)


async def plan_storyboard(
    prompt: str,
    total_ms: int,
    limits: ClipLimits,
    *,
    llm: LlmExpander | None = None,
    max_chars: int = 2000,
    extras: Sequence[str] = (),
    shots: int | None = None,
) -> Storyboard:
    """Plan ``prompt`` as shots totalling ``total_ms`` (see the module docstring).

    ``extras`` are style and platform wishes in the prompt's language; ``shots`` forces the
    number of shots. Never raises for an LLM failure: the split is the fallback, with
    ``fallback_reason`` set. ``ValidationError`` for an impossible length.
    """
    durations = (
        durations_for(shots, total_ms, limits) if shots else split_durations(total_ms, limits)
    )
    if llm is None:
        return split_storyboard(prompt, durations, max_chars=max_chars, extras=extras)
    lang = prompt_language(prompt)
    try:
        raw = await llm.complete(
            storyboard_system_prompt(lang),
            storyboard_request(prompt, durations, lang=lang, max_chars=max_chars, extras=extras),
            max_tokens=llm.max_tokens or min(16000, 1024 + len(durations) * max_chars * 2),
            what="write a storyboard",
        )
        return parse_storyboard(raw, durations, lang=lang, max_chars=max_chars)
    except LlmError as exc:
        return split_storyboard(
            prompt, durations, max_chars=max_chars, extras=extras, reason=exc.reason
        )


def given_storyboard(
    shots: Sequence[Mapping[str, Any]],
    limits: ClipLimits,
    *,
    total_ms: int | None = None,
    default_ms: int = 5000,
) -> Storyboard:
    """The user's own shots (``{prompt, duration_ms?}``), lengths fitted to the provider.

    Shots without ``duration_ms`` share what ``total_ms`` leaves after the others (evenly),
    or get ``default_ms``. The prompts are kept as written; each is its own subtitle.
    """
    if not shots:
        raise ValidationError("shots must not be empty")
    if len(shots) > MAX_SHOTS:
        raise ValidationError(f"at most {MAX_SHOTS} shots")
    open_ = [i for i, s in enumerate(shots) if not s.get("duration_ms")]
    fixed = sum(int(s["duration_ms"]) for s in shots if s.get("duration_ms"))
    shared: list[int] = []
    if open_:
        if total_ms is not None and total_ms - fixed > 0:
            shared = durations_for(len(open_), total_ms - fixed, limits)
        else:
            shared = [limits.fit(default_ms)] * len(open_)
    fill = iter(shared)
    out = []
    for i, shot in enumerate(shots):
        text = str(shot.get("prompt") or "").strip()
        if not text:
            raise ValidationError(f"shots[{i}].prompt must not be empty")
        ms = limits.fit(int(shot["duration_ms"])) if shot.get("duration_ms") else next(fill)
        out.append(Shot(index=i, prompt=text, duration_ms=ms, subtitle=_subtitle(text)))
    return Storyboard(shots=tuple(out), planned_by="given")
