"""``probe``: duration, frame size, frame rate and audio of a video, from the bundled ffmpeg.

The imageio-ffmpeg build has no ``ffprobe`` and imageio-ffmpeg's own header parser is
private, so this reads what one ``ffmpeg -i SRC -map 0:v:0? -c copy -f null -`` prints: the
input header (container duration, the first video and audio streams) and, because the video
stream is copied to nowhere without decoding, the exact number of video frames — cheap even
for long files. Rotated phone videos report their display size (ffmpeg rotates on decode).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from app.errors import MediaError
from app.media.ffmpeg import error_summary, run_ffmpeg, source_arg

_DURATION = re.compile(r"Duration: (\d+):(\d+):(\d+(?:\.\d+)?)")
_STREAM = re.compile(r"^\s*Stream #\d+:\d+\S*: (Video|Audio): (.*)$", re.M)
_SIZE = re.compile(r"\b(\d{2,5})x(\d{2,5})\b")
_SAR = re.compile(r"\[SAR (\d+):(\d+)")
_FPS = re.compile(r"([\d.]+)(k?) (?:fps|tbr)\b")
_RATE = re.compile(r"(\d+) Hz")
_ROTATION = re.compile(r"rotation of (-?[\d.]+) degrees")
_FRAMES = re.compile(r"frame=\s*(\d+)")
_NTSC = (24, 30, 48, 60, 120)


@dataclass(frozen=True, kw_only=True)
class MediaInfo:
    """What a video file holds. ``duration_s`` is the container's; ``video_duration_s`` is
    frames ÷ fps (what a join uses)."""

    duration_s: float
    width: int
    height: int
    fps: Fraction
    frames: int
    video_codec: str
    pix_fmt: str
    sar: Fraction
    has_audio: bool
    audio_codec: str | None = None
    sample_rate: int | None = None
    rotation: int = 0

    @property
    def video_duration_s(self) -> float:
        if self.frames and self.fps:
            return float(self.frames / self.fps)
        return self.duration_s


def parse_fps(text: str) -> Fraction | None:
    """``24``, ``29.97``, ``12.5k`` as printed by ffmpeg → an exact rate (NTSC rates rebuilt)."""
    match = _FPS.search(text)
    if not match:
        return None
    value = float(match.group(1)) * (1000 if match.group(2) else 1)
    if value <= 0:
        return None
    for base in _NTSC:
        if abs(value - base * 1000 / 1001) < 0.006:
            return Fraction(base * 1000, 1001)
    return Fraction(value).limit_denominator(1000)


def parse_probe(text: str) -> MediaInfo:
    """Read ffmpeg's report of one input (see the module docstring); ``MediaError`` when it
    holds no video stream."""
    header = text.split("Stream mapping:", 1)[0].split("Output #0", 1)[0]
    video = audio = None
    for kind, rest in _STREAM.findall(header):
        if kind == "Video" and video is None and "attached pic" not in rest:
            video = rest
        elif kind == "Audio" and audio is None:
            audio = rest
    if video is None:
        raise MediaError("the file has no video stream", retryable=False)
    size = _SIZE.search(video)
    if size is None:
        raise MediaError("ffmpeg did not report the video's frame size", retryable=False)
    width, height = int(size.group(1)), int(size.group(2))
    rotation_match = _ROTATION.search(header)
    rotation = round(float(rotation_match.group(1))) % 360 if rotation_match else 0
    if rotation in (90, 270):
        width, height = height, width
    parts = [part.strip() for part in re.split(r",(?![^(]*\))", video)]
    codec = parts[0].split()[0] if parts and parts[0] else "unknown"
    pix_fmt = parts[1].split("(")[0] if len(parts) > 1 else "unknown"
    sar_match = _SAR.search(video)
    sar = Fraction(int(sar_match.group(1)), int(sar_match.group(2) or 1)) if sar_match else None
    duration = _DURATION.search(header)
    frames = _FRAMES.findall(text)
    return MediaInfo(
        duration_s=(
            int(duration.group(1)) * 3600 + int(duration.group(2)) * 60 + float(duration.group(3))
            if duration
            else 0.0
        ),
        width=width,
        height=height,
        fps=parse_fps(video) or Fraction(0),
        frames=int(frames[-1]) if frames else 0,
        video_codec=codec,
        pix_fmt=pix_fmt,
        sar=sar if sar else Fraction(1),
        has_audio=audio is not None,
        audio_codec=audio.split()[0] if audio else None,
        sample_rate=int(rate.group(1)) if audio and (rate := _RATE.search(audio)) else None,
        rotation=rotation,
    )


async def probe(source: Path | str, *, timeout_s: float = 60.0) -> MediaInfo:
    """Duration, size, fps, frame count and audio of ``source`` (a file, or a URL ffmpeg can
    read). ``MediaError`` when it cannot be read or holds no video."""
    text = await run_ffmpeg(
        ["-i", source_arg(source), "-map", "0:v:0?", "-c", "copy", "-f", "null", "-"],
        what="reading the video",
        timeout_s=timeout_s,
        check=False,  # a file without video makes this exit 1; parse_probe says why
    )
    if "Input #0" not in text:
        raise MediaError(f"cannot read the video ({error_summary(text)})", retryable=False)
    return parse_probe(text)
