"""Paying once: a create is re-sent only when the provider surely took nothing; a lost answer
is reconciled (callback, task list) or fails saying the job may exist — never re-sent, never
fallen back from. Every test counts the jobs the provider made, not just task statuses."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import GatewayFactory, LiveGateway, eventually
from tests.emulators.jimeng_official import JimengOfficialState
from tests.emulators.server import free_port
from tests.fakes import ControlledProvider
from tests.providers.conftest import JIMENG_AK, JIMENG_SK, Emulator, jimeng_emu  # noqa: F401
from tests.tasks.conftest import ArkFactory, seedance_overrides

# Creates time out after 0.5 s; the slow provider holds its answer 2 s after making the job.
SLOW_CREATE = {"timeout_s": 0.5}
HOLD_S = 2.0


@pytest.fixture
def fallback() -> ControlledProvider:
    """The next provider in the chain: a fallback to it would show here."""
    fallback = ControlledProvider("spare")
    fallback.release()
    return fallback


def start(
    factory: GatewayFactory,
    fallback: ControlledProvider,
    overrides: dict[str, dict[str, Any]],
    **kwargs: Any,
) -> Any:
    overrides["providers"] = {**overrides.get("providers", {}), "fallback": "spare"}
    return factory(overrides, extra_providers={"spare": fallback}, **kwargs)


def ended(gateway: LiveGateway, task_id: str) -> dict[str, Any]:
    return gateway.wait_task(task_id, lambda t: t["status"] in ("succeeded", "failed", "cancelled"))


def test_a_slow_create_is_adopted_from_its_callback_and_paid_once(
    gateway_factory: GatewayFactory, ark_server: ArkFactory, fallback: ControlledProvider
) -> None:
    port = free_port()
    with ark_server(queued_s=0.3, running_s=0.3) as emu:
        emu.state.slow_answer_next(HOLD_S)
        emu.state.fail_next(500, on="list", times=100)  # only the callback can tell
        overrides = seedance_overrides(emu.url, **SLOW_CREATE)
        overrides["server"] = {"public_base_url": f"http://127.0.0.1:{port}"}
        with start(gateway_factory, fallback, overrides, port=port) as gateway:
            task = gateway.client.post("/v1/tasks", json={"prompt": "slow create"}).json()
            done = ended(gateway, task["id"])
    assert done["status"] == "succeeded", done
    [job] = emu.state.jobs_for("slow create")
    assert done["provider_task_id"] == job and done["provider"] == "seedance"
    assert fallback.submits == []


def test_a_slow_create_is_found_in_the_task_list_and_paid_once(
    gateway_factory: GatewayFactory, ark_server: ArkFactory, fallback: ControlledProvider
) -> None:
    with ark_server(queued_s=0.1, running_s=0.2) as emu:
        emu.state.slow_answer_next(HOLD_S, times=3)
        overrides = seedance_overrides(emu.url, **SLOW_CREATE)
        with start(gateway_factory, fallback, overrides) as gateway:
            ids = [
                gateway.client.post("/v1/tasks", json={"prompt": f"listed {n}"}).json()["id"]
                for n in range(3)
            ]
            done = [ended(gateway, task_id) for task_id in ids]
    assert [task["status"] for task in done] == ["succeeded"] * 3
    jobs = [emu.state.jobs_for(f"listed {n}") for n in range(3)]
    assert [len(found) for found in jobs] == [1, 1, 1]
    # Each task adopted its own job (the seed derived from the task id tells them apart).
    assert [task["provider_task_id"] for task in done] == [found[0] for found in jobs]
    assert fallback.submits == []


def test_jobs_that_cannot_be_told_apart_are_not_adopted(
    gateway_factory: GatewayFactory, ark_server: ArkFactory, fallback: ControlledProvider
) -> None:
    with ark_server(queued_s=0.1, running_s=0.2) as emu:
        emu.state.slow_answer_next(HOLD_S, times=2)
        overrides = seedance_overrides(emu.url, adopt_window_s=1, **SLOW_CREATE)
        with start(gateway_factory, fallback, overrides) as gateway:
            same = {"prompt": "twins", "seed": 42}  # same model, seed, ratio, duration
            ids = [gateway.client.post("/v1/tasks", json=same).json()["id"] for _ in range(2)]
            done = [ended(gateway, task_id) for task_id in ids]
    assert [task["status"] for task in done] == ["failed", "failed"]
    for task in done:
        assert task["error"]["code"] == "provider_outcome_unknown"
        assert task["error"]["retryable"] is False
        assert "seedance" in task["error"]["message"] and "UTC" in task["error"]["message"]
    assert len(emu.state.jobs_for("twins")) == 2  # one each, never a third
    assert fallback.submits == []


def test_a_lost_jimeng_answer_fails_saying_the_job_may_exist(
    gateway_factory: GatewayFactory,
    jimeng_emu: Emulator[JimengOfficialState],  # noqa: F811
    fallback: ControlledProvider,
) -> None:
    jimeng_emu.state.slow_answer_next(HOLD_S)
    overrides = {
        "providers": {"default": "jimeng"},
        "jimeng": {
            "mode": "official",
            "base_url": jimeng_emu.url,
            "access_key": JIMENG_AK,
            "secret_key": JIMENG_SK,
            "timeout_s": 0.5,
            "retries": 2,
            "backoff_base_s": 0.01,
        },
    }
    with start(gateway_factory, fallback, overrides) as gateway:
        task = gateway.client.post("/v1/tasks", json={"prompt": "lost answer"}).json()
        done = ended(gateway, task["id"])
        answer = gateway.client.get(f"/v1/tasks/{task['id']}").json()
    assert done["status"] == "failed"
    assert done["error"]["code"] == "provider_outcome_unknown"
    assert "jimeng" in done["error"]["message"] and "UTC" in done["error"]["message"]
    assert answer["provider_status"] == "outcome_unknown"
    assert jimeng_emu.state.submits == 1 and fallback.submits == []


def test_error_answers_are_resent_then_fallen_back_from(
    gateway_factory: GatewayFactory, ark_server: ArkFactory, fallback: ControlledProvider
) -> None:
    # 500s are answers: Ark surely made nothing, so re-sending and falling back are safe.
    with ark_server() as emu:
        emu.state.fail_next(500, times=10)
        overrides = seedance_overrides(emu.url)
        with start(gateway_factory, fallback, overrides) as gateway:
            task = gateway.client.post("/v1/tasks", json={"prompt": "ark is down"}).json()
            done = ended(gateway, task["id"])
    assert done["status"] == "succeeded" and done["provider"] == "spare"
    assert "fell back" in done["route_reason"]
    assert emu.state.jobs_for("ark is down") == [] and len(fallback.submits) == 1


def test_cancel_during_a_submit_cancels_the_job_it_made(
    gateway_factory: GatewayFactory, ark_server: ArkFactory, fallback: ControlledProvider
) -> None:
    with ark_server(queued_s=30, running_s=1) as emu:
        emu.state.slow_answer_next(1.0)
        overrides = seedance_overrides(emu.url)  # a 30 s timeout: the answer arrives, late
        with start(gateway_factory, fallback, overrides) as gateway:
            task = gateway.client.post("/v1/tasks", json={"prompt": "cancel me"}).json()
            eventually(lambda: emu.state.jobs_for("cancel me") != [])
            assert gateway.client.get(f"/v1/tasks/{task['id']}").json()["provider_task_id"] is None
            cancelled = gateway.client.delete(f"/v1/tasks/{task['id']}").json()
            assert cancelled["status"] == "cancelled"
            [job] = emu.state.jobs_for("cancel me")
            eventually(lambda: emu.state.deletes == [job])
            final = gateway.client.get(f"/v1/tasks/{task['id']}").json()
    assert final["status"] == "cancelled"
    assert final["provider_task_id"] == job and final["provider_status"] == "cancel requested"
    assert [t.cancelled for t in emu.state.jobs()] == [True]
