"""Batched status polling against the Ark emulator: many jobs, few requests, and a job that
finishes is seen by the very next status read. Callbacks wake a job's read at once; an opt-in
``[seedance] max_running`` holds jobs across replicas. Every assertion counts requests or jobs,
never times."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

from app.providers.base import GenerationRequest
from tests.conftest import GatewayFactory, LiveGateway, eventually
from tests.emulators.ark import ArkState
from tests.emulators.server import free_port
from tests.fakes import ControlledProvider
from tests.tasks.conftest import ArkFactory, seedance_overrides

ENDED = ("succeeded", "failed", "cancelled")


def ended(gateway: LiveGateway, task_id: str) -> dict[str, Any]:
    return gateway.wait_task(task_id, lambda t: t["status"] in ENDED)


def reads_that_saw(state: ArkState, job_id: str) -> list[float]:
    return [at for at, ids in state.ended_reports if job_id in ids]


def test_many_jobs_are_read_in_batches_and_each_end_is_seen_by_the_next_read(
    gateway_factory: GatewayFactory, ark_server: ArkFactory
) -> None:
    with (
        ark_server(queued_s=0.5, running_s=2.5) as emu,
        gateway_factory(seedance_overrides(emu.url)) as gateway,
    ):
        ids = [
            gateway.client.post("/v1/tasks", json={"prompt": f"batch {n}"}).json()["id"]
            for n in range(30)
        ]
        done = [ended(gateway, task_id) for task_id in ids]
    state = emu.state
    assert [task["status"] for task in done] == ["succeeded"] * 30
    jobs = [task["provider_task_id"] for task in done]
    # Lists only, never a GET per job; [seedance] poll_qps (4) a second, 5 with arrival jitter.
    assert state.gets == 0 and state.lists == len(state.status_reads)
    first, last = min(state.status_reads), max(state.status_reads)
    assert max(state.reads_per_second(first, last + 1)) <= 5
    # Far fewer reads than jobs × seconds (per-task polling made ~8 reads per job here).
    assert state.lists < len(jobs)
    for job in jobs:
        finished = state.finished_at(job)
        # Each end is reported once (then the job is forgotten), by the first read after it.
        [seen] = reads_that_saw(state, job)
        assert [at for at in state.status_reads if finished <= at < seen] == []


def test_a_callback_wakes_the_jobs_read_at_once(
    gateway_factory: GatewayFactory, ark_server: ArkFactory
) -> None:
    port = free_port()
    with ark_server(queued_s=0.2, running_s=0.5) as emu:
        # Polling only every ten minutes: only Ark's callbacks can end these tasks in time.
        overrides = seedance_overrides(emu.url, callback_poll_interval_s=600)
        overrides["server"] = {"public_base_url": f"http://127.0.0.1:{port}"}
        with gateway_factory(overrides, port=port) as gateway:
            ids = [
                gateway.client.post("/v1/tasks", json={"prompt": f"called back {n}"}).json()["id"]
                for n in range(4)
            ]
            done = [ended(gateway, task_id) for task_id in ids]
            for task in done:  # the callbacks' answers have come back (before shutting down)
                job = task["provider_task_id"]
                eventually(lambda job=job: (job, "succeeded", 200) in emu.state.callbacks_sent)
    state = emu.state
    assert [task["status"] for task in done] == ["succeeded"] * 4
    for task in done:
        job = task["provider_task_id"]
        assert (job, "succeeded", 200) in state.callbacks_sent
        [seen] = reads_that_saw(state, job)
        # The read that saw the end came after the success callback, not from a schedule.
        assert seen >= state.finished_at(job)
    # A first read per job and a read per ending callback (batched) at most; no polling
    # rounds, and none for the callbacks of jobs starting to run.
    endings = len([c for c in state.callbacks_sent if c[2] == 200 and c[1] == "succeeded"])
    assert len(state.status_reads) <= len(done) + endings


def test_max_running_holds_jobs_across_replicas_and_shows_them_queued(
    gateway_factory: GatewayFactory, ark_server: ArkFactory, postgres_url: str, tmp_path: Path
) -> None:
    with ark_server(queued_s=0.1, running_s=1.5) as emu:
        overrides = seedance_overrides(emu.url, max_running=1)
        overrides["database"] = {"url": postgres_url}
        with (
            gateway_factory(overrides, data_dir=tmp_path / "a") as a,
            gateway_factory(overrides, data_dir=tmp_path / "b") as b,
        ):
            tag = tmp_path.name
            ids = [
                gw.client.post("/v1/tasks", json={"prompt": f"capped {tag} {n}"}).json()["id"]
                for n, gw in enumerate((a, b, a, b))
            ]
            waiting = a.wait_task(
                ids[-1], lambda t: t["status"] == "queued" and t["queue_position"]
            )
            done = [ended(a, task_id) for task_id in ids]
    assert [task["status"] for task in done] == ["succeeded"] * 4
    assert waiting["stage"] is None and 1 <= waiting["queue_position"] <= 3
    jobs = sorted(
        (job for n in range(4) for job in emu.state.jobs_for(f"capped {tag} {n}")),
        key=lambda job: emu.state.tasks[job].created,
    )
    assert len(jobs) == 4
    # One job at a time at Ark: each was created only after the one before had finished.
    for before, after in itertools.pairwise(jobs):
        assert emu.state.tasks[after].created >= emu.state.finished_at(before)


def test_a_callback_that_reaches_another_replica_wakes_the_one_working(
    gateway_factory: GatewayFactory, ark_server: ArkFactory, postgres_url: str, tmp_path: Path
) -> None:
    port_b = free_port()
    with ark_server(queued_s=0.2, running_s=0.5) as emu:
        # Both give Ark replica B's address; A works on the task; polling every ten minutes.
        overrides = seedance_overrides(emu.url, callback_poll_interval_s=600)
        overrides["database"] = {"url": postgres_url}
        overrides["server"] = {"public_base_url": f"http://127.0.0.1:{port_b}"}
        with (
            gateway_factory(overrides, data_dir=tmp_path / "a") as a,
            gateway_factory(overrides, data_dir=tmp_path / "b", port=port_b) as b,
        ):
            task = a.client.post("/v1/tasks", json={"prompt": f"elsewhere {tmp_path.name}"})
            done = ended(a, task.json()["id"])
            assert (
                b.app.state.runner.active == 0 and b.app.state.runner.works_on(done["id"]) is False
            )
    assert done["status"] == "succeeded"
    job = done["provider_task_id"]
    assert (job, "succeeded", 200) in emu.state.callbacks_sent
    [seen] = reads_that_saw(emu.state, job)
    assert seen >= emu.state.finished_at(job)


def test_progress_is_estimated_from_recent_durations_where_the_provider_has_none(
    gateway_factory: GatewayFactory, ark_server: ArkFactory
) -> None:
    with (
        ark_server(queued_s=0.2, running_s=3.0) as emu,
        gateway_factory(seedance_overrides(emu.url)) as gateway,
    ):
        first = gateway.client.post("/v1/tasks", json={"prompt": "first of its kind"}).json()
        during = gateway.client.get(f"/v1/tasks/{first['id']}").json()
        assert during["progress_estimated"] is False  # nothing to estimate from yet
        ended(gateway, first["id"])
        second = gateway.client.post("/v1/tasks", json={"prompt": "now we know"}).json()
        estimated = gateway.wait_task(
            second["id"], lambda t: t["progress_estimated"] and 0 < t["progress"] <= 95
        )
        done = ended(gateway, second["id"])
    assert estimated["stage"] == "generating" and estimated["eta_s"] > 0
    assert done["status"] == "succeeded" and done["progress"] == 100
    assert done["progress_estimated"] is False and done["eta_s"] is None


def test_a_task_waiting_for_a_local_slot_is_queued_in_line(
    gateway_factory: GatewayFactory,
) -> None:
    fake = ControlledProvider()
    overrides = {"queue": {"concurrency": '{"fake": 1}'}}
    with gateway_factory(overrides, extra_providers={"fake": fake}) as gateway:
        body = {"prompt": "one at a time", "provider": "fake", "duration_ms": 500, "fps": 4}
        ids = [gateway.client.post("/v1/tasks", json=body).json()["id"] for _ in range(3)]
        gateway.wait_task(ids[0], lambda t: t["status"] == "running")
        second = gateway.wait_task(ids[1], lambda t: t["queue_position"] == 1)
        third = gateway.wait_task(ids[2], lambda t: t["queue_position"] == 2)
        assert len(fake.submits) == 1
        fake.release()
        done = [ended(gateway, task_id) for task_id in ids]
    assert (second["status"], second["stage"]) == ("queued", None)
    assert third["status"] == "queued"
    assert [task["status"] for task in done] == ["succeeded"] * 3
    assert [task["queue_position"] for task in done] == [None] * 3


class SlowToAnswer(ControlledProvider):
    """Takes a second to answer a submit, and notes when it answered (``time.monotonic()``)."""

    def __init__(self) -> None:
        super().__init__("slow")
        self.answered: list[float] = []

    async def submit(self, request: GenerationRequest) -> str:
        await asyncio.sleep(1.0)
        job = await super().submit(request)
        self.answered.append(time.monotonic())
        return job


def test_a_jobs_age_counts_from_the_providers_answer_to_its_submit(
    gateway_factory: GatewayFactory,
) -> None:
    """Jobs submitted together are answered tenths of a second apart under load, and a job
    is expected done that long after its answer, not after the submit began."""
    slow = SlowToAnswer()
    with gateway_factory(extra_providers={"slow": slow}) as gateway:
        body = {"prompt": "slow to answer", "provider": "slow", "duration_ms": 500, "fps": 4}
        task = gateway.client.post("/v1/tasks", json=body).json()
        gateway.wait_task(task["id"], lambda t: t["provider_status"] == "cooking")
        poller = gateway.app.state.runner._pipeline.pollers.get("slow")
        [watched] = poller._jobs.values()
        slow.release()
        ended(gateway, task["id"])
    [answered] = slow.answered
    # From the submit's start it would be a second earlier.
    assert abs(watched.since - answered) < 0.5


class NotesTheWindow(ControlledProvider):
    """Notes what the gateway says of its job just after answering its submit, while the job
    id is being recorded: the moment Ark's first callback tends to arrive."""

    def __init__(self) -> None:
        super().__init__("window")
        self.runner: Any = None
        self.known: list[str | None] = []

    async def submit(self, request: GenerationRequest) -> str:
        job = await super().submit(request)
        task_id = request.task_id
        asyncio.get_running_loop().call_soon(
            lambda: self.known.append(self.runner.watched_job(task_id))
        )
        return job


def test_a_job_is_known_as_soon_as_its_submit_is_answered(
    gateway_factory: GatewayFactory,
) -> None:
    """A callback that arrives while the answer is being recorded needs no write of its own:
    ``adopt_job`` only nudges a job this process already knows."""
    provider = NotesTheWindow()
    with gateway_factory(extra_providers={"window": provider}) as gateway:
        provider.runner = gateway.app.state.runner
        body = {"prompt": "known at once", "provider": "window", "duration_ms": 500, "fps": 4}
        task = gateway.client.post("/v1/tasks", json=body).json()
        provider.release()
        done = ended(gateway, task["id"])
    assert provider.known == [done["provider_task_id"]]
