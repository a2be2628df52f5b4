"""Checks of real MP4 files with the ffmpeg binary bundled by imageio-ffmpeg."""

from __future__ import annotations

import re
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path

import imageio_ffmpeg

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()


@dataclass(frozen=True)
class VideoInfo:
    codec: str
    pix_fmt: str
    width: int
    height: int
    frames: int
    faststart: bool


def top_level_atoms(path: Path) -> list[str]:
    atoms = []
    with path.open("rb") as fh:
        while header := fh.read(8):
            size, kind = struct.unpack(">I4s", header)
            if size == 1:
                size = struct.unpack(">Q", fh.read(8))[0]
                fh.seek(size - 16, 1)
            elif size == 0:
                atoms.append(kind.decode("latin-1"))
                break
            else:
                fh.seek(size - 8, 1)
            atoms.append(kind.decode("latin-1"))
    return atoms


def probe(path: Path) -> VideoInfo:
    """Decode every frame (errors fail) and read the stream's codec, pixel format and size."""
    decoded = subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(path), "-f", "null", "-"], capture_output=True, text=True
    )
    assert decoded.returncode == 0 and not decoded.stderr.strip(), decoded.stderr
    info = subprocess.run([FFMPEG, "-hide_banner", "-i", str(path)], capture_output=True, text=True)
    match = re.search(r"Video: (\w+).*?, (\w+)\(.*?\), (\d+)x(\d+)", info.stderr)
    assert match, info.stderr
    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    atoms = top_level_atoms(path)
    return VideoInfo(
        codec=match.group(1),
        pix_fmt=match.group(2),
        width=int(match.group(3)),
        height=int(match.group(4)),
        frames=frames,
        faststart="moov" in atoms and atoms.index("moov") < atoms.index("mdat"),
    )


def frame_rgb(path: Path, index: int, width: int, height: int) -> bytes:
    """The ``index``-th frame as raw RGB bytes."""
    out = subprocess.run(
        [FFMPEG, "-v", "error", "-i", str(path), "-vf", f"select=eq(n\\,{index})",
         "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True,
    )  # fmt: skip
    assert len(out.stdout) == width * height * 3
    return out.stdout
