"""The result cache: an identical request from the same tenant reuses a finished video."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import GatewayFactory, LiveGateway
from tests.fakes import ControlledProvider

BODY = {"prompt": "a red  kite over the sea", "duration_ms": 500, "fps": 4, "provider": "fake"}


@pytest.fixture
def fake() -> ControlledProvider:
    provider = ControlledProvider()
    provider.release()  # jobs finish at once
    return provider


@pytest.fixture
def gateway(gateway_factory: GatewayFactory, fake: ControlledProvider) -> Iterator[LiveGateway]:
    with gateway_factory({"cache": {"ttl_h": 24}}, extra_providers={"fake": fake}) as gateway:
        yield gateway


def finished(gateway: LiveGateway, body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    task = gateway.client.post("/v1/tasks", json=body, **kwargs).json()
    return gateway.wait_task(task["id"], lambda t: t["status"] in ("succeeded", "failed"))


def path_of(url: str) -> str:
    return url.split("?", 1)[0]


def test_an_identical_request_reuses_the_video(
    gateway: LiveGateway, fake: ControlledProvider
) -> None:
    first = finished(gateway, BODY)
    assert first["status"] == "succeeded" and first["cached_from"] is None
    # Same prompt up to whitespace, other metadata and callback: the same video.
    again = gateway.client.post(
        "/v1/tasks",
        json={**BODY, "prompt": " a red kite   over the sea ", "metadata": {"run": 2}},
    ).json()
    assert again["status"] == "succeeded"  # at once, in the create's answer
    assert again["cached_from"] == first["id"] and again["id"] != first["id"]
    assert path_of(again["video_url"]) == path_of(first["video_url"])  # the same object
    assert again["provider_task_id"] is None
    assert len(fake.submits) == 1
    sync = gateway.client.post("/generate-video", json=BODY)
    assert sync.status_code == 200 and path_of(sync.json()["video_url"]) == path_of(
        first["video_url"]
    )
    assert len(fake.submits) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"cache": False},  # the caller opts out
        {"seed": -1},  # an explicit random seed
        {"seed": 7},  # another seed: another video
        {"duration_ms": 1000},
        {"negative_prompt": "fog"},
        {"expand_prompt": True},  # asking for expansion is part of the key
    ],
)
def test_what_is_not_reused(
    gateway: LiveGateway, fake: ControlledProvider, change: dict[str, Any]
) -> None:
    finished(gateway, BODY)
    other = finished(gateway, {**BODY, **change})  # waits for its end: its submit is counted
    assert other["cached_from"] is None
    assert len(fake.submits) == 2


def test_another_tenant_gets_its_own_video(gateway: LiveGateway, fake: ControlledProvider) -> None:
    finished(gateway, BODY)
    with gateway.client_for(gateway.other_token) as other:
        task = other.post("/v1/tasks", json=BODY).json()
        assert task["cached_from"] is None
        done = other.get(f"/v1/tasks/{task['id']}", params={"wait_s": 30}).json()
        assert done["status"] == "succeeded"
    assert len(fake.submits) == 2


def test_a_cached_result_costs_no_quota(gateway: LiveGateway, fake: ControlledProvider) -> None:
    token = gateway.client.post(
        "/v1/admin/tokens", json={"name": "thrifty", "tasks_per_day": 1}
    ).json()["token"]
    with gateway.client_for(token) as team:
        first = team.post("/v1/tasks", json=BODY).json()
        team.get(f"/v1/tasks/{first['id']}", params={"wait_s": 30})
        for _ in range(3):
            reused = team.post("/v1/tasks", json=BODY)
            assert reused.status_code == 202 and reused.json()["cached_from"] == first["id"]
        assert team.post("/v1/tasks", json={**BODY, "cache": False}).status_code == 429
    assert len(fake.submits) == 1


def test_failed_or_unfinished_tasks_are_not_reused(
    gateway_factory: GatewayFactory,
) -> None:
    slow = ControlledProvider()
    with gateway_factory({"cache": {"ttl_h": 24}}, extra_providers={"fake": slow}) as gateway:
        first = gateway.client.post("/v1/tasks", json=BODY).json()
        second = gateway.client.post("/v1/tasks", json=BODY).json()
        assert second["cached_from"] is None and second["status"] != "succeeded"
        slow.release()
        for task in (first, second):
            gateway.wait_task(task["id"], lambda t: t["status"] == "succeeded")
    assert len(slow.submits) == 2


def test_ttl_zero_turns_the_cache_off(
    gateway_factory: GatewayFactory, fake: ControlledProvider
) -> None:
    with gateway_factory(extra_providers={"fake": fake}) as gateway:  # tests default: ttl_h 0
        finished(gateway, BODY)
        assert finished(gateway, BODY)["cached_from"] is None
    assert len(fake.submits) == 2
