"""Subtitles: WebVTT that players (and ffmpeg) read, and Chinese burned in with real glyphs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from app.media import Cue, burn_subtitles, join, to_webvtt
from app.media.subtitles import ass_script
from tests.media.conftest import ClipMaker, frame_at
from tests.mp4 import FFMPEG

pytestmark = pytest.mark.anyio

SIZE = (320, 180)


def test_webvtt_is_numbered_timed_and_escaped() -> None:
    cues = [
        Cue(0.0, 4.875, "A seed <in> dark & soil"),
        Cue(4.875, 3725.5, "种子发芽\n\n--> 破土而出"),
    ]
    assert to_webvtt(cues) == (
        "WEBVTT\n\n"
        "1\n00:00:00.000 --> 00:00:04.875\nA seed &lt;in&gt; dark &amp; soil\n\n"
        "2\n00:00:04.875 --> 01:02:05.500\n种子发芽\n--&gt; 破土而出\n"
    )


def test_ffmpeg_reads_the_webvtt_back(tmp_path: Path) -> None:
    vtt = tmp_path / "subs.vtt"
    vtt.write_text(to_webvtt([Cue(0, 1.5, "一颗种子"), Cue(1.5, 3.25, "a sprout & leaves")]))
    srt = subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(vtt), "-f", "srt", "-"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "00:00:00,000 --> 00:00:01,500\n一颗种子" in srt
    assert "00:00:01,500 --> 00:00:03,250\na sprout & leaves" in srt


def band(frame: bytes, top: int, bottom: int) -> bytes:
    return frame[top * SIZE[0] * 3 : bottom * SIZE[0] * 3]


def difference(a: bytes, b: bytes) -> float:
    """Share (in %) of the bytes that changed clearly (text strokes, not encoder noise)."""
    return 100 * sum(abs(x - y) > 40 for x, y in zip(a, b, strict=True)) / len(a)


async def test_chinese_is_burned_in_with_glyphs_not_boxes(
    clip_maker: ClipMaker, tmp_path: Path
) -> None:
    clip = clip_maker("gray", color="gray", size=SIZE, seconds=1.0, tone=None)
    hanzi = await burn_subtitles(clip, [Cue(0, 1, "种子破土发芽")], tmp_path / "zh.mp4")
    boxes = await burn_subtitles(clip, [Cue(0, 1, "\u25a1" * 6)], tmp_path / "boxes.mp4")
    plain = frame_at(clip, 0.5, SIZE)
    text = frame_at(hanzi, 0.5, SIZE)
    bottom = (SIZE[1] * 2 // 3, SIZE[1])
    assert difference(band(text, *bottom), band(plain, *bottom)) > 0.5  # text drawn at the bottom
    assert difference(band(text, 0, SIZE[1] // 2), band(plain, 0, SIZE[1] // 2)) < 0.1  # only there
    assert difference(band(text, *bottom), band(frame_at(boxes, 0.5, SIZE), *bottom)) > 0.5


def test_the_ass_script_names_the_cjk_font_and_wraps_lines() -> None:
    script, font = ass_script(
        [Cue(0, 2, "港口小镇从黎明到夜晚的一天，渔船归港，灯塔亮起")], 320, 180
    )
    assert font is not None
    style = next(line for line in script.splitlines() if line.startswith("Style: Default,"))
    assert style.split(",")[1] not in ("", "Arial")
    dialogue = script.splitlines()[-1]
    assert dialogue.startswith("Dialogue: 0,0:00:00.00,0:00:02.00,Default,,0,0,0,,")
    assert r"\N" in dialogue  # broken into lines: libass would not break Chinese itself


async def test_join_burns_each_shots_caption_on_its_shot(
    clip_maker: ClipMaker, tmp_path: Path
) -> None:
    clip = clip_maker("gray", color="gray", size=SIZE, seconds=1.0, tone=None)
    captioned = await join(
        [clip, clip], tmp_path / "c.mp4", transition="fade", fade_s=0.25,
        captions=["第一个镜头", "Shot two"],
    )  # fmt: skip
    plain = frame_at(clip, 0.5, SIZE)
    bottom = (SIZE[1] * 2 // 3, SIZE[1])
    first = frame_at(captioned.path, 0.3, SIZE)
    second = frame_at(captioned.path, 1.5, SIZE)
    assert difference(band(first, *bottom), band(plain, *bottom)) > 0.5
    assert difference(band(second, *bottom), band(plain, *bottom)) > 0.5
    assert difference(band(first, *bottom), band(second, *bottom)) > 0.5  # different captions
