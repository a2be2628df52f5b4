"""``probe``, ``thumbnail``, ``last_frame`` and ``sample_frames`` on real files and over HTTP."""

from __future__ import annotations

import io
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import pytest
from PIL import Image, ImageStat
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from app.errors import MediaError, ValidationError
from app.media import last_frame, probe, sample_frames, thumbnail
from tests.emulators.server import serve_in_thread
from tests.media.conftest import ClipMaker, frame_at, make_clip
from tests.mp4 import FFMPEG

pytestmark = pytest.mark.anyio

SECRET = "s3cr3t-signature-value"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A file server that wants ``?sig=SECRET`` (like a signed storage URL), with ranges."""
    folder = tmp_path_factory.mktemp("served")

    async def serve(request: Request) -> Response:
        path = folder / request.path_params["name"]
        if request.query_params.get("sig") != SECRET or not path.is_file():
            return Response(status_code=403)
        return FileResponse(path)

    app = Starlette(routes=[Route("/files/{name}", serve)])
    with serve_in_thread(app) as base_url:
        yield base_url, folder


def black_then(path: Path, color: str, *, black_s: float, then_s: float) -> Path:
    """``black_s`` of black, then ``then_s`` of ``color`` (a fade-in opening, like providers')."""
    import subprocess

    subprocess.run(
        [FFMPEG, "-v", "error", "-y",
         "-f", "lavfi", "-i", f"color=c=black:s=640x360:r=24:d={black_s}",
         "-f", "lavfi", "-i", f"color=c={color}:s=640x360:r=24:d={then_s}",
         "-filter_complex", "[0:v][1:v]concat=n=2:v=1[v]", "-map", "[v]",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip
    return path


def mean_rgb(data: bytes) -> tuple[float, ...]:
    return tuple(ImageStat.Stat(Image.open(io.BytesIO(data)).convert("RGB")).mean)


async def test_probe_reads_size_rate_frames_and_audio(clip_maker: ClipMaker) -> None:
    info = await probe(clip_maker("probe-a", size=(320, 240), fps="30000/1001", seconds=1.5))
    assert (info.width, info.height, info.fps) == (320, 240, Fraction(30000, 1001))
    assert info.frames == 45 and info.has_audio and info.audio_codec == "aac"
    assert info.video_codec == "h264" and info.pix_fmt == "yuv420p"
    assert abs(info.video_duration_s - 1.5) < 0.01

    silent = await probe(clip_maker("probe-b", tone=None, seconds=0.5))
    assert not silent.has_audio and silent.frames == 12 and silent.fps == 24


async def test_probe_failures_are_clear(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_text("not a video")
    with pytest.raises(MediaError, match="cannot read the video") as caught:
        await probe(junk)
    assert str(tmp_path) not in caught.value.message  # temp paths shortened to file names
    audio_only = tmp_path / "audio.m4a"
    import subprocess

    subprocess.run([FFMPEG, "-v", "error", "-f", "lavfi", "-i", "sine=d=0.5", str(audio_only)],
                   check=True)  # fmt: skip
    with pytest.raises(MediaError, match="no video stream"):
        await probe(audio_only)


async def test_thumbnail_skips_a_black_opening(tmp_path: Path) -> None:
    video = black_then(tmp_path / "in.mp4", "yellow", black_s=1.0, then_s=3.0)
    assert max(frame_at(video, 0.0, (640, 360))) < 30  # a first-frame poster would be black
    out = await thumbnail(video, tmp_path / "poster.jpg")
    with Image.open(out) as image:
        assert image.format == "JPEG" and image.size == (640, 360)
        r, g, b = ImageStat.Stat(image.convert("RGB")).mean
    assert r > 180 and g > 180 and b < 80  # yellow, not the black opening

    small = await thumbnail(video, tmp_path / "poster.webp", max_side=320)
    with Image.open(small) as image:
        assert image.format == "WEBP" and image.size == (320, 180)


async def test_thumbnail_of_a_very_short_clip(clip_maker: ClipMaker, tmp_path: Path) -> None:
    clip = clip_maker("two-frames", color="blue", seconds=2 / 24, tone=None)
    with Image.open(await thumbnail(clip, tmp_path / "p.png")) as image:
        assert image.format == "PNG" and image.getpixel((160, 90))[2] > 200  # type: ignore[index]


async def test_last_frame_is_the_last_video_frame(tmp_path: Path) -> None:
    # Audio runs 1 s past the video: the last *video* frame is wanted, not a seek past it.
    video = tmp_path / "in.mp4"
    make_clip(video, source="testsrc2=s=320x180:r=24", seconds=2.0, audio_s=3.0)
    info = await probe(video)
    assert info.duration_s > 2.5 and info.frames == 48

    out = await last_frame(video, tmp_path / "last.png", info=info)
    expected = tmp_path / "expected.png"
    import subprocess

    subprocess.run([FFMPEG, "-v", "error", "-i", str(video), "-vf", "select=eq(n\\,47)",
                    "-frames:v", "1", str(expected)], check=True)  # fmt: skip
    with Image.open(out) as got, Image.open(expected) as want:
        assert got.size == want.size == (320, 180)
        assert got.convert("RGB").tobytes() == want.convert("RGB").tobytes()

    with pytest.raises(ValidationError):
        await last_frame(video, tmp_path / "last.gif")


async def test_sample_frames_spread_over_the_video(tmp_path: Path) -> None:
    video = black_then(tmp_path / "in.mp4", "red", black_s=1.0, then_s=3.0)
    frames = await sample_frames(video, 4, max_side=160)
    assert len(frames) == 4
    colors = [mean_rgb(f) for f in frames]
    assert max(colors[0]) < 30  # 0.5 s: still black
    assert all(c[0] > 180 and c[1] < 60 for c in colors[1:])  # 1.5, 2.5, 3.5 s: red
    with Image.open(io.BytesIO(frames[0])) as image:
        assert image.format == "JPEG" and image.size == (160, 90)


async def test_sources_can_be_signed_urls_that_never_leak(
    files: tuple[str, Path], clip_maker: ClipMaker, tmp_path: Path
) -> None:
    base_url, folder = files
    (folder / "v.mp4").write_bytes(clip_maker("served", seconds=1.0).read_bytes())
    url = f"{base_url}/files/v.mp4?sig={SECRET}"
    info = await probe(url)
    assert info.frames == 24
    out = await thumbnail(url, tmp_path / "p.jpg", info=info)
    assert out.stat().st_size > 0

    with pytest.raises(MediaError) as caught:
        await probe(f"{base_url}/files/missing.mp4?sig={SECRET}")
    assert SECRET not in caught.value.message and "/files/missing" not in caught.value.message
    assert "http://127.0.0.1" in caught.value.message  # scheme and host are kept
