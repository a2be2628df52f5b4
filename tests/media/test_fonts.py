"""Text in videos: a CJK prompt is drawn with a CJK font (not boxes), or fails clearly."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.media import fonts
from app.media.fonts import MissingFontError, find_font, load_font, wrap_text
from app.providers.base import GenerationRequest, JobState
from app.providers.preview import PreviewProvider, render_video
from tests.mp4 import frame_rgb

pytestmark = pytest.mark.anyio

W, H = 320, 180
PROMPT = "一颗种子在黑暗的土壤里"
BOXES = "\u25a1" * len(PROMPT)  # □: what the old renderer drew for each character


@pytest.fixture
def no_fonts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """fontconfig with an empty font directory, as on a bare server image."""
    empty = tmp_path / "no-fonts"
    empty.mkdir()
    conf = tmp_path / "fonts.conf"
    conf.write_text(
        '<?xml version="1.0"?><!DOCTYPE fontconfig SYSTEM "fonts.dtd"><fontconfig>'
        f"<dir>{empty}</dir><cachedir>{tmp_path / 'cache'}</cachedir></fontconfig>"
    )
    monkeypatch.setenv("FONTCONFIG_FILE", str(conf))
    fonts.clear_cache()
    yield
    monkeypatch.delenv("FONTCONFIG_FILE")
    fonts.clear_cache()


def render_frame(tmp_path: Path, prompt: str) -> bytes:
    path = tmp_path / f"{len(list(tmp_path.iterdir()))}.mp4"
    params = {"width": W, "height": H, "fps": 24, "frames": 1}
    render_video(path, prompt, params, threading.Event())
    return frame_rgb(path, 0, W, H)


def difference(a: bytes, b: bytes) -> float:
    """Mean absolute difference per channel, 0..255."""
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)


def test_a_chinese_prompt_is_drawn_with_real_glyphs(tmp_path: Path) -> None:
    chosen = find_font(PROMPT)
    assert chosen.path is not None and fonts.cjk_lang(PROMPT) == "zh-cn"
    hanzi = render_frame(tmp_path, PROMPT)
    boxes = render_frame(tmp_path, BOXES)
    blank = render_frame(tmp_path, " ")
    # Text was drawn, and it is not a row of boxes: the glyphs differ from U+25A1's.
    assert difference(hanzi, blank) > 1.0
    assert difference(hanzi, boxes) > 1.0


def test_latin_prompts_keep_a_latin_font() -> None:
    chosen = find_font("a seed in dark soil")
    assert chosen.path is not None and fonts.cjk_lang("a seed in dark soil") is None
    assert load_font("a seed", 20).getlength("a seed") > 0


def test_without_a_cjk_font_chinese_fails_clearly(no_fonts: None) -> None:
    with pytest.raises(MissingFontError, match="no installed font can draw Chinese text") as err:
        find_font(PROMPT)
    assert "fonts-noto-cjk" in err.value.message and err.value.code == "media_error"
    with pytest.raises(MissingFontError, match="Japanese"):
        find_font("ひらがな")
    # Latin text still renders, with Pillow's own font.
    assert find_font("hello").path is None
    assert load_font("hello", 20).getlength("hello") > 0


async def test_the_preview_provider_reports_the_missing_font(
    no_fonts: None, tmp_path: Path
) -> None:
    provider = PreviewProvider(tmp_path / "out")
    job = await provider.submit(
        GenerationRequest(task_id="t1", prompt=PROMPT, duration_ms=100, fps=10)
    )
    for _ in range(400):
        status = await provider.poll(job)
        if status.state.is_terminal:
            break
        await asyncio.sleep(0.05)
    assert status.state is JobState.FAILED and status.error is not None
    assert "no installed font can draw Chinese text" in status.error.message
    await provider.aclose()


def test_wrapping_breaks_chinese_between_characters() -> None:
    font = load_font(PROMPT, 20)
    lines = wrap_text("港口小镇从黎明到夜晚的一天，渔船归港。", font, 150)
    assert len(lines) > 1 and all(font.getlength(line) <= 150 + 20 for line in lines)
    assert "".join(lines) == "港口小镇从黎明到夜晚的一天，渔船归港。"
    assert not any(line.startswith(("，", "。")) for line in lines)
    latin = load_font("x", 20)
    words = wrap_text("a harbour town seen from the hills at dawn", latin, 120)
    assert " ".join(words) == "a harbour town seen from the hills at dawn"
    assert all(latin.getlength(line) <= 120 for line in words)
    cut = wrap_text("Supercalifragilisticexpialidocious", latin, 100)
    assert len(cut) > 1 and "".join(cut) == "Supercalifragilisticexpialidocious"
