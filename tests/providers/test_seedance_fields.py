"""Seedance as it is now (1.5 pro, 2.0): reference images, audio, last frames, drafts, flex —
every field sent as Ark expects, against the Ark emulator (which checks them per model)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.errors import ValidationError
from app.providers.base import JobState
from app.providers.seedance import SeedanceProvider, model_family
from tests.emulators.ark import LAST_FRAME_PNG, ArkState
from tests.providers.conftest import Emulator, request, seedance_settings, wait_terminal

pytestmark = pytest.mark.anyio

PRO_10 = "doubao-seedance-1-0-pro-250528"
LITE_I2V = "doubao-seedance-1-0-lite-i2v-250428"
V15 = "doubao-seedance-1-5-pro-251215"
V20 = "doubao-seedance-2-0-260128"
REFS = [f"https://img.test/ref{i}.png" for i in range(1, 10)]


def provider(emu: Emulator[ArkState], http: httpx.AsyncClient, **kw: Any) -> SeedanceProvider:
    return SeedanceProvider(http=http, settings=seedance_settings(emu.url, **kw))


def images(body: dict[str, Any]) -> list[tuple[str, str]]:
    return [(c["image_url"]["url"], c["role"]) for c in body["content"] if c["type"] == "image_url"]


def test_model_families_by_id() -> None:
    assert model_family("doubao-seedance-1-0-pro-fast-251015") is not None
    assert model_family("seedance-1-5-pro-251215") == model_family(V15)  # BytePlus ids
    family = model_family("dreamina-seedance-2-0-fast-260128")
    assert family is not None and family.reference_images == 9
    assert model_family("doubao-seedance-9-9-unknown") is None


async def test_reference_images_go_as_reference_image_items_to_the_reference_model(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    # camera_fixed is configured, but Ark refuses it with reference images: left out.
    seedance = provider(ark_emu, http, camera_fixed=True)
    req = request(reference_images=tuple(REFS[:3]))
    params = seedance.plan(req)
    assert params["mode"] == "reference_images" and params["reference_images"] == 3
    job = await seedance.submit(req)
    assert (await wait_terminal(seedance, job)).state is JobState.SUCCEEDED
    body = ark_emu.state.create_bodies[0]
    assert body["model"] == LITE_I2V and "camera_fixed" not in body
    assert images(body) == [(url, "reference_image") for url in REFS[:3]]
    assert body["content"][0] == {"type": "text", "text": "a red fox running in snow"}


async def test_seedance_2_takes_nine_reference_images_and_makes_sound(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    seedance = provider(ark_emu, http, model_reference=V20)
    assert seedance.capabilities.reference_images == 9
    req = request(reference_images=tuple(REFS), generate_audio=True, duration_ms=15000)
    job = await seedance.submit(req)
    assert (await wait_terminal(seedance, job)).state is JobState.SUCCEEDED
    body = ark_emu.state.create_bodies[0]
    assert body["model"] == V20 and len(images(body)) == 9
    assert body["generate_audio"] is True and body["duration"] == 12  # [seedance] durations
    assert ark_emu.state.jobs()[0].params["generate_audio"] is True


async def test_first_and_last_frame_use_their_own_model(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    seedance = provider(ark_emu, http, model_i2v=PRO_10, model_first_last=V15)
    first = request(image_url="https://img.test/a.png")
    both = request(image_url="https://img.test/a.png", last_frame_url="https://img.test/b.png")
    assert seedance.plan(first)["model"] == PRO_10
    await seedance.submit(both)
    body = ark_emu.state.create_bodies[0]
    assert body["model"] == V15
    assert images(body) == [
        ("https://img.test/a.png", "first_frame"),
        ("https://img.test/b.png", "last_frame"),
    ]


async def test_audio_seed_camera_resolution_ratio_and_flex_are_json_fields(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    seedance = provider(ark_emu, http)
    req = request(
        generate_audio=False,
        seed=4242,
        resolution="480p",
        aspect_ratio="21:9",
        options={
            "camera_fixed": True,
            "service_tier": "flex",
            "execution_expires_after": 86400,
        },
    )
    params = seedance.plan(req)
    assert params["service_tier"] == "flex" and params["execution_expires_after"] == 86400
    job = await seedance.submit(req)
    body = ark_emu.state.create_bodies[0]
    assert body["generate_audio"] is False and body["seed"] == 4242
    assert body["resolution"] == "480p" and body["ratio"] == "21:9"
    assert body["camera_fixed"] is True
    assert body["service_tier"] == "flex" and body["execution_expires_after"] == 86400
    url = f"{ark_emu.url}/contents/generations/tasks/{job}"
    task = (await http.get(url, headers=auth())).json()
    assert task["service_tier"] == "flex" and task["execution_expires_after"] == 86400


def auth() -> dict[str, str]:
    from tests.providers.conftest import ARK_KEY

    return {"Authorization": f"Bearer {ARK_KEY}"}


async def test_return_last_frame_comes_back_as_an_image(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    seedance = provider(ark_emu, http)
    job = await seedance.submit(request(return_last_frame=True))
    assert ark_emu.state.create_bodies[0]["return_last_frame"] is True
    status = await wait_terminal(seedance, job)
    assert status.last_frame_url is not None and "/frames/" in status.last_frame_url
    async with seedance.open_last_frame(job, status) as stream:
        frame = b"".join([chunk async for chunk in stream])
    assert frame == LAST_FRAME_PNG
    # Not asked for: no frame.
    plain = await wait_terminal(seedance, await seedance.submit(request(task_id="vt_plain")))
    assert plain.last_frame_url is None


async def test_a_draft_then_its_full_render(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    seedance = provider(ark_emu, http, resolution="1080p")
    draft_req = request(draft=True, seed=9, aspect_ratio="9:16")
    assert seedance.plan(draft_req)["resolution"] == "480p"
    draft = await seedance.submit(draft_req)
    assert (await wait_terminal(seedance, draft)).state is JobState.SUCCEEDED
    body = ark_emu.state.create_bodies[0]
    assert body["draft"] is True and body["resolution"] == "480p"

    final_req = request(task_id="vt_final", draft_job_id=draft, return_last_frame=True)
    params = seedance.plan(final_req)
    assert params["mode"] == "from_draft" and params["draft_job_id"] == draft
    final = await seedance.submit(final_req)
    status = await wait_terminal(seedance, final)
    assert status.state is JobState.SUCCEEDED and status.last_frame_url
    body = ark_emu.state.create_bodies[1]
    assert body["content"] == [{"type": "draft_task", "draft_task": {"id": draft}}]
    assert body["model"] == V15 and body["resolution"] == "1080p"
    assert not {"ratio", "seed", "duration", "draft"} & set(body)
    rendered = ark_emu.state.tasks[final].params
    assert rendered["seed"] == 9 and rendered["ratio"] == "9:16"  # the draft's own


@pytest.mark.parametrize(
    ("changes", "settings", "field"),
    [
        ({"reference_images": tuple(REFS[:5])}, {}, "reference_images"),
        (
            {"reference_images": tuple(REFS[:2]), "image_url": "https://img.test/a.png"},
            {},
            "reference_images",
        ),
        ({"reference_images": tuple(REFS[:2]), "options": {"ratio": "adaptive"}}, {}, "adaptive"),
        ({"reference_images": tuple(REFS[:2]), "resolution": "1080p"}, {}, "720p"),
        (
            {"reference_images": tuple(REFS[:2]), "options": {"camera_fixed": True}},
            {},
            "camera_fixed",
        ),
        ({"reference_images": tuple(REFS[:2])}, {"model_reference": PRO_10}, "model_reference"),
        ({"generate_audio": True}, {"model_t2v": PRO_10}, "generate_audio"),
        ({"draft": True}, {"model_t2v": PRO_10}, "draft"),
        ({"draft": True, "resolution": "720p"}, {}, "480p"),
        ({"draft": True, "return_last_frame": True}, {}, "return_last_frame"),
        ({"draft": True, "options": {"service_tier": "flex"}}, {}, "flex"),
        ({"options": {"service_tier": "cheap"}}, {}, "service_tier"),
        ({"options": {"execution_expires_after": 60}}, {}, "execution_expires_after"),
        ({"draft_job_id": "cgt-1"}, {"model_t2v": PRO_10}, "from_draft"),
    ],
)
async def test_what_a_model_cannot_do_is_refused_naming_the_field(
    changes: dict[str, Any],
    settings: dict[str, Any],
    field: str,
    ark_emu: Emulator[ArkState],
    http: httpx.AsyncClient,
) -> None:
    with pytest.raises(ValidationError, match=field):
        provider(ark_emu, http, **settings).plan(request(**changes))


async def test_an_unknown_model_is_left_to_ark(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    seedance = provider(ark_emu, http, model_reference="doubao-seedance-3-0-999999")
    params = seedance.plan(request(reference_images=tuple(REFS[:6])))
    assert "Ark checks" in params["model_limits"]
    with pytest.raises(Exception, match="seedance-3-0"):  # Ark: no such model
        await seedance.submit(request(reference_images=tuple(REFS[:6])))
