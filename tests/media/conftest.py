"""Clips for the media tests, made with the bundled ffmpeg (small, fast to encode), and
helpers that decode results: frames as RGB, audio loudness per window."""

from __future__ import annotations

import array
import math
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.mp4 import FFMPEG

ClipMaker = Callable[..., Path]


def make_clip(
    path: Path,
    *,
    color: str = "red",
    size: tuple[int, int] = (320, 180),
    fps: str = "24",
    seconds: float = 1.0,
    tone: float | None = 440.0,
    audio_s: float | None = None,
    source: str | None = None,
) -> Path:
    """An H.264 MP4 of one colour (or a lavfi ``source``), with a sine tone unless ``tone`` is
    ``None``; ``audio_s`` makes the audio longer or shorter than the video."""
    w, h = size
    video = source or f"color=c={color}:s={w}x{h}:r={fps}"
    cmd = [FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i", f"{video}:d={seconds}"]
    if tone is not None:
        cmd += ["-f", "lavfi", "-i", f"sine=f={tone}:d={audio_s or seconds}"]
    cmd += ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if tone is not None:
        cmd += ["-c:a", "aac"]
    subprocess.run([*cmd, str(path)], check=True)
    return path


@pytest.fixture(scope="session")
def clip_maker(tmp_path_factory: pytest.TempPathFactory) -> ClipMaker:
    """``clip_maker(name, **make_clip options)``: made once per session, then reused."""
    folder = tmp_path_factory.mktemp("clips")
    made: dict[str, Path] = {}

    def get(name: str, **options: object) -> Path:
        if name not in made:
            made[name] = make_clip(folder / f"{name}.mp4", **options)  # type: ignore[arg-type]
        return made[name]

    return get


def frame_at(path: Path, seconds: float, size: tuple[int, int]) -> bytes:
    """The frame shown at ``seconds`` as raw RGB (decoded, not seeked to a keyframe)."""
    w, h = size
    out = subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(path), "-ss", f"{seconds:.3f}", "-frames:v", "1",
         "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    )  # fmt: skip
    assert len(out.stdout) == w * h * 3
    return out.stdout


def pixel(frame: bytes, size: tuple[int, int], x: int, y: int) -> tuple[int, int, int]:
    i = (y * size[0] + x) * 3
    return frame[i], frame[i + 1], frame[i + 2]


def loudness(path: Path, start_s: float, end_s: float) -> float:
    """RMS (0..1) of the audio between two times, mono, 16 kHz."""
    out = subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(path), "-map", "0:a:0", "-ss", f"{start_s:.3f}",
         "-to", f"{end_s:.3f}", "-ac", "1", "-ar", "16000", "-f", "s16le", "-"],
        capture_output=True, check=True,
    )  # fmt: skip
    samples = array.array("h", out.stdout)
    assert samples, "no audio decoded"
    return math.sqrt(sum(s * s for s in samples) / len(samples)) / 32768


def audio_seconds(path: Path) -> float:
    """How long the audio track lasts when decoded."""
    out = subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(path), "-map", "0:a:0", "-ac", "1", "-ar", "16000",
         "-f", "s16le", "-"],
        capture_output=True, check=True,
    )  # fmt: skip
    return len(out.stdout) / 2 / 16000
