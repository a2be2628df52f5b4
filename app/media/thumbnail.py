"""``thumbnail``: a poster frame for a video, JPEG, WebP or PNG.

Providers often open on a black or faded-in frame, so the poster is not the first frame:
ffmpeg's ``thumbnail`` filter picks, among frames sampled 4 per second over a window that
starts a tenth into the video (at most 2 s in), the one whose colour histogram is closest to
the window's average — a frame that shows what the video mostly shows. Frames are scaled down
before the filter holds them, so memory stays small at any resolution.
"""

from __future__ import annotations

from pathlib import Path

from app.media.ffmpeg import source_arg
from app.media.frames import fit_filter, image_args, write_image
from app.media.probe import MediaInfo, probe

WINDOW_S = 5.0
SAMPLES_PER_S = 4


async def thumbnail(
    source: Path | str,
    out: Path,
    *,
    info: MediaInfo | None = None,
    max_side: int | None = 1280,
    timeout_s: float = 60.0,
) -> Path:
    """Write a representative frame of ``source`` (a file or a URL ffmpeg can read) to
    ``out``; the format follows its suffix (``.jpg``, ``.webp``, ``.png``)."""
    image_args(out)  # an unsupported suffix fails before any work
    info = info or await probe(source)
    length = info.video_duration_s or info.duration_s
    start = min(length * 0.1, 2.0)
    window = max(0.0, min(length - start, WINDOW_S))
    samples = max(1, min(20, round(window * SAMPLES_PER_S)))
    chain = f"fps={SAMPLES_PER_S},{fit_filter(info, max_side)},thumbnail=n={samples}"
    if window < 1 / SAMPLES_PER_S:  # a clip of a few frames: its first frame
        start, chain = 0.0, fit_filter(info, max_side)
    return await write_image(
        ["-ss", f"{start:.3f}", "-t", f"{max(window, 0.5):.3f}", "-i", source_arg(source),
         "-map", "0:v:0", "-vf", chain],
        out,
        what="making a thumbnail",
        timeout_s=timeout_s,
    )  # fmt: skip
