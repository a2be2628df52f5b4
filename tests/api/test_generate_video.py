"""End to end on the embedded defaults: a real MP4 from ``POST /generate-video``."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.conftest import LiveGateway
from tests.mp4 import frame_rgb, probe


def download(url: str, dest: Path) -> Path:
    response = httpx.get(url, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "video/mp4"
    dest.write_bytes(response.content)
    return dest


def test_seed_request_returns_a_playable_portrait_mp4(
    live_gateway: LiveGateway, tmp_path: Path
) -> None:
    body = {"prompt": "a cat playing piano", "aspect_ratio": "9:16", "duration_ms": 3000, "fps": 12}
    response = live_gateway.client.post("/generate-video", json=body)

    assert response.status_code == 200, response.text
    result = response.json()
    assert result["status"] == "succeeded"
    assert result["provider"] == "preview"
    assert result["prompt"] == "a cat playing piano"
    assert result["aspect_ratio"] == "9:16" and result["duration_ms"] == 3000
    assert result["filename"].startswith("video_") and result["filename"].endswith(".mp4")
    assert result["video_url"].startswith(f"{live_gateway.base_url}/files/videos/")
    assert result["expires_at"]

    video = probe(download(result["video_url"], tmp_path / "v.mp4"))
    assert video.codec == "h264"
    assert video.pix_fmt == "yuv420p"
    assert video.faststart
    assert video.height > video.width  # portrait
    assert video.width % 2 == 0 and video.height % 2 == 0
    assert video.frames == 36  # 3 s × 12 fps, exactly


@pytest.mark.parametrize(
    ("aspect_ratio", "duration_ms", "fps", "frames", "size"),
    [
        ("16:9", 1000, 8, 8, (854, 480)),
        ("1:1", 500, 10, 5, (480, 480)),
        ("21:9", 500, 12, 6, (1120, 480)),
    ],
)
def test_geometry_and_frame_count_follow_the_request(
    live_gateway: LiveGateway,
    tmp_path: Path,
    aspect_ratio: str,
    duration_ms: int,
    fps: int,
    frames: int,
    size: tuple[int, int],
) -> None:
    body = {"prompt": "waves", "aspect_ratio": aspect_ratio, "duration_ms": duration_ms, "fps": fps}
    result = live_gateway.client.post("/generate-video", json=body).json()
    video = probe(download(result["video_url"], tmp_path / "v.mp4"))
    assert (video.width, video.height) == size
    assert video.frames == frames


def test_the_video_shows_the_prompt(live_gateway: LiveGateway, tmp_path: Path) -> None:
    def white_pixels(prompt: str) -> int:
        body = {"prompt": prompt, "aspect_ratio": "16:9", "duration_ms": 500, "fps": 4}
        result = live_gateway.client.post("/generate-video", json=body).json()
        path = download(result["video_url"], tmp_path / "v.mp4")
        rgb = frame_rgb(path, 0, 854, 480)
        band = rgb[854 * 3 * 200 : 854 * 3 * 280]  # the caption's rows, mid-frame
        return sum(
            1
            for i in range(0, len(band), 3)
            if band[i] > 220 and band[i + 1] > 220 and band[i + 2] > 220
        )

    # The caption is the only white in the picture: more words, more white pixels.
    assert white_pixels("a cat playing piano under the moon") > 2 * white_pixels("a") > 0


def test_video_is_served_with_range_support(live_gateway: LiveGateway) -> None:
    body = {"prompt": "range", "duration_ms": 500, "fps": 4}
    url = live_gateway.client.post("/generate-video", json=body).json()["video_url"]
    response = httpx.get(url, headers={"Range": "bytes=0-99"})
    assert response.status_code == 206
    assert len(response.content) == 100


def test_wait_s_zero_answers_202_with_a_status_url(live_gateway: LiveGateway) -> None:
    body = {"prompt": "slow one", "duration_ms": 4000, "fps": 24, "wait_s": 0}
    response = live_gateway.client.post("/generate-video", json=body)
    assert response.status_code == 202
    accepted = response.json()
    assert accepted["status"] in ("queued", "running")
    assert accepted["status_url"] == f"{live_gateway.base_url}/v1/tasks/{accepted['task_id']}"
    assert "polling" in accepted["message"]
    done = live_gateway.client.get(accepted["status_url"], params={"wait_s": 30}).json()
    assert done["status"] == "succeeded"
