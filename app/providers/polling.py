"""One poller per provider per process: the status of every job in flight here, read as cheaply
as the provider allows, handed to whoever waits on a job the moment it changes.

A task's pipeline does not sleep on a schedule of its own: it asks its provider's
:class:`JobPoller` for the job's next status (:meth:`JobPoller.next`) and is woken when the
poller sees a change. How the poller reads depends on the provider's :class:`PollPolicy`:

* **Batched** (``batch`` > 1, the provider has ``poll_many``): one request answers for up to
  ``batch`` jobs — Ark's task list filtered by ``filter.task_ids``, one status read per
  CogVideoX worker. A job missing from a batch answer is read alone (``poll``), so a job the
  provider no longer knows still ends the way ``poll`` says.
* **Per job under a shared rate** (``max_rps``): providers without a batch read (Jimeng's
  visual API) get one query at a time, at most ``max_rps`` a second for all jobs together.
* **Pushed** (``pushes``): ``poll`` is an in-process lookup (preview renders, the Jimeng relay's
  blocking calls) and the provider calls ``on_change(job_id)`` when a job changes.
* **Adaptive** (:data:`ADAPTIVE`, for a provider that declares nothing): each job on its own
  growing interval (0.5 s → 10 s), honouring ``poll_after_s`` hints, as a task used to poll.

*Nearest to done first*: a new job is read at once only when this provider's fastest recent
jobs (the 10th percentile of their durations) say it may be done; otherwise within an interval.
A job younger than those fastest jobs is read less often — half its distance to them, at most
``MAX_DEFER_S`` — so the reads go to the jobs that may be done. A job that may be done before
its next regular read is read when it may be (but not sooner than a quarter interval), and once
more a quarter interval later if that read just missed it: jobs started a fraction of a second
apart no longer wait a whole interval for the read after the one that just missed them.

Under a rate, a batch read waits (by less than the rate's gap) for the jobs that may be done by
then (``JobPoller._gather_until``), nudged or not. Due jobs are read nudged first (a provider
callback arrived: :meth:`JobPoller.nudge`), then longest overdue first, so under a rate cap
every job still gets its turn.

A read that fails is retried with back-off; the waiting task sees the error only when it is not
retryable or the job's reads kept failing (``MAX_READ_FAILURES``) — a hiccup of the provider's
status API must not fail a hundred paid jobs at once.

Hand-written: the scheduling (batching, a shared rate, priorities, wake-ups) is specific to
how video providers answer; the pieces are plain asyncio.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import logging
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from app.errors import AppError, ProviderError
from app.providers.base import JobStatus, VideoProvider

logger = logging.getLogger(__name__)

#: Consecutive failed reads of one job before its waiter sees the (retryable) error.
MAX_READ_FAILURES = 5
#: Recent job durations kept per provider (for "nearest to done first").
KEEP_DURATIONS = 50
ADAPTIVE_FIRST_S = 0.5
ADAPTIVE_MAX_S = 10.0
ADAPTIVE_GROWTH = 1.5
#: The longest a job is left unread because it is young (see ``JobPoller._next_read_in``).
MAX_DEFER_S = 5.0
#: After a failed batch read, jobs are read one by one for this long.
BATCH_PAUSE_S = 30.0
#: Reads in flight at once for per-job providers without a rate (in-process or fakes).
MAX_PARALLEL_READS = 32


@dataclass(frozen=True, kw_only=True)
class PollPolicy:
    """How a provider's job statuses are best read (see the module docstring)."""

    interval_s: float = 1.0
    batch: int = 1
    max_rps: float | None = None
    pushes: bool = False
    adaptive: bool = False


ADAPTIVE = PollPolicy(interval_s=ADAPTIVE_FIRST_S, adaptive=True)


class BatchPolling(Protocol):
    """A provider that reads many jobs' statuses in one request."""

    async def poll_many(self, provider_task_ids: Sequence[str]) -> Mapping[str, JobStatus]:
        """The statuses of those jobs the provider answered for (others may be missing)."""
        ...


def policy_of(provider: VideoProvider) -> PollPolicy:
    policy = getattr(provider, "poll_policy", None)
    return policy if isinstance(policy, PollPolicy) else ADAPTIVE


@dataclass(eq=False)
class _Watched:
    job_id: str
    since: float
    due: float
    interval: float
    last: JobStatus | None = None
    version: int = 0
    error: BaseException | None = None
    failures: int = 0
    reading: bool = False
    nudged: bool = False
    waiters: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class JobPoller:
    """The in-flight jobs of one provider in this process (one loop, started on demand)."""

    def __init__(
        self,
        provider: VideoProvider,
        policy: PollPolicy | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.provider = provider
        self.policy = policy or policy_of(provider)
        self._clock = clock
        self._jobs: dict[str, _Watched] = {}
        self._wake = asyncio.Event()
        self._loop_task: asyncio.Task[None] | None = None
        self._reads: set[asyncio.Task[None]] = set()
        self._parallel = asyncio.Semaphore(MAX_PARALLEL_READS)
        self._next_call = 0.0
        self._batch_paused_until = 0.0
        self._durations: collections.deque[float] = collections.deque(maxlen=KEEP_DURATIONS)
        #: Status requests sent to the provider (a batch read counts once).
        self.requests = 0
        if self.policy.pushes and hasattr(provider, "on_change"):
            provider.on_change = self.nudge

    # -- what the pipeline uses -----------------------------------------------------------

    async def next(
        self, job_id: str, *, after: JobStatus | None, wait_s: float, age_s: float = 0.0
    ) -> JobStatus | None:
        """The job's status once it differs from ``after`` (its first read when None); None
        when ``wait_s`` pass first. Raises what reading the job finally failed with."""
        watched = self._watch(job_id, age_s)
        watched.waiters += 1
        try:
            async with asyncio.timeout(max(0.0, wait_s)):
                while True:
                    if watched.error is not None:
                        error, watched.error = watched.error, None
                        raise error
                    last = watched.last
                    if last is not None and (after is None or _differs(last, after)):
                        return last
                    watched.changed.clear()
                    await watched.changed.wait()
        except TimeoutError:
            return None
        finally:
            watched.waiters -= 1

    def nudge(self, job_id: str) -> None:
        """Read this job now (e.g. its provider called back); unknown ids are ignored."""
        watched = self._jobs.get(job_id)
        if watched is not None:
            watched.nudged = True
            watched.due = min(watched.due, self._clock())
            self._wake.set()

    def forget(self, job_id: str) -> None:
        """Stop watching a job (its task ended, or is no longer worked on here)."""
        if self._jobs.pop(job_id, None) is not None:
            self._wake.set()

    @property
    def in_flight(self) -> int:
        return len(self._jobs)

    def typical_duration_s(self) -> float | None:
        """The median time from first watch to the end of this provider's recent jobs."""
        return statistics.median(self._durations) if self._durations else None

    async def aclose(self) -> None:
        tasks = [t for t in (self._loop_task, *self._reads) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop_task = None

    # -- the loop -------------------------------------------------------------------------

    def _watch(self, job_id: str, age_s: float) -> _Watched:
        watched = self._jobs.get(job_id)
        if watched is None:
            now = self._clock()
            age_s = max(0.0, age_s)
            watched = self._jobs[job_id] = _Watched(
                job_id=job_id,
                since=now - age_s,
                due=now + self._first_read_in(age_s),
                interval=self.policy.interval_s,
            )
            self._wake.set()
        if self._loop_task is None or self._loop_task.done():
            name = f"poll-{getattr(self.provider, 'name', 'provider')}"
            self._loop_task = asyncio.create_task(self._run(), name=name)
        return watched

    def _first_read_in(self, age_s: float) -> float:
        """A new job is read at once, unless this provider's fastest recent jobs say it cannot
        be done yet: then when it may be, or an interval from now if that comes first (a job
        the provider fails early is still seen within an interval). Read at once, a hundred
        jobs submitted together cost a read and a hundred wake-ups in the middle of their
        submits, to learn only that they are running."""
        soonest = self._soonest_done_s()
        if soonest is None or self.policy.adaptive or self.policy.pushes:
            return 0.0
        return min(self.policy.interval_s, max(0.0, soonest - age_s))

    def _soonest_done_s(self) -> float | None:
        """How long this provider's fastest recent jobs took (the 10th percentile)."""
        if len(self._durations) < 3:
            return None
        ordered = sorted(self._durations)
        return ordered[len(ordered) // 10]

    def _due(self, now: float) -> list[_Watched]:
        # Nudged first, then the longest overdue: every job gets its turn under a rate cap.
        due = [w for w in self._jobs.values() if not w.reading and w.due <= now]
        due.sort(key=lambda w: (not w.nudged, w.due))
        return due

    async def _run(self) -> None:
        policy = self.policy
        gap = 1.0 / policy.max_rps if policy.max_rps else 0.0
        while True:
            self._wake.clear()
            now = self._clock()
            due = self._due(now)
            if not due:
                upcoming = [w.due for w in self._jobs.values() if not w.reading]
                wait = (min(upcoming) - now) if upcoming else None
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wait):
                        await self._wake.wait()
                continue
            size = max(1, policy.batch) if self._batching() else 1
            if gap and len(self._reads) >= (1 if size > 1 else max(1, int(policy.max_rps or 1))):
                # Under a rate, reads go out one after another (a batch read in flight answers
                # for many jobs; what is nudged meanwhile goes into the next one), so a slow
                # provider is never sent a burst that piled up behind it.
                await self._wake.wait()
                continue
            if gap and now < self._next_call:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._next_call - now):
                        # A nudge may reorder what goes first; the rate still holds.
                        await self._wake.wait()
                continue
            gather_until = self._gather_until(due, now, gap, size) if size > 1 else now
            if gather_until > now:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(gather_until - now):
                        await self._wake.wait()  # a nudge may end the wait
                continue
            chunks = [due[i : i + size] for i in range(0, len(due), size)]
            if gap:
                chunks = chunks[:1]
                self._next_call = max(now, self._next_call) + gap
            if size > 1 and len(chunks[-1]) < size:
                # A batch read costs the same with more ids: take the jobs due next along,
                # which also brings every job onto one read cycle.
                taken = {id(w) for w in chunks[-1]}
                later = sorted(
                    (w for w in self._jobs.values() if not w.reading and id(w) not in taken),
                    key=lambda w: w.due,
                )
                chunks[-1] = chunks[-1] + later[: size - len(chunks[-1])]
            for chunk in chunks:
                for watched in chunk:
                    watched.reading = True
                    watched.nudged = False
                read = asyncio.create_task(self._read(chunk))
                self._reads.add(read)
                read.add_done_callback(self._read_done)
            await asyncio.sleep(0)

    def _gather_until(self, due: list[_Watched], now: float, gap: float, size: int) -> float:
        """When a batch read that is due should go out: later (by at most ``gap``, counted from
        when it could first go out) if more jobs that the batch has room for may be done by
        then. A full batch goes out at once.

        Under a rate, the read after this one could not go out sooner than ``gap`` later. Jobs
        submitted together are accepted a few tenths of a second apart. So one read at the
        latest of them catches them all. Reading the first at once would catch only some,
        and the rest would wait a further ``gap``. The same holds when the first was nudged
        (its callback came). A job nudged while the read waits is due at once and no longer
        waited for: when every job waited for called back, the read goes out.
        """
        room = size - len(due)
        if not gap or room <= 0:
            return now
        # From when it was due, or when the rate let it go if that was later.
        horizon = max(due[0].due, self._next_call) + gap
        later = (w.due for w in self._jobs.values() if not w.reading and now < w.due <= horizon)
        return max(heapq.nsmallest(room, later), default=now)

    def _read_done(self, read: asyncio.Task[None]) -> None:
        self._reads.discard(read)
        self._wake.set()

    async def _read(self, chunk: list[_Watched]) -> None:
        started = self._clock()  # the next read is due an interval after this one began
        try:
            async with self._parallel:
                statuses = await self._fetch([w.job_id for w in chunk])
        except asyncio.CancelledError:
            for watched in chunk:
                watched.reading = False
            raise
        except Exception as exc:
            batched = len(chunk) > 1 or self.policy.batch > 1
            if batched and self._batching():
                # The batch read is broken (e.g. the list API fails while single reads work):
                # read job by job under the same rate for a while; those reads tell each job
                # the real error, if there is one.
                logger.warning(
                    "%s: batch status read failed (%s); reading jobs one by one for %.0f s",
                    getattr(self.provider, "name", "provider"),
                    getattr(exc, "message", type(exc).__name__),
                    BATCH_PAUSE_S,
                )
                self._batch_paused_until = self._clock() + BATCH_PAUSE_S
                for watched in chunk:
                    watched.reading = False
                    watched.due = self._clock()
            else:
                for watched in chunk:
                    watched.reading = False
                    self._failed(watched, exc)
            self._wake.set()
            return
        now = self._clock()
        for watched in chunk:
            watched.reading = False
            status = statuses.get(watched.job_id)
            if status is not None:
                self._seen(watched, status, now, started)
            elif isinstance(statuses, _Partial):
                self._failed(watched, statuses.errors[watched.job_id])
        self._wake.set()

    def _batching(self) -> bool:
        return (
            self.policy.batch > 1
            and hasattr(self.provider, "poll_many")
            and self._clock() >= self._batch_paused_until
        )

    async def _fetch(self, job_ids: list[str]) -> Mapping[str, JobStatus]:
        provider: Any = self.provider
        if self._batching():
            self.requests += 1
            found = dict(await provider.poll_many(job_ids))
            missing = [job_id for job_id in job_ids if job_id not in found]
        else:
            found, missing = {}, job_ids
        errors: dict[str, BaseException] = {}
        for job_id in missing:  # not in the batch answer: ask about it alone
            self.requests += 1
            try:
                found[job_id] = await provider.poll(job_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if len(job_ids) == 1:
                    raise
                errors[job_id] = exc
        return _Partial(found, errors) if errors else found

    def _seen(self, watched: _Watched, status: JobStatus, now: float, started: float) -> None:
        watched.failures = 0
        previous, watched.last = watched.last, status
        if self.policy.adaptive:
            hint = status.poll_after_s
            watched.due = now + (hint if hint is not None else watched.interval)
            watched.interval = min(ADAPTIVE_MAX_S, watched.interval * ADAPTIVE_GROWTH)
        else:
            watched.due = max(now, started + self._next_read_in(watched, status, started))
        if status.state.is_terminal:
            watched.due = float("inf")  # nothing more to read
            if previous is None or not previous.state.is_terminal:
                self._durations.append(now - watched.since)
        if previous is None or _differs(status, previous):
            watched.version += 1
            watched.changed.set()

    def _next_read_in(self, watched: _Watched, status: JobStatus, started: float) -> float:
        """Nearest to done first: a job younger than this provider's fastest recent jobs is
        read less often (half its distance to them, at most ``MAX_DEFER_S``), which leaves
        the reads for the jobs that may be done."""
        interval = self.policy.interval_s
        soonest = self._soonest_done_s()
        if soonest is None or status.state.is_terminal:
            return interval
        left = soonest - (started - watched.since)
        if -interval / 4 < left < interval:  # it may be done before the next regular read
            return max(left, interval / 4)
        return max(interval, min(left / 2, MAX_DEFER_S))

    def _failed(self, watched: _Watched, exc: BaseException) -> None:
        watched.failures += 1
        retryable = isinstance(exc, AppError) and exc.retryable
        if not isinstance(exc, AppError):
            logger.exception(
                "reading %s job %s broke", getattr(self.provider, "name", "?"), watched.job_id
            )
            exc = ProviderError(
                f"{getattr(self.provider, 'name', 'provider')}: reading the job failed "
                f"({type(exc).__name__})",
                retryable=True,
            )
            retryable = True
        if not retryable or watched.failures >= MAX_READ_FAILURES:
            watched.error = exc
            watched.changed.set()
        backoff = min(30.0, self.policy.interval_s * 2**watched.failures)
        watched.due = self._clock() + backoff


class _Partial(dict[str, JobStatus]):
    """A batch answer in which some jobs' own reads failed."""

    def __init__(self, found: dict[str, JobStatus], errors: dict[str, BaseException]) -> None:
        super().__init__(found)
        self.errors = errors


def _differs(a: JobStatus, b: JobStatus) -> bool:
    return (a.state, a.provider_status, a.progress) != (b.state, b.provider_status, b.progress)


class Pollers:
    """The pollers of this process, one per provider, made on first use."""

    def __init__(self) -> None:
        self._pollers: dict[str, JobPoller] = {}

    def of(self, provider: VideoProvider) -> JobPoller:
        poller = self._pollers.get(provider.name)
        if poller is None or poller.provider is not provider:
            poller = self._pollers[provider.name] = JobPoller(provider)
        return poller

    def get(self, name: str) -> JobPoller | None:
        return self._pollers.get(name)

    def nudge(self, provider: str, job_id: str) -> None:
        poller = self._pollers.get(provider)
        if poller is not None:
            poller.nudge(job_id)

    async def aclose(self) -> None:
        for poller in self._pollers.values():
            await poller.aclose()
