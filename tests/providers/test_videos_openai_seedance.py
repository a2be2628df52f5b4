"""``/v1/videos`` onto a real adapter: an uploaded image becomes Seedance's first frame."""

from __future__ import annotations

import io

import httpx
import pytest
from openai import OpenAI
from PIL import Image

from tests.conftest import GatewayFactory
from tests.emulators.ark import ArkState
from tests.providers.conftest import ARK_KEY, FAST, Emulator

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")

I2V_MODEL = "doubao-seedance-1-0-lite-i2v-250428"


def test_input_reference_and_provider_slash_model_reach_ark(
    gateway_factory: GatewayFactory, ark_emu: Emulator[ArkState], mp4_bytes: bytes
) -> None:
    overrides = {"seedance": {"base_url": ark_emu.url, "api_key": ARK_KEY, **FAST}}
    image = io.BytesIO()
    Image.new("RGB", (640, 360), (10, 120, 200)).save(image, format="JPEG")
    with (
        gateway_factory(overrides) as gw,
        OpenAI(base_url=f"{gw.base_url}/v1", api_key=gw.token, max_retries=0) as client,
    ):
        video = client.videos.create_and_poll(
            prompt="the waves roll in",
            model=f"seedance/{I2V_MODEL}",
            seconds="8",
            size="1280x720",
            input_reference=("beach.jpg", image.getvalue(), "image/jpeg"),
            poll_interval_ms=100,
        )
        assert video.status == "completed", video
        assert video.model == f"seedance/{I2V_MODEL}"
        assert client.videos.download_content(video.id).content == mp4_bytes

        (sent,) = ark_emu.state.create_bodies
        assert sent["model"] == I2V_MODEL
        assert (sent["ratio"], sent["resolution"], sent["duration"]) == ("16:9", "720p", 8)
        (frame,) = [item for item in sent["content"] if item["type"] == "image_url"]
        assert frame["role"] == "first_frame"
        # Stored in the gateway's storage, handed over as a signed URL that serves the upload.
        url = frame["image_url"]["url"]
        assert url.startswith(f"{gw.base_url}/files/inputs/") and "sig=" in url
        fetched = httpx.get(url)
        assert fetched.content == image.getvalue()
        assert fetched.headers["content-type"] == "image/jpeg"
