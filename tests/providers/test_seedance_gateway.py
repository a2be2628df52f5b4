"""Seedance's newer fields through the whole gateway: the last frame stored and served by our
storage, audio kept through re-hosting, drafts rendered in full, bad input refused with 422."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import imageio_ffmpeg
import pytest

from tests.conftest import GatewayFactory, LiveGateway
from tests.emulators import ark
from tests.emulators.ark import LAST_FRAME_PNG, ArkState
from tests.emulators.faults import Videos
from tests.emulators.server import serve_in_thread
from tests.providers.conftest import ARK_KEY, FAST, Emulator

REFS = [f"https://img.example.com/ref{i}.png" for i in range(1, 11)]


@pytest.fixture(scope="module")
def mp4_with_audio(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """A real MP4 with an H.264 video track and an AAC audio track (1 s)."""
    out = tmp_path_factory.mktemp("audio") / "with-audio.mp4"
    subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error",
         "-f", "lavfi", "-i", "testsrc=size=320x240:rate=8",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=22050",
         "-t", "1", "-pix_fmt", "yuv420p", "-c:v", "libx264", "-c:a", "aac",
         "-shortest", "-movflags", "+faststart", str(out)],
        check=True,
    )  # fmt: skip
    return out.read_bytes()


def streams(path: Path) -> str:
    """What ffmpeg reports about a file's streams (``ffmpeg -i`` prints them and exits 1)."""
    probe = subprocess.run(
        [imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
        capture_output=True,
        text=True,
    )
    return probe.stderr


@pytest.fixture
def ark_audio(mp4_with_audio: bytes) -> Iterator[Emulator[ArkState]]:
    state = ark.ArkState(
        api_key=ARK_KEY, videos=Videos(mp4_with_audio), queued_s=0.05, running_s=0.1
    )
    with serve_in_thread(ark.create_app(state)) as url:
        yield Emulator(url, state)


def overrides(emu: Emulator[ArkState], **seedance: Any) -> dict[str, Any]:
    return {
        "seedance": {"base_url": emu.url, "api_key": ARK_KEY, **FAST, **seedance},
        "providers": {"default": "seedance"},
    }


def test_audio_and_the_last_frame_survive_rehosting(
    gateway_factory: GatewayFactory,
    ark_audio: Emulator[ArkState],
    mp4_with_audio: bytes,
    tmp_path: Path,
) -> None:
    assert "Audio: aac" in streams_of_bytes(mp4_with_audio, tmp_path / "source.mp4")
    with gateway_factory(overrides(ark_audio)) as gw:
        response = gw.client.post(
            "/generate-video",
            json={"prompt": "a fox sings", "generate_audio": True, "return_last_frame": True},
        )
        assert response.status_code == 200, response.text
        result = response.json()
        task = gw.client.get(f"/v1/tasks/{result['task_id']}").json()
        video = httpx.get(result["video_url"], timeout=30)
        frame = httpx.get(task["last_frame_url"], timeout=30)
    body = ark_audio.state.create_bodies[0]
    assert body["generate_audio"] is True and body["return_last_frame"] is True
    # The video is relayed as the provider made it: same bytes, audio track included.
    assert video.status_code == 200 and video.content == mp4_with_audio
    rehosted = streams_of_bytes(video.content, tmp_path / "rehosted.mp4")
    assert "Audio: aac" in rehosted and "Video: h264" in rehosted
    # The last frame is ours too: stored, signed, served as an image.
    assert task["last_frame_url"].startswith(f"{gw.base_url}/files/videos/")
    assert ".png?" in task["last_frame_url"]
    assert frame.status_code == 200 and frame.content == LAST_FRAME_PNG
    assert frame.headers["content-type"] == "image/png"
    assert ark_audio.state.frames_served == 1
    assert task["params"]["generate_audio"] is True and task["params"]["return_last_frame"]


def streams_of_bytes(data: bytes, path: Path) -> str:
    path.write_bytes(data)
    return streams(path)


def test_a_last_frame_that_cannot_be_fetched_is_a_warning_not_a_failure(
    gateway_factory: GatewayFactory, ark_emu: Emulator[ArkState], mp4_bytes: bytes
) -> None:
    ark_emu.state.frames_gone = True
    with gateway_factory(overrides(ark_emu)) as gw:
        result = gw.client.post(
            "/generate-video", json={"prompt": "a fox", "return_last_frame": True}
        ).json()
        task = gw.client.get(f"/v1/tasks/{result['task_id']}").json()
        video = httpx.get(result["video_url"], timeout=30)
    assert task["status"] == "succeeded" and video.content == mp4_bytes
    assert task["last_frame_url"] is None
    assert any(w.startswith("last frame not stored") for w in task["warnings"])


def test_no_last_frame_unless_asked(
    gateway_factory: GatewayFactory, ark_emu: Emulator[ArkState]
) -> None:
    with gateway_factory(overrides(ark_emu)) as gw:
        result = gw.client.post("/generate-video", json={"prompt": "a fox"}).json()
        task = gw.client.get(f"/v1/tasks/{result['task_id']}").json()
    assert task["last_frame_url"] is None and ark_emu.state.frames_served == 0
    assert "return_last_frame" not in ark_emu.state.create_bodies[0]


def test_reference_images_reach_ark(
    gateway_factory: GatewayFactory, ark_emu: Emulator[ArkState]
) -> None:
    with gateway_factory(overrides(ark_emu)) as gw:
        response = gw.client.post(
            "/generate-video", json={"prompt": "[图1] meets [图2]", "reference_images": REFS[:2]}
        )
        assert response.status_code == 200, response.text
        task = gw.client.get(f"/v1/tasks/{response.json()['task_id']}").json()
    assert task["params"]["mode"] == "reference_images"
    roles = [c.get("role") for c in ark_emu.state.create_bodies[0]["content"][1:]]
    assert roles == ["reference_image", "reference_image"]


def test_a_draft_then_its_full_render(
    gateway_factory: GatewayFactory, ark_emu: Emulator[ArkState]
) -> None:
    with gateway_factory(overrides(ark_emu)) as gw:
        draft = gw.client.post(
            "/generate-video",
            json={"prompt": "a fox", "draft": True, "aspect_ratio": "9:16", "seed": 5},
        ).json()
        assert draft["status"] == "succeeded", draft
        final = gw.client.post(
            "/generate-video",
            json={"prompt": "(ignored)", "from_draft": draft["task_id"], "resolution": "1080p"},
        )
        assert final.status_code == 200, final.text
        task = gw.client.get(f"/v1/tasks/{final.json()['task_id']}").json()
        drafted = gw.client.get(f"/v1/tasks/{draft['task_id']}").json()
        # Only a finished draft of one's own can be rendered.
        not_a_draft = gw.client.post(
            "/v1/tasks", json={"prompt": "x", "from_draft": final.json()["task_id"]}
        )
        with gw.client_for(gw.other_token) as other:
            someone_elses = other.post(
                "/v1/tasks", json={"prompt": "x", "from_draft": draft["task_id"]}
            )
    first, second = ark_emu.state.create_bodies
    assert first["draft"] is True and first["resolution"] == "480p"
    assert second["content"] == [
        {"type": "draft_task", "draft_task": {"id": drafted["provider_task_id"]}}
    ]
    assert second["resolution"] == "1080p"
    assert task["params"]["mode"] == "from_draft" and task["prompt"] == "a fox"
    assert task["params"]["ratio"] == "9:16" and task["params"]["seed"] == 5
    for refused in (not_a_draft, someone_elses):
        assert refused.status_code == 422 and "from_draft" in refused.json()["error"]["message"]
    assert len(ark_emu.state.create_bodies) == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reference_images": REFS[:5]}, "reference_images"),  # 1.0 lite takes 1-4
        ({"reference_images": REFS}, "reference_images"),  # 10: more than any model
        ({"reference_images": REFS[:2], "image_url": REFS[3]}, "reference_images"),
        ({"reference_images": ["ftp://img.example.com/a.png"]}, "reference_images"),
        ({"draft": True, "options": {"service_tier": "flex"}}, "flex"),
        ({"draft": True, "return_last_frame": True}, "return_last_frame"),
        ({"options": {"execution_expires_after": 10}}, "execution_expires_after"),
    ],
)
def test_bad_input_is_a_422_naming_the_field(
    gateway_factory: GatewayFactory,
    ark_emu: Emulator[ArkState],
    body: dict[str, Any],
    field: str,
) -> None:
    with gateway_factory(overrides(ark_emu)) as gw:
        response = gw.client.post("/v1/tasks", json={"prompt": "a fox", **body})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"
    assert field in response.text
    assert ark_emu.state.creates == 0


def test_other_providers_refuse_or_ignore_what_they_cannot_do(live_gateway: LiveGateway) -> None:
    gw = live_gateway  # preview only
    ignored = gw.client.post(
        "/v1/tasks", json={"prompt": "a fox", "generate_audio": True, "return_last_frame": True}
    )
    assert ignored.status_code == 202, ignored.text
    warnings = ignored.json()["warnings"]
    assert any(w.startswith("generate_audio: preview") for w in warnings)
    assert any(w.startswith("return_last_frame: preview") for w in warnings)
    for body, field in (
        ({"reference_images": REFS[:1]}, "reference_images"),
        ({"reference_images": REFS[:1], "provider": "preview"}, "reference_images"),
        ({"draft": True, "provider": "preview"}, "draft"),
    ):
        refused = gw.client.post("/v1/tasks", json={"prompt": "a fox", **body})
        assert refused.status_code == 422 and field in refused.json()["error"]["message"]
