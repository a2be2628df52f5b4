"""Provider health through the whole gateway: an open circuit is passed by, shown in /readyz and
/metrics; the Jimeng relay's risk control falls back to the official API, then closes again."""

from __future__ import annotations

from typing import Any

import httpx

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


def breakers(gw: LiveGateway) -> dict[str, Any]:
    ready = gw.client.get("/readyz")
    assert ready.status_code == 200, ready.text
    providers: dict[str, Any] = ready.json()["providers"]
    return providers


class ManualClock:
    """The breakers' clock, moved by the test: no test waits for an open circuit to cool."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def manual_clock(gw: LiveGateway) -> ManualClock:
    clock = ManualClock()
    for _, breaker in gw.app.state.providers.breakers.items():
        breaker.clock = clock
    return clock


def generate(gw: LiveGateway, prompt: str = "a fox") -> dict[str, Any]:
    response = gw.client.post("/generate-video", json={"prompt": prompt})
    assert response.status_code == 200, response.text
    task: dict[str, Any] = gw.client.get(f"/v1/tasks/{response.json()['task_id']}").json()
    return task


def test_an_open_circuit_is_passed_by_and_shown(
    gateway_factory: GatewayFactory,
    ark_emu: Emulator[ArkState],
    jimeng_emu: Emulator[JimengOfficialState],
) -> None:
    ark_emu.state.fail_next(503, times=8)  # two submits' worth of retries
    overrides = {
        "seedance": {"base_url": ark_emu.url, "api_key": ARK_KEY, **FAST},
        "jimeng": {
            "base_url": jimeng_emu.url,
            "access_key": JIMENG_AK,
            "secret_key": JIMENG_SK,
            **FAST,
        },
        "providers": {
            "default": "seedance",
            "fallback": "jimeng",
            "breaker_failures": 1,
            "breaker_open_s": 3600,
        },
    }
    with gateway_factory(overrides) as gw:
        first = generate(gw)
        second = generate(gw)
        health = breakers(gw)
        metrics = gw.client.get("/metrics").text
        listed = {p["name"]: p for p in gw.client.get("/v1/providers").json()["data"]}
    assert first["provider"] == "jimeng" and "seedance failed" in first["route_reason"]
    # The second task never asked Ark: its circuit was open.
    assert second["provider"] == "jimeng" and "seedance passed by" in second["route_reason"]
    assert ark_emu.state.faults.pending() == 4 and ark_emu.state.creates == 0
    assert jimeng_emu.state.submits == 2
    assert health["seedance"]["state"] == "open" and health["seedance"]["times_opened"] == 1
    assert health["seedance"]["errors"] == {"provider_error": 1}
    assert health["jimeng"]["state"] == "closed"
    assert listed["seedance"]["circuit"] == "open" and listed["jimeng"]["circuit"] == "closed"
    assert 'vgw_provider_breaker_state{provider="seedance"} 2.0' in metrics
    assert 'vgw_provider_breaker_state{provider="jimeng"} 0.0' in metrics
    assert 'vgw_provider_errors_total{code="provider_error",provider="seedance"} 1.0' in metrics


def test_relay_risk_control_falls_back_to_the_official_api_until_the_relay_recovers(
    gateway_factory: GatewayFactory,
    relay_emu: Emulator[RelayState],
    jimeng_emu: Emulator[JimengOfficialState],
) -> None:
    relay_emu.state.risk_control_next(times=2)
    overrides = {
        "jimeng": {
            "mode": "relay",
            "relay_url": relay_emu.url,
            "session_id": RELAY_SESSION,
            "base_url": jimeng_emu.url,
            "access_key": JIMENG_AK,
            "secret_key": JIMENG_SK,
            **FAST,
        },
        "providers": {"default": "jimeng", "fallback": "jimeng-official", "breaker_open_s": 1},
    }
    with gateway_factory(overrides) as gw:
        clock = manual_clock(gw)
        first = generate(gw)
        assert breakers(gw)["jimeng"]["state"] == "open"  # one risk-control answer is enough
        second = generate(gw)
        # The second refusal is still waiting at the relay: nothing was sent while open.
        assert relay_emu.state.calls == 1 and relay_emu.state.faults.pending() == 1
        clock.now += 1.5  # past breaker_open_s
        assert breakers(gw)["jimeng"]["state"] == "half_open"
        third = generate(gw)  # the half-open trial meets the second refusal: open again
        assert breakers(gw)["jimeng"]["times_opened"] == 2
        clock.now += 1.5
        assert breakers(gw)["jimeng"]["state"] == "half_open"
        fourth = generate(gw)  # the next trial: the relay works again, the circuit closes
        health = breakers(gw)
        video = httpx.get(fourth["video_url"], timeout=30)
    assert first["provider"] == "jimeng-official"
    assert "jimeng failed (provider_error), fell back" in first["route_reason"]
    assert second["provider"] == "jimeng-official"
    assert "jimeng passed by" in second["route_reason"]
    assert third["provider"] == "jimeng-official" and "fell back" in third["route_reason"]
    assert fourth["provider"] == "jimeng" and video.status_code == 200
    assert relay_emu.state.calls == 3 and relay_emu.state.creates == 1
    assert jimeng_emu.state.submits == 3
    assert health["jimeng"]["state"] == "closed" and health["jimeng"]["times_opened"] == 2
    assert health["jimeng"]["errors"] == {"provider_error": 2}
    assert health["jimeng-official"]["state"] == "closed"
