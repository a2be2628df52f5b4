"""Join 6 × 10 s clips into one long video: time and memory, at 720p and 1080p, cut and fade.

For each size the benchmark first makes six 10 s, 24 fps H.264 + AAC clips with ffmpeg's
``testsrc2`` pattern (plus light temporal grain, so x264 has real work to do; clip 3 has no
audio, as happens when providers mix). Each measurement then runs in a fresh child process
that does what the gateway will do: ``app.media.join`` on the clips, then ``store_file``
into local storage (streamed, 1 MiB chunks). It reports:

* join s and ×real time: join wall time ÷ the output's duration (target ≤ 0.5);
* cpu s: CPU time of the ffmpeg runs; ``cpu/2 ×real`` is that spread over two cores ÷ the
  output's duration — what ×real would be on two idle cores (shared machines inflate wall time);
* py RSS +MiB: growth of the Python process's peak RSS (VmHWM) over the join and upload
  (target ≤ 128 MiB: the video never passes through Python's memory);
* ffmpeg MiB: the peak RSS of the ffmpeg process doing the join (decoders, filter graph and
  encoder; independent of the video's length).

Prints a table and exits 0. Usage: ``.venv/bin/python bench/long_video.py [--sizes 720,1080]
[--clips 6] [--clip-s 10] [--preset veryfast]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZES = {720: (1280, 720), 1080: (1920, 1080)}


def hwm_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("VmHWM not found")


def make_clips(folder: Path, size: tuple[int, int], count: int, clip_s: float) -> list[Path]:
    from app.media.ffmpeg import ffmpeg_exe

    clips = []
    w, h = size
    for i in range(count):
        path = folder / f"clip{i}.mp4"
        audio = i != 2
        cmd = [ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi",
               "-i", f"testsrc2=s={w}x{h}:r=24:d={clip_s},noise=alls=6:allf=t"]  # fmt: skip
        if audio:
            cmd += ["-f", "lavfi", "-i", f"sine=f={220 * (i + 1)}:d={clip_s}"]
        cmd += ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"]
        if audio:
            cmd += ["-c:a", "aac", "-shortest"]
        subprocess.run([*cmd, str(path)], check=True)
        clips.append(path)
    return clips


def one(args: argparse.Namespace) -> None:
    """Child process: join, upload, report JSON on stdout."""
    from app.media.files import store_file
    from app.media.join import Encoding, join
    from app.storage.local import LocalStorage

    clips = [Path(p) for p in args.one.split(",")]
    out = Path(args.out)

    async def run() -> dict[str, float]:
        storage = LocalStorage(
            out.parent / "store", base_url="http://127.0.0.1:8000", signing_key=b"b" * 32
        )
        before = hwm_kib()
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_before = usage.ru_utime + usage.ru_stime
        start = time.perf_counter()
        result = await join(
            clips, out, transition=args.transition, encoding=Encoding(preset=args.preset)
        )
        joined = time.perf_counter() - start
        stored = await store_file(storage, "videos/bench.mp4", out)
        uploaded = time.perf_counter() - start - joined
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        child = usage.ru_maxrss
        await storage.aclose()
        return {
            "join_s": joined,
            "cpu_s": usage.ru_utime + usage.ru_stime - cpu_before,
            "upload_s": uploaded,
            "duration_s": result.duration_s,
            "py_growth_mib": (hwm_kib() - before) / 1024,
            "ffmpeg_mib": child / 1024,
            "out_mib": stored.size / 2**20,
        }

    print(json.dumps(asyncio.run(run())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="720,1080")
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--clip-s", type=float, default=10.0)
    parser.add_argument("--preset", default="veryfast")
    parser.add_argument("--transitions", default="cut,fade")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--transition", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(args)
        return

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-long-") as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            folder = Path(tmp) / str(size)
            folder.mkdir()
            clips = make_clips(folder, SIZES[size], args.clips, args.clip_s)
            for transition in args.transitions.split(","):
                out = folder / f"joined-{transition}.mp4"
                done = subprocess.run(
                    [sys.executable, __file__, "--one", ",".join(map(str, clips)),
                     "--out", str(out), "--transition", transition, "--preset", args.preset],
                    capture_output=True, text=True, check=True,
                )  # fmt: skip
                stats = json.loads(done.stdout)
                rows.append((size, transition, stats))
                out.unlink()

    print(f"{args.clips} clips × {args.clip_s:g} s, 24 fps, x264 preset {args.preset}, "
          f"{os.cpu_count()} CPUs")  # fmt: skip
    header = (
        f"{'size':>5} {'join':>5} {'video s':>8} {'join s':>7} {'×real':>6} {'cpu s':>6} "
        f"{'cpu/2 ×real':>11} {'upload s':>9} "
        f"{'py RSS +MiB':>12} {'ffmpeg MiB':>11} {'out MiB':>8}"
    )
    print(header)
    print("-" * len(header))
    for size, transition, s in rows:
        print(
            f"{size:>4}p {transition:>5} {s['duration_s']:>8.1f} {s['join_s']:>7.1f} "
            f"{s['join_s'] / s['duration_s']:>6.2f} {s['cpu_s']:>6.1f} "
            f"{s['cpu_s'] / 2 / s['duration_s']:>11.2f} {s['upload_s']:>9.2f} "
            f"{s['py_growth_mib']:>12.1f} {s['ffmpeg_mib']:>11.0f} {s['out_mib']:>8.1f}"
        )
    print(
        f"load average at the end: {os.getloadavg()[0]:.1f} (×real counts waiting for CPUs "
        "other processes hold; cpu/2 ×real is the ffmpeg CPU time spread over 2 cores)"
    )
    print("targets: ×real ≤ 0.5, py RSS growth ≤ 128 MiB")


if __name__ == "__main__":
    main()
