"""Through the whole gateway: real providers' emulators, re-hosting, errors, routing, restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import GatewayFactory, LiveGateway
from tests.emulators.ark import ArkState
from tests.emulators.jimeng_official import JimengOfficialState
from tests.emulators.jimeng_relay import RelayState
from tests.providers.conftest import (
    ARK_KEY,
    FAST,
    JIMENG_AK,
    JIMENG_SK,
    RELAY_SESSION,
    Emulator,
)


def seedance_cfg(emu: Emulator[ArkState], **extra: Any) -> dict[str, Any]:
    return {"base_url": emu.url, "api_key": ARK_KEY, **FAST, **extra}


def jimeng_cfg(emu: Emulator[JimengOfficialState], **extra: Any) -> dict[str, Any]:
    return {"base_url": emu.url, "access_key": JIMENG_AK, "secret_key": JIMENG_SK, **FAST, **extra}


def generate(gw: LiveGateway, **body: Any) -> httpx.Response:
    return gw.client.post("/generate-video", json={"prompt": "a red fox in snow", **body})


def assert_rehosted(gw: LiveGateway, result: dict[str, Any], expected: bytes) -> None:
    url = result["video_url"]
    assert url.startswith(f"{gw.base_url}/files/videos/"), url
    served = httpx.get(url, timeout=30)
    assert served.status_code == 200 and served.content == expected


def test_seedance_end_to_end_rehosts_the_video(
    gateway_factory: GatewayFactory, ark_emu: Emulator[ArkState], mp4_bytes: bytes
) -> None:
    overrides = {"seedance": seedance_cfg(ark_emu), "providers": {"default": "seedance"}}
    with gateway_factory(overrides) as gw:
        response = generate(gw, duration_ms=7500, aspect_ratio="9:16")
        assert response.status_code == 200, response.text
        result = response.json()
        assert result["provider"] == "seedance"
        assert_rehosted(gw, result, mp4_bytes)
        task = gw.client.get(f"/v1/tasks/{result['task_id']}").json()
    assert task["provider_task_id"].startswith("cgt-") and task["provider_status"] == "succeeded"
    assert task["params"]["duration_s"] == 8 and task["params"]["ratio"] == "9:16"
    assert task["route_reason"] == "default provider"
    assert ark_emu.state.creates == 1 and ark_emu.state.create_bodies[0]["duration"] == 8


def test_jimeng_official_end_to_end(
    gateway_factory: GatewayFactory,
    jimeng_emu: Emulator[JimengOfficialState],
    mp4_bytes: bytes,
) -> None:
    overrides = {"jimeng": jimeng_cfg(jimeng_emu), "providers": {"default": "jimeng"}}
    with gateway_factory(overrides) as gw:
        response = generate(gw, duration_ms=10000)
        assert response.status_code == 200, response.text
        assert_rehosted(gw, response.json(), mp4_bytes)
        task = gw.client.get(f"/v1/tasks/{response.json()['task_id']}").json()
    assert task["params"]["frames"] == 241 and task["provider"] == "jimeng"
    assert jimeng_emu.state.signature_failures == []


def test_jimeng_relay_from_the_seed_config(
    gateway_factory: GatewayFactory, relay_emu: Emulator[RelayState], mp4_bytes: bytes
) -> None:
    overrides = {
        "video_api": {"cookie": RELAY_SESSION},
        "DEFAULT": {"image_generation_url": f"{relay_emu.url}/v1/images/generations"},
        "providers": {"default": "jimeng"},
    }
    with gateway_factory(overrides) as gw:
        response = generate(gw)
        assert response.status_code == 200, response.text
        assert_rehosted(gw, response.json(), mp4_bytes)
    assert relay_emu.state.creates == 1


@pytest.mark.parametrize(
    ("prompt", "extra", "status", "code", "needle"),
    [
        ("BLOCKED_INPUT fox", {}, 400, "content_rejected", "InputTextSensitiveContentDetected"),
        ("BLOCKED_OUTPUT fox", {}, 400, "content_rejected", "OutputVideoSensitiveContentDetected"),
        ("EXPIRE_ME fox", {}, 504, "provider_timeout", "expired"),
        ("fox", {"api_key": "ark-wrong-key-000000"}, 502, "provider_auth", "seedance"),
        ("fox", {"durations": "[15]"}, 422, "validation_error", "duration"),
    ],
)
def test_seedance_errors_reach_the_client_translated(
    gateway_factory: GatewayFactory,
    ark_emu: Emulator[ArkState],
    prompt: str,
    extra: dict[str, Any],
    status: int,
    code: str,
    needle: str,
) -> None:
    overrides = {"seedance": seedance_cfg(ark_emu, **extra), "providers": {"default": "seedance"}}
    with gateway_factory(overrides) as gw:
        response = generate(gw, prompt=prompt, duration_ms=12000)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and needle in error["message"]
    assert "ark-wrong-key" not in response.text


def test_provider_outage_after_retries_is_a_retryable_502(
    gateway_factory: GatewayFactory, ark_emu: Emulator[ArkState]
) -> None:
    ark_emu.state.fail_next(500, times=4)
    overrides = {"seedance": seedance_cfg(ark_emu), "providers": {"default": "seedance"}}
    with gateway_factory(overrides) as gw:
        response = generate(gw)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "provider_error"
    assert response.json()["error"]["retryable"] is True
    assert ark_emu.state.faults.pending() == 0


def test_the_deadline_fails_a_slow_task_and_cancels_it(
    gateway_factory: GatewayFactory, ark_emu: Emulator[ArkState]
) -> None:
    ark_emu.state.queued_s = 60
    overrides = {
        "seedance": seedance_cfg(ark_emu, deadline_s=0.5),
        "providers": {"default": "seedance"},
    }
    with gateway_factory(overrides) as gw:
        response = generate(gw)
    assert response.status_code == 504 and response.json()["error"]["code"] == "provider_timeout"
    assert len(ark_emu.state.deletes) == 1


def test_a_broken_download_is_retried(
    gateway_factory: GatewayFactory, ark_emu: Emulator[ArkState], mp4_bytes: bytes
) -> None:
    ark_emu.state.videos.break_next()
    overrides = {"seedance": seedance_cfg(ark_emu), "providers": {"default": "seedance"}}
    with gateway_factory(overrides) as gw:
        response = generate(gw)
        assert response.status_code == 200, response.text
        assert_rehosted(gw, response.json(), mp4_bytes)
    assert ark_emu.state.videos.downloads == 2


ROUTES = '[{"if": {"max_duration_ms": 10000}, "provider": "jimeng"}, {"provider": "seedance"}]'


def test_routes_pick_the_provider_by_duration(
    gateway_factory: GatewayFactory,
    ark_emu: Emulator[ArkState],
    jimeng_emu: Emulator[JimengOfficialState],
) -> None:
    overrides = {
        "seedance": seedance_cfg(ark_emu),
        "jimeng": jimeng_cfg(jimeng_emu),
        "providers": {"default": "preview", "routes": ROUTES},
    }
    with gateway_factory(overrides) as gw:
        short = generate(gw, duration_ms=5000).json()
        long = generate(gw, duration_ms=12000).json()
        chosen = gw.client.get(f"/v1/tasks/{short['task_id']}").json()
    assert short["provider"] == "jimeng" and long["provider"] == "seedance"
    assert "max_duration_ms=10000" in chosen["route_reason"]
    assert jimeng_emu.state.submits == 1 and ark_emu.state.creates == 1


@pytest.mark.parametrize("outage", ["server", "auth"])
def test_fallback_when_the_chosen_provider_is_down(
    gateway_factory: GatewayFactory,
    ark_emu: Emulator[ArkState],
    jimeng_emu: Emulator[JimengOfficialState],
    mp4_bytes: bytes,
    outage: str,
) -> None:
    if outage == "server":
        ark_emu.state.fail_next(503, times=4)
    seedance = seedance_cfg(
        ark_emu, **({"api_key": "ark-revoked-key-111"} if outage == "auth" else {})
    )
    overrides = {
        "seedance": seedance,
        "jimeng": jimeng_cfg(jimeng_emu),
        "providers": {"default": "seedance", "fallback": "jimeng"},
    }
    with gateway_factory(overrides) as gw:
        response = generate(gw)
        assert response.status_code == 200, response.text
        assert_rehosted(gw, response.json(), mp4_bytes)
        task = gw.client.get(f"/v1/tasks/{response.json()['task_id']}").json()
    assert task["provider"] == "jimeng" and "fell back" in task["route_reason"]
    assert ark_emu.state.creates == 0 and jimeng_emu.state.submits == 1


def test_no_fallback_after_a_content_rejection(
    gateway_factory: GatewayFactory,
    ark_emu: Emulator[ArkState],
    jimeng_emu: Emulator[JimengOfficialState],
) -> None:
    overrides = {
        "seedance": seedance_cfg(ark_emu),
        "jimeng": jimeng_cfg(jimeng_emu),
        "providers": {"default": "seedance", "fallback": "jimeng"},
    }
    with gateway_factory(overrides) as gw:
        response = generate(gw, prompt="BLOCKED_INPUT")
    assert response.status_code == 400 and response.json()["error"]["code"] == "content_rejected"
    assert jimeng_emu.state.submits == 0


def test_cancel_reaches_the_provider(
    gateway_factory: GatewayFactory, ark_emu: Emulator[ArkState]
) -> None:
    ark_emu.state.queued_s = 60
    overrides = {"seedance": seedance_cfg(ark_emu), "providers": {"default": "seedance"}}
    with gateway_factory(overrides) as gw:
        task = gw.client.post("/v1/tasks", json={"prompt": "a fox"}).json()
        gw.wait_task(task["id"], lambda t: t["provider_task_id"])
        assert gw.client.delete(f"/v1/tasks/{task['id']}").status_code == 200
        final = gw.wait_task(task["id"], lambda t: t["status"] == "cancelled")
    assert ark_emu.state.deletes == [final["provider_task_id"]]


def test_a_restart_resumes_polling_and_never_creates_twice(
    gateway_factory: GatewayFactory, ark_emu: Emulator[ArkState], mp4_bytes: bytes, tmp_path: Path
) -> None:
    ark_emu.state.queued_s = 1.0
    overrides = {"seedance": seedance_cfg(ark_emu), "providers": {"default": "seedance"}}
    data_dir = tmp_path / "shared-data"
    with gateway_factory(overrides, data_dir=data_dir) as gw:
        task = gw.client.post("/v1/tasks", json={"prompt": "a fox"}).json()
        accepted = gw.wait_task(task["id"], lambda t: t["provider_task_id"])
        assert accepted["status"] == "running"
    with gateway_factory(overrides, data_dir=data_dir) as gw:
        done = gw.wait_task(task["id"], lambda t: t["status"] in ("succeeded", "failed"))
        assert done["status"] == "succeeded", done
        assert done["provider_task_id"] == accepted["provider_task_id"]
        assert_rehosted(gw, done, mp4_bytes)
    assert ark_emu.state.creates == 1


def test_a_relay_job_lost_in_a_restart_fails_as_outcome_unknown_and_is_not_rerun(
    gateway_factory: GatewayFactory, relay_emu: Emulator[RelayState], tmp_path: Path
) -> None:
    relay_emu.state.generate_s = 30
    overrides = {
        "jimeng": {"mode": "relay", "relay_url": relay_emu.url, "session_id": RELAY_SESSION},
        "providers": {"default": "jimeng"},
    }
    data_dir = tmp_path / "shared-data"
    with gateway_factory(overrides, data_dir=data_dir) as gw:
        task = gw.client.post("/v1/tasks", json={"prompt": "a fox"}).json()
        gw.wait_task(task["id"], lambda t: t["provider_task_id"])
    with gateway_factory(overrides, data_dir=data_dir) as gw:
        done = gw.wait_task(task["id"], lambda t: t["status"] in ("succeeded", "failed"))
    assert done["status"] == "failed" and done["error"]["retryable"] is False
    assert done["error"]["code"] == "provider_outcome_unknown"
    assert "restart" in done["error"]["message"]
    assert relay_emu.state.creates == 1
