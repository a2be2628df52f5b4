"""Listing tasks: cursor paging, the provider filter, and what a listed task carries."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import GatewayFactory, LiveGateway
from tests.fakes import ControlledProvider

QUICK = {"prompt": "quick", "duration_ms": 500, "fps": 4}


@pytest.fixture
def gateway(gateway_factory: GatewayFactory) -> Iterator[LiveGateway]:
    fake = ControlledProvider()  # never released: its tasks stay running
    with gateway_factory(extra_providers={"fake": fake}) as gateway:
        yield gateway
    fake.release()


def test_pages_follow_each_other_without_gaps_or_repeats(gateway: LiveGateway) -> None:
    made = [
        gateway.client.post(
            "/v1/tasks", json={**QUICK, "prompt": f"p{i}", "provider": "fake"}
        ).json()["id"]
        for i in range(5)
    ]
    seen: list[str] = []
    before = None
    pages = 0
    while True:
        params = {"limit": 2, **({"before": before} if before else {})}
        page = gateway.client.get("/v1/tasks", params=params).json()
        pages += 1
        seen += [task["id"] for task in page["data"]]
        if not page["has_more"]:
            assert page["next_before"] is None
            break
        assert page["next_before"] == page["data"][-1]["id"]
        before = page["next_before"]
    assert pages == 3
    assert seen == list(reversed(made))  # newest first, each once


def test_a_full_last_page_says_there_is_no_more(gateway: LiveGateway) -> None:
    for i in range(2):
        gateway.client.post("/v1/tasks", json={**QUICK, "prompt": f"p{i}", "provider": "fake"})
    page = gateway.client.get("/v1/tasks", params={"limit": 2}).json()
    assert len(page["data"]) == 2 and page["has_more"] is False


def test_provider_filter(gateway: LiveGateway) -> None:
    on_fake = gateway.client.post("/v1/tasks", json={**QUICK, "provider": "fake"}).json()
    on_preview = gateway.client.post("/v1/tasks", json={**QUICK, "provider": "preview"}).json()
    fake_ids = [t["id"] for t in gateway.client.get("/v1/tasks?provider=fake").json()["data"]]
    preview = gateway.client.get("/v1/tasks", params={"provider": "preview"}).json()["data"]
    assert fake_ids == [on_fake["id"]]
    assert [t["id"] for t in preview] == [on_preview["id"]]


def test_a_cursor_from_another_token_is_not_found(gateway: LiveGateway) -> None:
    mine = gateway.client.post("/v1/tasks", json={**QUICK, "provider": "fake"}).json()
    with gateway.client_for(gateway.other_token) as other:
        response = other.get("/v1/tasks", params={"before": mine["id"]})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_listed_tasks_carry_the_request_and_when_they_ended(gateway: LiveGateway) -> None:
    image = "data:image/png;base64," + "A" * 5000
    running = gateway.client.post(
        "/v1/tasks", json={**QUICK, "provider": "fake", "image_url": image, "metadata": {"k": 1}}
    ).json()
    done = gateway.client.post("/generate-video", json={**QUICK, "provider": "preview"}).json()

    listed = {t["id"]: t for t in gateway.client.get("/v1/tasks").json()["data"]}
    request = listed[running["id"]]["request"]
    assert request["prompt"] == "quick" and request["provider"] == "fake"
    assert request["duration_ms"] == 500 and request["metadata"] == {"k": 1}
    # The inline image is shortened, not echoed back in full on every listing.
    assert request["image_url"] == "data:image/png;base64,…"
    assert listed[running["id"]]["finished_at"] is None

    finished = listed[done["task_id"]]
    assert finished["status"] == "succeeded"
    assert finished["finished_at"] is not None
    assert finished["finished_at"] >= finished["created_at"]
