"""The ffmpeg helper: bounded runs that never outlive their caller, errors without secrets."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from app.errors import MediaError
from app.media.ffmpeg import error_summary, redact, run_ffmpeg

pytestmark = pytest.mark.anyio


def running_with(marker: str) -> bool:
    """Whether a process whose command line contains ``marker`` is alive (not a zombie)."""
    for proc in Path("/proc").iterdir():
        try:
            if marker in (proc / "cmdline").read_bytes().decode(errors="replace"):
                state = (proc / "stat").read_text().split(")")[-1].split()[0]
                if state != "Z":
                    return True
        except OSError:
            continue
    return False


def endless(marker: str) -> list[str]:
    """An ffmpeg run that would take a minute (reads a test source in real time)."""
    return ["-re", "-f", "lavfi", "-i", f"testsrc=size=64x48:rate=5:duration=60,drawbox=t={marker}",
            "-f", "null", "-"]  # fmt: skip


async def test_a_run_past_its_timeout_is_killed() -> None:
    marker = "1" + uuid.uuid4().hex[:6].translate(str.maketrans("abcdef", "234567"))
    with pytest.raises(MediaError, match=r"took longer than 0\.5 s") as caught:
        await run_ffmpeg(endless(marker), what="an endless job", timeout_s=0.5)
    assert caught.value.retryable
    assert not running_with(marker)


async def test_a_cancelled_run_is_killed() -> None:
    marker = "2" + uuid.uuid4().hex[:6].translate(str.maketrans("abcdef", "234567"))
    job = asyncio.create_task(run_ffmpeg(endless(marker), what="endless", timeout_s=120))
    for _ in range(200):
        if running_with(marker):
            break
        await asyncio.sleep(0.05)
    assert running_with(marker)
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    assert not running_with(marker)


async def test_a_failed_run_says_what_ffmpeg_said() -> None:
    with pytest.raises(MediaError) as caught:
        await run_ffmpeg(["-f", "lavfi", "-i", "nosuchsource", "-f", "null", "-"], what="a test")
    message = caught.value.message
    assert message.startswith("a test: ffmpeg failed (") and "nosuchsource" in message
    assert "@ 0x" not in message and not caught.value.retryable


def test_redaction_keeps_host_drops_paths_and_queries() -> None:
    text = (
        "[https @ 0x55] https://bucket.oss-cn-hangzhou.aliyuncs.com/videos/a.mp4?"
        "OSSAccessKeyId=AK&Signature=SIG: Server returned 403\n"
        "Error opening input file /tmp/xyz/work/clip0.mp4."
    )
    out = redact(text, ["-i", "file:/tmp/xyz/work/clip0.mp4", "/tmp/xyz/work/clip0.mp4"])
    assert "Signature" not in out and "OSSAccessKeyId" not in out and "/videos/" not in out
    assert "https://bucket.oss-cn-hangzhou.aliyuncs.com/…" in out
    assert "/tmp/xyz" not in out and "clip0.mp4" in out
    assert error_summary("frame=  1 fps=0\n[h264 @ 0x1] broken\n  Stream #0:0: Video") == "broken"


def test_scratch_left_by_a_crash_is_swept_by_age(tmp_path: Path) -> None:
    import os
    import time

    from app.media.ffmpeg import sweep_scratch

    old, young = tmp_path / ".long-old", tmp_path / ".long-young"
    for folder in (old, young):
        (folder / "clips").mkdir(parents=True)
        (folder / "clips" / "0.mp4").write_bytes(b"x")
    day_ago = time.time() - 86400
    os.utime(old, (day_ago, day_ago))
    assert sweep_scratch(tmp_path) == 1
    assert not old.exists() and (young / "clips" / "0.mp4").exists()
    assert sweep_scratch(tmp_path / "missing") == 0
