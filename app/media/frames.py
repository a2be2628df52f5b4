"""Single frames out of a video: the last one (to chain shots) and evenly spaced samples.

Images are written in the format the output name asks for — ``.png`` (lossless), ``.jpg`` /
``.jpeg`` or ``.webp`` — and atomically. ``last_frame`` seeks to half a second before the end
of the *video* stream (the container may run longer with audio) and keeps the last frame it
decodes (``reverse`` over those few frames), so only one image is encoded.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from app.errors import MediaError, ValidationError
from app.media.ffmpeg import run_ffmpeg, scratch_dir, source_arg
from app.media.probe import MediaInfo, probe

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


def image_args(out: Path) -> list[str]:
    """Encoder options for a still image named ``out``."""
    suffix = out.suffix.lower()
    if suffix == ".png":
        return ["-c:v", "png", "-pix_fmt", "rgb24"]
    if suffix in (".jpg", ".jpeg"):
        return ["-c:v", "mjpeg", "-q:v", "3"]
    if suffix == ".webp":
        return ["-c:v", "libwebp", "-quality", "82"]
    raise ValidationError(f"unsupported image type {suffix!r}; use one of {IMAGE_SUFFIXES}")


def fit_filter(info: MediaInfo, max_side: int | None) -> str:
    """A ``scale`` filter bringing the long side down to ``max_side`` (``null`` if it fits)."""
    long_side = max(info.width, info.height)
    if not max_side or long_side <= max_side:
        return "null"
    ratio = max_side / long_side
    return f"scale={2 * round(info.width * ratio / 2)}:{2 * round(info.height * ratio / 2)}"


async def write_image(args: list[str], out: Path, *, what: str, timeout_s: float) -> Path:
    """Run ffmpeg ``args`` (inputs and filters) writing one image to ``out``, atomically."""
    part = out.with_name(f".{out.stem}.part{out.suffix}")
    try:
        await run_ffmpeg(
            ["-v", "error", *args, "-frames:v", "1", "-update", "1", *image_args(out),
             "-y", "file:" + str(part.resolve())],
            what=what,
            timeout_s=timeout_s,
        )  # fmt: skip
        if not await asyncio.to_thread(part.is_file):
            raise MediaError(f"{what}: ffmpeg wrote no image", retryable=False)
        await asyncio.to_thread(os.replace, part, out)
    except BaseException:
        await asyncio.shield(asyncio.to_thread(part.unlink, missing_ok=True))
        raise
    return out


async def last_frame(
    source: Path | str,
    out: Path,
    *,
    info: MediaInfo | None = None,
    max_side: int | None = None,
    timeout_s: float = 60.0,
) -> Path:
    """Write the last frame of ``source`` to ``out`` (PNG, JPEG or WebP by its suffix)."""
    image_args(out)  # an unsupported suffix fails before any work
    info = info or await probe(source)
    start = max(0.0, info.video_duration_s - 0.5)
    return await write_image(
        ["-ss", f"{start:.3f}", "-i", source_arg(source), "-map", "0:v:0",
         "-vf", f"reverse,{fit_filter(info, max_side)}"],
        out,
        what="taking the last frame",
        timeout_s=timeout_s,
    )  # fmt: skip


async def sample_frames(
    source: Path | str,
    count: int,
    *,
    info: MediaInfo | None = None,
    max_side: int | None = 512,
    suffix: str = ".jpg",
    timeout_s: float = 60.0,
) -> list[bytes]:
    """``count`` frames spread evenly over ``source`` (the middle of each ``1/count`` of its
    length), as encoded images, from one ffmpeg run."""
    if count < 1:
        raise ValidationError("count must be at least 1")
    info = info or await probe(source)
    length = info.video_duration_s or info.duration_s
    times = [length * (k + 0.5) / count for k in range(count)]
    scale = fit_filter(info, max_side)
    async with scratch_dir(None, "frames-") as work:
        args: list[str] = ["-v", "error"]
        for t in times:
            args += ["-ss", f"{t:.3f}", "-i", source_arg(source)]
        for k in range(count):
            args += ["-map", f"{k}:v:0", "-vf", scale, "-frames:v", "1", "-update", "1"]
            args += [*image_args(Path(f"frame{suffix}")), "-y", f"frame{k}{suffix}"]
        await run_ffmpeg(args, what="sampling frames", timeout_s=timeout_s, cwd=work)
        images = []
        for k in range(count):
            path = work / f"frame{k}{suffix}"
            if not await asyncio.to_thread(path.is_file):
                raise MediaError("sampling frames: ffmpeg wrote no image", retryable=False)
            images.append(await asyncio.to_thread(path.read_bytes))
    return images
