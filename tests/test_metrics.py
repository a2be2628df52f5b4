"""``GET /metrics`` on a live gateway: every family moves when the thing it counts happens."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app import __version__
from app.errors import ProviderAuthError
from app.metrics import Metrics
from app.providers.base import JobStatus, LastFrameSource
from app.providers.instrumented import instrument
from tests.conftest import GatewayFactory, LiveGateway, eventually
from tests.fakes import ControlledProvider

VIDEO = bytes(range(256)) * 300  # 76,800 bytes


def scrape(gateway: LiveGateway) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = gateway.client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


@pytest.fixture
def fake() -> ControlledProvider:
    return ControlledProvider(video=VIDEO)


@pytest.fixture
def gateway(gateway_factory: GatewayFactory, fake: ControlledProvider) -> Iterator[LiveGateway]:
    with gateway_factory(
        {"providers": {"default": "fake"}}, extra_providers={"fake": fake}
    ) as live:
        yield live


def test_a_task_moves_every_family(gateway: LiveGateway, fake: ControlledProvider) -> None:
    created = gateway.client.post("/v1/tasks", json={"prompt": "a lighthouse at dusk"})
    assert created.status_code == 202
    task_id = created.json()["id"]
    gateway.wait_task(task_id, lambda t: t["status"] == "running")

    running = scrape(gateway)
    assert value(running, "vgw_tasks_active") == 1
    assert value(running, "vgw_tasks", status="running") == 1
    assert (
        value(
            running, "vgw_provider_calls_total", provider="fake", operation="submit", outcome="ok"
        )
        == 1
    )
    assert (
        value(running, "vgw_http_requests_total", method="POST", route="/v1/tasks", status="202")
        == 1
    )

    fake.release()
    task = gateway.wait_task(task_id, lambda t: t["status"] == "succeeded")
    eventually(lambda: value(scrape(gateway), "vgw_tasks_active") == 0)
    done = scrape(gateway)
    assert value(done, "vgw_tasks", status="running") == 0
    # The bytes relayed are the provider's video, byte for byte, and they reached storage once.
    assert value(done, "vgw_relay_bytes_total", provider="fake") == len(VIDEO)
    assert len(gateway.client.get(task["video_url"]).content) == len(VIDEO)
    assert (
        value(done, "vgw_storage_operations_total", backend="local", operation="put", outcome="ok")
        == 1
    )
    assert value(done, "vgw_tasks_finished_total", provider="fake", status="succeeded") == 1
    # Requests are labelled by route template, not by the task id in the path.
    assert (
        value(
            done,
            "vgw_http_request_duration_seconds_count",
            method="GET",
            route="/v1/tasks/{task_id}",
        )
        >= 1
    )
    assert not any(task_id in dict(labels).get("route", "") for _, labels in done)
    assert value(done, "vgw_build_info", version=__version__) == 1


def test_provider_errors_are_counted_by_code(
    gateway: LiveGateway, fake: ControlledProvider
) -> None:
    fake.submit_error = ProviderAuthError("fake: the key was refused")
    task_id = gateway.client.post("/v1/tasks", json={"prompt": "a red kite"}).json()["id"]
    gateway.wait_task(task_id, lambda t: t["status"] == "failed")
    samples = scrape(gateway)
    assert (
        value(
            samples,
            "vgw_provider_calls_total",
            provider="fake",
            operation="submit",
            outcome="provider_auth",
        )
        == 1
    )
    assert (
        value(
            samples, "vgw_provider_calls_total", provider="fake", operation="submit", outcome="ok"
        )
        == 0
    )
    assert value(samples, "vgw_tasks_finished_total", provider="fake", status="failed") == 1


def test_unknown_paths_share_one_label(gateway: LiveGateway) -> None:
    for n in range(3):
        assert gateway.client.get(f"/no/such/path/{n}").status_code == 404
    samples = scrape(gateway)
    assert (
        value(samples, "vgw_http_requests_total", method="GET", route="unmatched", status="404")
        == 3
    )


def test_instrumented_providers_keep_their_optional_capabilities() -> None:
    """The pipeline asks for the last frame with isinstance: the wrapper keeps it as it is."""

    class WithLastFrame(ControlledProvider):
        def open_last_frame(self, provider_task_id: str, status: JobStatus) -> Any:
            raise NotImplementedError

    metrics = Metrics()
    assert isinstance(instrument(WithLastFrame(), metrics), LastFrameSource)
    assert not isinstance(instrument(ControlledProvider(), metrics), LastFrameSource)
