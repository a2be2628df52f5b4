"""Frames → H.264 MP4 (yuv420p, ``+faststart``) through the ffmpeg that imageio-ffmpeg ships.

diffusers' ``export_to_video`` leaves the index (``moov``) at the end of the file, so a browser must
download the whole video before playing it; ``-movflags +faststart`` moves it to the front.
"""

from __future__ import annotations

import os
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import numpy.typing as npt


def write_mp4(frames: npt.NDArray[np.uint8], path: Path, *, fps: int) -> Path:
    """Write ``frames`` (F×H×W×3, uint8) to ``path`` atomically (a ``.part`` file, then rename)."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(
            f"expected uint8 frames of shape F×H×W×3, got {frames.dtype} {frames.shape}"
        )
    _, height, width, _ = frames.shape
    part = path.with_name(path.name + ".part")
    writer = imageio_ffmpeg.write_frames(
        str(part),
        (width, height),
        fps=fps,
        codec="libx264",
        pix_fmt_in="rgb24",
        pix_fmt_out="yuv420p",
        quality=8,
        macro_block_size=16,
        ffmpeg_log_level="error",
        # The muxer is told the format explicitly because the temporary name ends in ".part".
        output_params=["-movflags", "+faststart", "-f", "mp4"],
    )
    try:
        writer.send(None)
        for frame in frames:
            writer.send(np.ascontiguousarray(frame).tobytes())
    finally:
        writer.close()
    os.replace(part, path)
    return path
