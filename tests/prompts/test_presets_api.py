"""Platform presets and variants through the real gateway (``POST /v1/tasks``)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.providers.base import Capabilities
from tests.conftest import GatewayFactory, LiveGateway
from tests.fakes import ControlledProvider


@pytest.fixture
def fake() -> ControlledProvider:
    provider = ControlledProvider()
    provider.release()
    return provider


@pytest.fixture
def gateway(gateway_factory: GatewayFactory, fake: ControlledProvider) -> Iterator[LiveGateway]:
    with gateway_factory(extra_providers={"fake": fake}) as gateway:
        yield gateway


def test_platform_preset_fills_only_what_the_client_left_out(
    gateway: LiveGateway, fake: ControlledProvider
) -> None:
    body = {"prompt": "a street dancer", "provider": "fake", "platform": "douyin"}
    task = gateway.client.post("/v1/tasks", json=body).json()
    gateway.client.get(f"/v1/tasks/{task['id']}", params={"wait_s": 10})
    sent = fake.submits[-1]
    assert (sent.aspect_ratio, sent.duration_ms) == ("9:16", 5000)

    explicit = {**body, "aspect_ratio": "1:1", "duration_ms": 2000}
    second = gateway.client.post("/v1/tasks", json=explicit).json()
    gateway.client.get(f"/v1/tasks/{second['id']}", params={"wait_s": 10})
    assert (fake.submits[-1].aspect_ratio, fake.submits[-1].duration_ms) == ("1:1", 2000)


def test_a_preset_the_provider_cannot_honour_says_so(
    gateway_factory: GatewayFactory,
) -> None:
    landscape_only = ControlledProvider("wide")
    landscape_only.capabilities = Capabilities(
        max_concurrency=10, aspect_ratios=frozenset({"16:9", "21:9"})
    )
    landscape_only.release()
    with gateway_factory(extra_providers={"wide": landscape_only}) as gateway:
        body = {"prompt": "a street dancer", "provider": "wide", "platform": "tiktok"}
        task = gateway.client.post("/v1/tasks", json=body).json()
    assert task["warnings"] and "9:16" in " ".join(task["warnings"])
    assert landscape_only.submits[-1].aspect_ratio in ("16:9", "21:9")


def test_n_variants_are_separate_tasks_under_one_group(
    gateway: LiveGateway, fake: ControlledProvider
) -> None:
    body = {
        "prompt": "a paper boat",
        "provider": "fake",
        "n": 3,
        "styles": ["cinematic", "animated"],
    }
    created = gateway.client.post("/v1/tasks", json=body)
    assert created.status_code == 202
    group = created.json()
    assert group["group_id"].startswith("vg_") and len(group["data"]) == 3
    ids = [task["id"] for task in group["data"]]
    assert len(set(ids)) == 3
    assert {task["group_id"] for task in group["data"]} == {group["group_id"]}

    listed = gateway.client.get("/v1/tasks", params={"group_id": group["group_id"]}).json()["data"]
    assert sorted(t["id"] for t in listed) == sorted(ids)
    for task_id in ids:
        done = gateway.client.get(f"/v1/tasks/{task_id}", params={"wait_s": 10}).json()
        assert done["status"] == "succeeded"
    seeds = {request.seed for request in fake.submits}
    assert len(seeds) == 3
    expanded = [
        t["expanded_prompt"]
        for t in gateway.client.get("/v1/tasks", params={"group_id": group["group_id"]}).json()[
            "data"
        ]
    ]
    assert sum("cinematic" in text for text in expanded) == 2
    assert sum("animat" in text for text in expanded) == 1


def test_retrying_a_variant_create_returns_the_same_group(
    gateway: LiveGateway, fake: ControlledProvider
) -> None:
    body = {"prompt": "a paper boat", "provider": "fake", "n": 2}
    headers = {"Idempotency-Key": "variants-1"}
    first = gateway.client.post("/v1/tasks", json=body, headers=headers).json()
    again = gateway.client.post("/v1/tasks", json=body, headers=headers).json()
    assert again["group_id"] == first["group_id"]
    assert [t["id"] for t in again["data"]] == [t["id"] for t in first["data"]]


def test_variants_need_the_async_api_and_valid_styles(gateway: LiveGateway) -> None:
    sync = gateway.client.post("/generate-video", json={"prompt": "x", "n": 2})
    assert sync.status_code == 422 and "/v1/tasks" in sync.json()["error"]["message"]
    bad = gateway.client.post("/v1/tasks", json={"prompt": "x", "n": 2, "styles": ["baroque-ish"]})
    assert bad.status_code == 422 and "cinematic" in bad.json()["error"]["message"]
    too_many = gateway.client.post("/v1/tasks", json={"prompt": "x", "n": 99})
    assert too_many.status_code == 422
