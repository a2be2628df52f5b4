"""``join``: clips of different sizes, rates and audio become one clean MP4 (decoded here)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from app.errors import MediaError, ValidationError
from app.media import join, probe, shot_cues
from tests.media.conftest import ClipMaker, audio_seconds, frame_at, loudness, pixel
from tests.mp4 import probe as decode

pytestmark = pytest.mark.anyio

SIZE = (320, 180)


@pytest.fixture
def clips(clip_maker: ClipMaker) -> list[Path]:
    """Red 1 s with a tone; green 4:3 at 29.97 fps, 1 s, silent; blue 25 fps 1.5 s, tone."""
    return [
        clip_maker("red", color="red", size=SIZE, fps="24", seconds=1.0, tone=440),
        clip_maker("green", color="green", size=(160, 120), fps="30000/1001", tone=None),
        clip_maker("blue", color="blue", size=SIZE, fps="25", seconds=1.5, tone=880),
    ]


def dominant(rgb: tuple[int, int, int]) -> str:
    names = ("red", "green", "blue")
    top = max(range(3), key=lambda i: rgb[i])
    others = [rgb[i] for i in range(3) if i != top]
    assert rgb[top] > 90 and max(others) < 60, rgb
    return names[top]


async def test_cut_normalises_size_rate_and_audio(clips: list[Path], tmp_path: Path) -> None:
    progress: list[float] = []
    out = tmp_path / "joined.mp4"
    result = await join(clips, out, transition="cut", on_progress=progress.append)

    assert (result.width, result.height, result.fps) == (320, 180, Fraction(24))
    assert result.starts_s == (0.0, 1.0, 2.0)
    assert result.clip_durations_s == (1.0, 1.0, 1.5)
    assert result.duration_s == 3.5 and result.has_audio and result.size == out.stat().st_size
    video = decode(out)  # every frame decodes without an error
    assert (video.codec, video.pix_fmt, video.width, video.height) == ("h264", "yuv420p", 320, 180)
    assert video.frames == 24 + 24 + 36 and video.faststart
    info = await probe(out)
    assert info.fps == 24 and info.sar == 1 and info.sample_rate == 48000

    for t, color in ((0.5, "red"), (1.5, "green"), (2.75, "blue")):
        assert dominant(pixel(frame_at(out, t, SIZE), SIZE, 160, 90)) == color
    # The 4:3 clip is pillarboxed, not stretched.
    assert max(pixel(frame_at(out, 1.5, SIZE), SIZE, 10, 90)) < 30

    # Sound where the clips had it, silence where one had none, and no drift at the end.
    assert loudness(out, 0.1, 0.9) > 0.03
    assert loudness(out, 1.1, 1.9) < 0.002
    assert loudness(out, 2.1, 3.4) > 0.03
    assert abs(audio_seconds(out) - 3.5) < 0.05

    assert progress == sorted(progress) and progress[-1] == 1.0 and len(progress) > 2
    assert [p.name for p in tmp_path.iterdir()] == ["joined.mp4"]  # no scratch files left


async def test_fade_overlaps_neighbours(clips: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "faded.mp4"
    result = await join(clips, out, transition="fade", fade_s=0.25)

    assert result.transition == "fade" and result.fade_s == 0.25
    assert result.starts_s == (0.0, 0.75, 1.5)
    assert result.duration_s == 3.0  # 3.5 s of clips, two overlaps of 0.25 s
    assert decode(out).frames == 72
    assert abs(audio_seconds(out) - 3.0) < 0.05

    assert dominant(pixel(frame_at(out, 0.3, SIZE), SIZE, 160, 90)) == "red"
    assert dominant(pixel(frame_at(out, 1.2, SIZE), SIZE, 160, 90)) == "green"
    assert dominant(pixel(frame_at(out, 2.5, SIZE), SIZE, 160, 90)) == "blue"
    r, g, _ = pixel(frame_at(out, 0.875, SIZE), SIZE, 160, 90)  # mid-crossfade: both show
    assert r > 40 and g > 25

    cues = shot_cues(result, ["one", "two", "three"])
    assert [(c.start_s, c.end_s) for c in cues] == [(0.0, 0.875), (0.875, 1.625), (1.625, 3.0)]


async def test_silent_clips_give_a_video_without_audio(
    clip_maker: ClipMaker, tmp_path: Path
) -> None:
    silent = clip_maker("silent", color="white", tone=None, seconds=0.5)
    result = await join([silent, silent], tmp_path / "out.mp4", transition="fade", fade_s=0.1)
    info = await probe(result.path)
    assert not result.has_audio and not info.has_audio
    assert info.frames == 24 - 2 and result.fade_s == 2 / 24


async def test_a_short_clip_limits_the_crossfade(clip_maker: ClipMaker, tmp_path: Path) -> None:
    short = clip_maker("short", color="white", seconds=0.25, tone=None)  # 6 frames
    result = await join([short, short, short], tmp_path / "out.mp4", transition="fade")
    assert result.fade_s == 2 / 24  # a third of the shortest clip, not the asked 0.5 s
    assert (await probe(result.path)).frames == 18 - 4


async def test_a_broken_clip_fails_clearly_and_leaves_nothing(
    clips: list[Path], tmp_path: Path
) -> None:
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(clips[0].read_bytes()[:4000])
    out = tmp_path / "out.mp4"
    with pytest.raises(MediaError) as caught:
        await join([clips[0], broken], out)
    assert caught.value.code == "media_error" and not caught.value.retryable
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.mp4"]


async def test_bad_arguments_are_validation_errors(clips: list[Path], tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        await join([], tmp_path / "out.mp4")
    with pytest.raises(ValidationError):
        await join(clips, tmp_path / "out.mp4", transition="wipe")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        await join(clips, tmp_path / "out.mp4", captions=["only one"])
