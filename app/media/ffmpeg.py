"""The one place that runs the ffmpeg binary: off the event loop, bounded in time and output.

The binary is the static build ``imageio-ffmpeg`` ships (x264, libass with fontconfig,
freetype, libwebp, the ``xfade``/``acrossfade``/``concat``/``subtitles`` filters); it has no
``ffprobe``, so :mod:`app.media.probe` reads what ``ffmpeg -i`` prints.

:func:`run_ffmpeg` starts the binary with ``asyncio.create_subprocess_exec`` (the loop only
waits on pipes), drains stderr as it comes (keeping the first and last 32 KiB, so a chatty
run cannot fill memory or block on a full pipe), kills the process on timeout or
cancellation, and turns a failure into :class:`~app.errors.MediaError` carrying ffmpeg's own
last error lines — with every URL reduced to its scheme and host (signed query strings never
reach a log or an error) and temporary paths reduced to file names. Runs started inside
:func:`low_priority` (work nobody waits for, such as posters) get a higher niceness, so they
use only the CPU the gateway itself leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import os
import re
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import imageio_ffmpeg

from app.errors import MediaError

#: How much of stderr is kept from each end of a run.
KEEP_BYTES = 32 * 1024
_URL = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*)://([^/\s'\"?#]*)[^\s'\"]*")
_CONTEXT = re.compile(r"\[[^\]]*@ 0x[0-9a-f]+\]\s*")
_NOISE = re.compile(
    r"^(?:frame=|size=|video:|\s*(?:Stream|Input|Output|Duration|Metadata|encoder|"
    r"handler_name|vendor_id|major_brand|minor_version|compatible_brands|creation_time|"
    r"Side data|Press \[q\]|Stream mapping|Exiting))",
)


_niceness: contextvars.ContextVar[int] = contextvars.ContextVar("ffmpeg_niceness", default=0)


@contextlib.contextmanager
def low_priority(niceness: int = 15) -> Iterator[None]:
    """ffmpeg runs started in this context (this asyncio task) run at ``niceness``."""
    token = _niceness.set(niceness)
    try:
        yield
    finally:
        _niceness.reset(token)


@functools.cache
def ffmpeg_exe() -> str:
    """Path of the bundled ffmpeg binary."""
    return str(imageio_ffmpeg.get_ffmpeg_exe())


def redact(text: str, args: Sequence[str] = ()) -> str:
    """``text`` with URLs cut to ``scheme://host/…`` and local paths in ``args`` to file names."""
    for arg in sorted(args, key=len, reverse=True):
        if arg.startswith(("/", "file:/")) and len(arg) > 1:
            text = text.replace(arg, Path(arg.removeprefix("file:")).name)
    return _URL.sub(lambda m: f"{m.group(1)}://{m.group(2)}/…", text)


def is_url(source: str | Path) -> bool:
    return isinstance(source, str) and "://" in source


def source_arg(source: str | Path) -> str:
    """An input for ``-i``: a URL as given, a path made explicit (``file:`` never parses
    ``a:b`` in a file name as a protocol)."""
    if is_url(source):
        return str(source)
    return "file:" + str(Path(source).resolve())


@contextlib.asynccontextmanager
async def scratch_dir(parent: Path | None = None, prefix: str = "media-") -> AsyncIterator[Path]:
    """A temporary directory (under ``parent``: the same disk as the result), removed after."""
    if parent is not None:
        await asyncio.to_thread(parent.mkdir, parents=True, exist_ok=True)
    path = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix=prefix, dir=parent))
    try:
        yield path
    finally:
        await asyncio.shield(asyncio.to_thread(shutil.rmtree, path, ignore_errors=True))


def sweep_scratch(parent: Path, *, older_than_s: float = 6 * 3600) -> int:
    """Remove scratch directories a crashed process left in ``parent`` (by age: a process
    sharing the folder may still be using a young one); return how many went."""
    if not parent.is_dir():
        return 0
    cutoff = time.time() - older_than_s
    removed = 0
    for entry in parent.iterdir():
        try:
            if entry.is_dir() and entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
        except FileNotFoundError:
            continue
    return removed


class _Tail:
    """The first and the last ``KEEP_BYTES`` of a stream."""

    def __init__(self) -> None:
        self.head = bytearray()
        self.tail = bytearray()
        self.cut = False

    def add(self, chunk: bytes) -> None:
        room = KEEP_BYTES - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > KEEP_BYTES:
                del self.tail[: len(self.tail) - KEEP_BYTES]
                self.cut = True

    def text(self) -> str:
        gap = b"\n[...]\n" if self.cut else b""
        return (bytes(self.head) + gap + bytes(self.tail)).decode("utf-8", errors="replace")


def error_summary(stderr: str, *, lines: int = 4) -> str:
    """ffmpeg's last few meaningful lines (progress, stream listings and banners left out)."""
    kept = [
        _CONTEXT.sub("", line).strip()
        for line in stderr.replace("\r", "\n").splitlines()
        if line.strip() and not _NOISE.match(line)
    ]
    return " | ".join(kept[-lines:])[:600] or "no error output"


async def run_ffmpeg(
    args: Sequence[str | Path],
    *,
    what: str,
    timeout_s: float = 300.0,
    cwd: Path | None = None,
    check: bool = True,
) -> str:
    """Run ``ffmpeg -hide_banner -nostdin *args`` and return its stderr (head and tail).

    ``what`` names the job in errors ("joining 6 clips"). ``check=False`` returns the output
    of a failed run too (``ffmpeg -i FILE`` alone exits 1 after printing what it found).
    Raises :class:`MediaError`: retryable when the run timed out, not when ffmpeg refused.
    """
    argv = [str(a) for a in args]
    proc = await asyncio.create_subprocess_exec(
        ffmpeg_exe(),
        "-hide_banner",
        "-nostdin",
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
    )
    if _niceness.get():
        with contextlib.suppress(OSError):  # lowering a child's priority needs no rights
            os.setpriority(os.PRIO_PROCESS, proc.pid, _niceness.get())
    assert proc.stderr is not None
    stderr = proc.stderr
    out = _Tail()

    async def drain() -> None:
        while chunk := await stderr.read(65536):
            out.add(chunk)

    try:
        async with asyncio.timeout(timeout_s):
            await asyncio.gather(drain(), proc.wait())
    except TimeoutError:
        raise MediaError(
            f"{what}: ffmpeg took longer than {timeout_s:g} s", retryable=True
        ) from None
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            # Reap the child even when this task is being cancelled.
            await asyncio.shield(proc.wait())
    text = redact(out.text(), argv)
    if check and proc.returncode != 0:
        raise MediaError(f"{what}: ffmpeg failed ({error_summary(text)})", retryable=False)
    return text
