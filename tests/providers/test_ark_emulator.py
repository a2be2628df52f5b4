"""The Ark emulator checks what Ark checks (so the adapter tests mean something)."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI, Request

from tests.emulators.ark import ArkState
from tests.emulators.server import serve_in_thread
from tests.providers.conftest import ARK_KEY, Emulator

pytestmark = pytest.mark.anyio

MODEL = "doubao-seedance-1-0-pro-250528"


async def create(
    emu: Emulator[ArkState], http: httpx.AsyncClient, body: dict[str, Any], key: str = ARK_KEY
) -> httpx.Response:
    return await http.post(
        f"{emu.url}/contents/generations/tasks",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
    )


def text(t: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": t}]


async def test_sdk_nulls_are_absent_and_text_flags_work(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    body = {
        "model": MODEL,
        "content": text("a cat --rs 480p --dur 10 --cf true"),
        "seed": None,
        "ratio": None,
        "callback_url": None,
        "watermark": None,
    }
    response = await create(ark_emu, http, body)
    assert response.status_code == 200, response.text
    task = ark_emu.state.tasks[response.json()["id"]]
    assert task.params["resolution"] == "480p" and task.params["duration"] == 10
    assert task.params["camera_fixed"] is True and task.prompt == "a cat"


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"duration": 13}, "InvalidParameter"),
        ({"duration": 1}, "InvalidParameter"),
        ({"resolution": "4k"}, "InvalidParameter"),
        ({"ratio": "adaptive"}, "InvalidParameter"),
        ({"seed": -2}, "InvalidParameter"),
        ({"watermark": "false"}, "InvalidParameter"),
        ({"model": None}, "MissingParameter"),
        ({"content": []}, "MissingParameter"),
        ({"colour": "red"}, "InvalidParameter"),
    ],
)
async def test_out_of_range_values_are_400(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient, changes: dict[str, Any], code: str
) -> None:
    response = await create(ark_emu, http, {"model": MODEL, "content": text("a cat"), **changes})
    assert response.status_code == 400 and response.json()["error"]["code"] == code
    assert ark_emu.state.creates == 0


async def test_bearer_key_is_checked(ark_emu: Emulator[ArkState], http: httpx.AsyncClient) -> None:
    response = await create(ark_emu, http, {"model": MODEL, "content": text("a")}, key="nope")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "AuthenticationError"


async def test_lifecycle_and_callbacks(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    hits: list[str] = []
    sink = FastAPI()

    @sink.post("/cb")
    async def cb(request: Request) -> dict[str, bool]:
        hits.append((await request.json())["status"])
        return {"ok": True}

    with serve_in_thread(sink) as sink_url:
        body = {"model": MODEL, "content": text("a cat"), "callback_url": f"{sink_url}/cb"}
        task_id = (await create(ark_emu, http, body)).json()["id"]
        seen = []
        for _ in range(200):
            r = await http.get(
                f"{ark_emu.url}/contents/generations/tasks/{task_id}",
                headers={"Authorization": f"Bearer {ARK_KEY}"},
            )
            word = r.json()["status"]
            if not seen or seen[-1] != word:
                seen.append(word)
            if word == "succeeded" and "succeeded" in hits:
                break
            await anyio.sleep(0.02)
    order = ["queued", "running", "succeeded"]
    assert seen[-1] == "succeeded" and seen == sorted(seen, key=order.index)
    assert hits[-1] == "succeeded" and hits == sorted(hits, key=order.index)


def image(url: str, role: str | None) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "image_url", "image_url": {"url": url}}
    if role is not None:
        item["role"] = role
    return item


LITE_I2V = "doubao-seedance-1-0-lite-i2v-250428"
V15 = "doubao-seedance-1-5-pro-251215"


@pytest.mark.parametrize(
    ("model", "content", "extra", "param"),
    [
        # Roles and counts, as Ark documents them per model.
        (LITE_I2V, [image(f"https://i/{n}.png", "reference_image") for n in range(5)], {},
         "content"),
        (LITE_I2V, [image("https://i/1.png", "reference_image"),
                    image("https://i/2.png", "first_frame")], {}, "content.role"),
        (MODEL, [image("https://i/1.png", "reference_image")], {}, "content.role"),
        (MODEL, [image("https://i/1.png", "last_frame")], {}, "content.role"),
        (MODEL, [image("https://i/1.png", "first_frame"), image("https://i/2.png", None)], {},
         "content.role"),
        (LITE_I2V, text("no image"), {}, "content"),
        (LITE_I2V, [image("https://i/1.png", "reference_image")], {"ratio": "adaptive"}, "ratio"),
        (LITE_I2V, [image("https://i/1.png", "reference_image")], {"camera_fixed": False},
         "camera_fixed"),
        (LITE_I2V, [image("https://i/1.png", "reference_image")], {"resolution": "1080p"},
         "resolution"),
        # Types and the newer fields.
        (MODEL, text("a cat"), {"generate_audio": True}, "generate_audio"),
        (V15, text("a cat"), {"generate_audio": "yes"}, "generate_audio"),
        (V15, text("a cat"), {"duration": 3}, "duration"),
        (MODEL, text("a cat"), {"draft": True}, "draft"),
        (V15, text("a cat"), {"draft": True, "resolution": "720p"}, "resolution"),
        (V15, text("a cat"), {"draft": True, "return_last_frame": True}, "return_last_frame"),
        (V15, text("a cat"), {"draft": True, "service_tier": "flex"}, "service_tier"),
        (V15, text("a cat"), {"execution_expires_after": 100}, "execution_expires_after"),
        (V15, [{"type": "draft_task", "draft_task": {"id": "cgt-1"}}, *text("a")], {}, "content"),
        (V15, [{"type": "draft_task", "draft_task": {"id": "cgt-nope"}}], {}, "draft_task"),
    ],
)  # fmt: skip
async def test_roles_counts_and_fields_are_checked_per_model(
    ark_emu: Emulator[ArkState],
    http: httpx.AsyncClient,
    model: str,
    content: list[dict[str, Any]],
    extra: dict[str, Any],
    param: str,
) -> None:
    response = await create(ark_emu, http, {"model": model, "content": content, **extra})
    assert response.status_code == 400, response.text
    assert response.json()["error"]["param"] == param
    assert ark_emu.state.creates == 0


async def test_what_each_model_takes_is_accepted(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    refs = [image(f"https://i/{n}.png", "reference_image") for n in range(4)]
    accepted = [
        {"model": LITE_I2V, "content": [*text("[图1] and [图2]"), *refs], "ratio": "16:9"},
        {"model": V15, "content": text("a cat"), "ratio": "adaptive", "generate_audio": True},
        {"model": V15, "content": text("a cat"), "draft": True, "seed": 3},
        {"model": MODEL, "content": [image("https://i/1.png", None)], "return_last_frame": True},
    ]
    for body in accepted:
        response = await create(ark_emu, http, body)
        assert response.status_code == 200, (body, response.text)
    assert ark_emu.state.creates == len(accepted)


async def test_the_list_filters_by_task_ids_repeated_or_comma_separated(
    ark_emu: Emulator[ArkState], http: httpx.AsyncClient
) -> None:
    ids = [
        (await create(ark_emu, http, {"model": MODEL, "content": text(f"n{n}")})).json()["id"]
        for n in range(4)
    ]
    auth = {"Authorization": f"Bearer {ARK_KEY}"}
    url = f"{ark_emu.url}/contents/generations/tasks"
    repeated = await http.get(
        url,
        params=[("page_size", 10), ("filter.task_ids", ids[0]), ("filter.task_ids", ids[2])],
        headers=auth,
    )
    assert sorted(item["id"] for item in repeated.json()["items"]) == sorted([ids[0], ids[2]])
    commas = await http.get(url, params={"filter.task_ids": f"{ids[1]},{ids[3]}"}, headers=auth)
    assert sorted(item["id"] for item in commas.json()["items"]) == sorted([ids[1], ids[3]])
    too_big = await http.get(url, params={"page_size": 501}, headers=auth)
    assert too_big.status_code == 400
    assert ark_emu.state.lists == 3
