"""The per-provider poller with hand-written fakes of the provider interface (our own seam):
batches, a shared rate, reads of jobs a batch left out, nudges first, errors that must not
fail a job at the first hiccup. The protocols themselves are tested against emulators
(``test_seedance.py``, ``tests/tasks/test_polling.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from app.errors import ProviderAuthError, ProviderError
from app.providers.base import Capabilities, JobState, JobStatus
from app.providers.polling import JobPoller, PollPolicy, _Watched

pytestmark = pytest.mark.anyio

RUNNING = JobStatus(state=JobState.RUNNING, provider_status="running")
DONE = JobStatus(state=JobState.SUCCEEDED, provider_status="succeeded", video_url="u")


class Batched:
    name = "batched"
    capabilities = Capabilities()

    def __init__(self, policy: PollPolicy) -> None:
        self.poll_policy = policy
        self.batches: list[list[str]] = []
        self.singles: list[str] = []
        self.done: set[str] = set()
        self.unlisted: set[str] = set()
        self.fail: list[Exception] = []

    def _status(self, job_id: str) -> JobStatus:
        return DONE if job_id in self.done else RUNNING

    async def poll_many(self, ids: Sequence[str]) -> dict[str, JobStatus]:
        self.batches.append(list(ids))
        if self.fail:
            raise self.fail.pop(0)
        return {i: self._status(i) for i in ids if i not in self.unlisted}

    async def poll(self, job_id: str) -> JobStatus:
        self.singles.append(job_id)
        return self._status(job_id)


def poller_for(policy: PollPolicy, *, jobs_take_s: float) -> tuple[Batched, JobPoller]:
    """A poller whose provider's recent jobs took ``jobs_take_s`` (when jobs may be done)."""
    provider = Batched(policy)
    poller = JobPoller(provider)
    poller._durations.extend([jobs_take_s] * 3)
    return provider, poller


async def ends(
    provider: Batched, job: str, after_s: float, *, calls_back: JobPoller | None = None
) -> None:
    """The job ends ``after_s`` from now (and its callback nudges ``calls_back``)."""
    await asyncio.sleep(after_s)
    provider.done.add(job)
    if calls_back is not None:
        calls_back.nudge(job)


async def test_one_read_answers_for_a_batch_and_left_out_jobs_are_read_alone() -> None:
    provider = Batched(PollPolicy(interval_s=0.05, batch=3, max_rps=100))
    provider.unlisted.add("j4")
    poller = JobPoller(provider)
    firsts = await asyncio.gather(*(poller.next(f"j{n}", after=None, wait_s=5) for n in range(5)))
    assert all(status is not None and status.state is JobState.RUNNING for status in firsts)
    assert max(len(batch) for batch in provider.batches) == 3  # never more than the batch
    assert provider.singles == ["j4"]  # the one the batch answers left out
    provider.done.add("j2")
    ended = await poller.next("j2", after=RUNNING, wait_s=5)
    assert ended is not None and ended.state is JobState.SUCCEEDED
    await poller.aclose()


async def test_reads_keep_to_the_shared_rate_and_nudged_jobs_go_first() -> None:
    provider = Batched(PollPolicy(interval_s=30, batch=1, max_rps=20))
    poller = JobPoller(provider)
    await asyncio.gather(*(poller.next(f"j{n}", after=None, wait_s=5) for n in range(4)))
    assert provider.batches == [] and sorted(provider.singles) == ["j0", "j1", "j2", "j3"]
    reads = len(provider.singles)
    provider.done.add("j3")
    poller.nudge("j3")
    ended = await poller.next("j3", after=RUNNING, wait_s=5)
    assert ended is not None and ended.state is JobState.SUCCEEDED
    # The nudge was read next; nothing else was due (a 30 s interval).
    assert provider.singles[reads:] == ["j3"]
    await poller.aclose()


async def test_a_broken_batch_read_falls_back_to_reading_jobs_alone() -> None:
    provider = Batched(PollPolicy(interval_s=0.01, batch=10, max_rps=1000))
    provider.fail = [ProviderError("the list API is down", retryable=True)]
    poller = JobPoller(provider)
    first = await poller.next("j1", after=None, wait_s=10)
    assert first is not None and first.state is JobState.RUNNING
    assert provider.batches == [["j1"]] and provider.singles[:1] == ["j1"]
    await poller.aclose()


async def test_a_job_that_may_be_done_before_the_next_read_is_read_when_it_may_be() -> None:
    provider = Batched(PollPolicy(interval_s=3.0, batch=10, max_rps=100))
    poller = JobPoller(provider)
    # Three jobs that took 0.2 s (a callback made them read at once): this provider is quick.
    for n in range(3):
        await poller.next(f"quick{n}", after=None, wait_s=5)
        await asyncio.sleep(0.2)
        provider.done.add(f"quick{n}")
        poller.nudge(f"quick{n}")
        assert await poller.next(f"quick{n}", after=RUNNING, wait_s=5) == DONE
    first = await poller.next("j", after=None, wait_s=5)
    assert first == RUNNING
    provider.done.add("j")  # done, and no callback comes
    # Read a quarter interval later (when it may be done), not a whole interval (3 s) later.
    assert await poller.next("j", after=RUNNING, wait_s=2.0) == DONE
    await poller.aclose()


async def test_a_job_past_when_it_may_be_done_is_read_again_a_quarter_interval_later() -> None:
    provider, poller = poller_for(PollPolicy(interval_s=4.0, batch=10, max_rps=100), jobs_take_s=2)
    # 2.5 s old: it may be done, and is not at its first read.
    assert await poller.next("late", after=None, wait_s=5, age_s=2.5) == RUNNING
    provider.done.add("late")
    # Read again a quarter interval later (1 s), not a whole interval (4 s) later.
    assert await poller.next("late", after=RUNNING, wait_s=2.5) == DONE
    await poller.aclose()


async def test_under_a_rate_one_batch_read_waits_for_the_jobs_that_may_be_done_soon() -> None:
    """Jobs submitted a fraction of a second apart: one read when the later may be done, not
    one for the earlier and another a rate's gap (1 s) after it."""
    provider, poller = poller_for(PollPolicy(interval_s=4.0, batch=10, max_rps=1), jobs_take_s=2)
    # The early job may be done in 1 s, the later in 1.6 s; they are, at 0.5 s and 1.3 s. Their
    # first read is asked for at once (as callbacks would).
    first = asyncio.gather(
        poller.next("early", after=None, wait_s=5, age_s=1.0),
        poller.next("later", after=None, wait_s=5, age_s=0.4),
    )
    await asyncio.sleep(0.01)
    poller.nudge("early")
    poller.nudge("later")
    assert await first == [RUNNING, RUNNING] and provider.batches == [["early", "later"]]
    ended = await asyncio.gather(
        ends(provider, "early", 0.5),
        ends(provider, "later", 1.3),
        poller.next("early", after=RUNNING, wait_s=5),
        poller.next("later", after=RUNNING, wait_s=5),
    )
    assert ended[2:] == [DONE, DONE]
    # One more read answered both: it waited for the later job rather than going out at 1 s.
    assert len(provider.batches) == 2
    await poller.aclose()


async def test_a_nudged_read_waits_for_a_job_that_calls_back_within_the_gap() -> None:
    """A callback for one job while another may be done within the rate's gap (2 s): one read
    for both, sent when the second calls back too, not one each."""
    policy = PollPolicy(interval_s=8.0, batch=10, max_rps=0.5)
    provider, poller = poller_for(policy, jobs_take_s=10)
    # Read at once; then the first may be done in 2 s (a quarter interval), the second in 2.5 s.
    await asyncio.gather(
        poller.next("first", after=None, wait_s=5, age_s=9.9),
        poller.next("second", after=None, wait_s=5, age_s=7.5),
    )
    ended = await asyncio.gather(
        ends(provider, "first", 0.1, calls_back=poller),  # read when the rate allows, at 2 s...
        ends(provider, "second", 2.2, calls_back=poller),  # ...but this one may be done by 2.5 s
        poller.next("first", after=RUNNING, wait_s=5),
        poller.next("second", after=RUNNING, wait_s=5),
    )
    assert ended[2:] == [DONE, DONE]
    assert len(provider.batches) == 2  # the first read, and one that answered both
    await poller.aclose()


def test_a_read_waits_only_for_jobs_its_batch_has_room_for_and_at_most_a_gap() -> None:
    provider = Batched(PollPolicy(interval_s=1.0, batch=3, max_rps=4))
    poller = JobPoller(provider)
    dues = {"a": 10.0, "b": 10.0, "c": 10.1, "d": 10.2, "e": 10.3}
    for job, due in dues.items():
        poller._jobs[job] = _Watched(job_id=job, since=0.0, due=due, interval=1.0)
    due = [poller._jobs["a"], poller._jobs["b"]]
    # Room for one more: wait for c (due within the 0.25 s gap), not for d.
    assert poller._gather_until(due, 10.0, 0.25, size=3) == 10.1
    # Room for three: c and d, not e (past the gap).
    assert poller._gather_until(due, 10.0, 0.25, size=5) == 10.2
    # A full batch goes out at once: waiting would only slow a cycle over many jobs.
    assert poller._gather_until(due, 10.0, 0.25, size=2) == 10.0


class Single(Batched):
    async def poll(self, job_id: str) -> JobStatus:
        self.singles.append(job_id)
        if self.fail:
            raise self.fail.pop(0)
        return self._status(job_id)


async def test_a_passing_hiccup_does_not_fail_the_job_but_bad_credentials_do() -> None:
    provider = Single(PollPolicy(interval_s=0.01, max_rps=1000))
    provider.fail = [ProviderError("busy", retryable=True)] * 2
    poller = JobPoller(provider)
    first = await poller.next("j1", after=None, wait_s=10)
    assert first is not None and first.state is JobState.RUNNING and len(provider.singles) == 3
    provider.fail = [ProviderAuthError("bad key", provider="single")]
    poller.nudge("j1")
    with pytest.raises(ProviderAuthError):
        await poller.next("j1", after=first, wait_s=10)
    await poller.aclose()


async def test_a_new_job_is_read_at_once_only_if_it_may_be_done() -> None:
    """Jobs of this provider take 2 s: one just submitted is first read an interval later (its
    read would only say "running"). Without durations yet, or when it may be done, at once."""
    provider, poller = poller_for(PollPolicy(interval_s=0.6, batch=10, max_rps=100), jobs_take_s=2)
    first = asyncio.create_task(poller.next("young", after=None, wait_s=5))
    await asyncio.sleep(0.3)
    assert provider.batches == [] and provider.singles == []
    assert await first == RUNNING  # read an interval after it was submitted
    assert await asyncio.wait_for(poller.next("old", after=None, wait_s=5, age_s=2.2), 0.3)
    await poller.aclose()

    unknown = Batched(PollPolicy(interval_s=0.6, batch=10, max_rps=100))
    fresh = JobPoller(unknown)
    assert await asyncio.wait_for(fresh.next("any", after=None, wait_s=5), 0.3) == RUNNING
    await fresh.aclose()
