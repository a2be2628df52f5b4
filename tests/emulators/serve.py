"""Run the Ark (Seedance) emulator as a server of its own: a container in the deploy tests, a
target for ``bench/locustfile.py``.

    python -m tests.emulators.serve --host 0.0.0.0 --port 8080 --api-key KEY --running-s 3

Its jobs return a real MP4 (1 s of ffmpeg's test pattern, made at start with the ffmpeg that
``imageio-ffmpeg`` ships). ``GET /_emulator/jobs`` lists every job it accepted.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import imageio_ffmpeg
import uvicorn

from tests.emulators import ark
from tests.emulators.faults import Videos


def pattern_mp4() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "video.mp4"
        subprocess.run(
            [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-f", "lavfi",
             "-i", "testsrc=size=320x240:rate=8", "-t", "1", "-pix_fmt", "yuv420p",
             "-c:v", "libx264", "-movflags", "+faststart", str(out)],
            check=True,
        )  # fmt: skip
        return out.read_bytes()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.emulators.serve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--api-key", default="ark-test-key")
    parser.add_argument("--queued-s", type=float, default=0.5)
    parser.add_argument("--running-s", type=float, default=2.0)
    args = parser.parse_args(argv)
    state = ark.ArkState(
        api_key=args.api_key,
        videos=Videos(pattern_mp4()),
        queued_s=args.queued_s,
        running_s=args.running_s,
    )
    uvicorn.run(ark.create_app(state), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
