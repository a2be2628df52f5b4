"""The provider seam: one small interface every video backend implements.

A task's life at a provider::

    plan(request)  -> the effective parameters (validated; stored in the task's ``params``)
    submit(request) -> provider task id        (stored at once: a restart never submits twice)
    find_job(request, since=…) -> id | None    (a create whose answer was lost: find the job)
    resume(id, request)                        (after a restart, before polling again)
    poll(id)       -> JobStatus               (repeated, adaptive interval, until terminal)
    open_video(id, status) -> a byte stream    (relayed into the gateway's storage)
    cancel(id)                                 (best effort)

Adapters translate every vendor failure into ``app.errors`` kinds at their boundary:
``ProviderError(retryable=True)`` for 429/5xx/timeouts, ``ContentRejectedError`` /
``ValidationError`` for moderation and bad parameters, ``ProviderAuthError`` for credentials.

Submits are paid: an adapter re-sends a create only when the provider surely did not take it
(``app.providers.http.send(creates=True)``) and raises ``ProviderOutcomeUnknownError`` when the
answer was lost. The pipeline then never re-sends and never falls back; it asks ``find_job``
for up to ``capabilities.find_window_s`` (0: the provider has no way to find it, the task
fails). A provider whose submit is idempotent on our task id (``idempotent_submit``) is simply
asked again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from app.status import Status

if TYPE_CHECKING:
    from app.errors import AppError

ASPECT_RATIOS: tuple[str, ...] = ("16:9", "9:16", "1:1", "4:3", "3:4", "21:9")


@dataclass(frozen=True, kw_only=True)
class GenerationRequest:
    """What the pipeline asks a provider for; vendor-neutral."""

    task_id: str
    prompt: str
    aspect_ratio: str = "16:9"
    duration_ms: int = 5000
    fps: int = 24
    negative_prompt: str | None = None
    seed: int | None = None
    resolution: str | None = None
    image_url: str | None = None
    last_frame_url: str | None = None
    # Images the video should draw on (subjects, style) without fixing any frame.
    reference_images: tuple[str, ...] = ()
    # None: the provider's (model's) default.
    generate_audio: bool | None = None
    # Keep the video's last frame as an image (the task's ``last_frame_url``).
    return_last_frame: bool = False
    # A cheap low-resolution draft, and the provider's id of a draft to render in full.
    draft: bool = False
    draft_job_id: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


#: A provider job's state: the same enum as a task's status (``app.status``), so a job's end
#: is its task's end without a mapping.
JobState = Status


@dataclass(frozen=True, kw_only=True)
class JobStatus:
    """One poll's answer. ``provider_status`` is the vendor's own word, kept for operators."""

    state: JobState
    provider_status: str
    progress: int | None = None
    video_url: str | None = None
    # The video's last frame as an image, when the job was asked for it.
    last_frame_url: str | None = None
    error: AppError | None = None
    poll_after_s: float | None = None


class VideoStream(Protocol):
    """An async byte stream with its size when the source announced one."""

    size: int | None

    def __aiter__(self) -> AsyncIterator[bytes]: ...


@dataclass(frozen=True, kw_only=True)
class ClipLimits:
    """Clip lengths a provider makes in one job: every ``step_ms`` from ``min_ms`` to
    ``max_ms``, or only the lengths in ``allowed_ms`` when given."""

    min_ms: int
    max_ms: int
    step_ms: int = 1000
    allowed_ms: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if not (0 < self.min_ms <= self.max_ms) or self.step_ms <= 0:
            raise ValueError("ClipLimits needs 0 < min_ms <= max_ms and step_ms > 0")

    @classmethod
    def only(cls, lengths_ms: Iterable[int]) -> ClipLimits:
        """Limits allowing exactly ``lengths_ms`` (e.g. Jimeng's 5 s and 10 s)."""
        allowed = tuple(sorted(set(lengths_ms)))
        return cls(min_ms=allowed[0], max_ms=allowed[-1], allowed_ms=allowed)

    def choices(self) -> list[int]:
        if self.allowed_ms:
            return sorted(set(self.allowed_ms))
        return list(range(self.min_ms, self.max_ms + 1, self.step_ms))

    @property
    def longest_ms(self) -> int:
        return self.choices()[-1]

    def fit(self, duration_ms: int) -> int:
        """The clip length nearest to ``duration_ms`` (halves up)."""
        return min(self.choices(), key=lambda c: (abs(c - duration_ms), -c))


@dataclass(frozen=True, kw_only=True)
class Capabilities:
    image_input: bool = False
    last_frame: bool = False
    # How many reference images a request may carry (0: none).
    reference_images: int = 0
    negative_prompt: bool = False
    max_prompt_chars: int = 2000
    # Jobs at once (None: no cap here). A shared limit is the account's: counted in the
    # database across replicas; otherwise it is this process's own.
    max_concurrency: int | None = 4
    shared_limit: bool = False
    aspect_ratios: frozenset[str] = frozenset(ASPECT_RATIOS)
    # Submitting the same task id twice makes one job (re-sending after a lost answer is safe).
    idempotent_submit: bool = False
    # How long ``find_job`` may look for a job whose create answer was lost (0: it cannot).
    find_window_s: float = 0.0
    #: The clip lengths one job can make (a long video is planned as shots of these).
    clips: ClipLimits = ClipLimits(min_ms=1000, max_ms=10000)


class VideoProvider(Protocol):
    """A video generation backend. Implementations live in ``app/providers/<vendor>.py``."""

    name: str
    capabilities: Capabilities

    def plan(self, request: GenerationRequest) -> dict[str, Any]:
        """Effective parameters for ``request``; raise ``ValidationError`` if unsupported."""
        ...

    async def submit(self, request: GenerationRequest) -> str:
        """Start a job and return the provider's task id. Must not block until done."""
        ...

    async def poll(self, provider_task_id: str) -> JobStatus:
        """Current state of a job; unknown vendor words map to RUNNING, never to an error."""
        ...

    def open_video(
        self, provider_task_id: str, status: JobStatus
    ) -> AbstractAsyncContextManager[VideoStream]:
        """Open the finished video as a stream (bounded memory; never the whole body)."""
        ...

    async def find_job(
        self,
        request: GenerationRequest,
        *,
        since: dt.datetime,
        is_known: Callable[[str], Awaitable[bool]],
    ) -> str | None:
        """The job a create for ``request`` (sent at ``since``, answer lost) made, when it can be
        told apart from every other job beyond doubt; ``is_known(id)`` says whether another task
        already holds a job. None when there is no such job (yet) or the match is ambiguous."""
        ...

    async def resume(self, provider_task_id: str, request: GenerationRequest) -> None:
        """Called once after a gateway restart, before polling a job submitted earlier.

        Remote providers usually need nothing here (the job lives at the provider); a provider
        whose job state lived in the old process re-attaches or re-runs it. Never re-submit a
        paid job from here.
        """
        ...

    async def cancel(self, provider_task_id: str) -> None:
        """Cancel at the provider, best effort."""
        ...

    async def check(self) -> None:
        """Raise ``UnavailableError`` / ``ProviderAuthError`` if the provider is unusable."""
        ...

    async def aclose(self) -> None: ...


@runtime_checkable
class LastFrameSource(Protocol):
    """A provider that can hand back a finished job's last frame (``JobStatus.last_frame_url``)
    as an image stream; the pipeline stores it beside the video."""

    def open_last_frame(
        self, provider_task_id: str, status: JobStatus
    ) -> AbstractAsyncContextManager[VideoStream]: ...
