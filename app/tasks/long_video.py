"""Long videos: one request, several shots, one video.

A request with ``shots``, or a ``duration_ms`` beyond the routed provider's longest clip,
becomes a *parent* task (``route["long_video"]``, decided at create by
:func:`long_video_spec`); each shot is a *child* task — an ordinary task with ``parent_id``
and ``shot_index`` that the pipeline runs like any other: paid once, leased, fenced, resumed
after a restart, on whichever replica holds it. The parent (:class:`LongVideos`)::

    plan     the storyboard, stored in the parent's params: the user's shots as written, or
             the LLM's storyboard (screened like any prompt), or a deterministic split;
             shot lengths fixed at create from the provider's clip lengths
    shots    children created idempotently: a shot's task id is derived from the parent's id,
             the shot's index and its attempt, and inserted only while the parent is live and
             leased to this process (TaskStore.create_child) — a restarted parent finds the
             shots it made and never makes one twice
               chain         one after another; each starts from the previous shot's last frame
                             (the provider's own when the shot has one, else taken with ffmpeg
                             from the stored clip), stored next to that clip and passed to the
                             provider by signed URL
               independent   up to [long] max_parallel_shots at once
    wait     woken when a shot ends in this process, else re-reading the store every second (a
             shot may run on another replica); progress is the shots' progress weighted by
             their lengths (0–85), then joining (85–95) and storing (95–100)
    join     each finished clip streamed from storage into a temporary folder, normalised and
             joined (app.media.join: cut or crossfade, subtitles burned in on request), stored;
             WebVTT subtitles (one cue per shot, timed to the joined video), a poster frame and
             the caption beside it

A failed shot gets a new attempt ([long] shot_retries, default one) when its error is
retryable and cannot have left a paid job behind: never after ``provider_outcome_unknown``,
a rejection, bad parameters or credentials. If it still fails, the parent fails with that
shot's reason and its other shots are cancelled: a half video is never a success. Cancelling
the parent cancels its shots and their provider jobs (:func:`cancel_shots`, also called by
``TaskService.cancel``).

Hand-written on top of the task machinery rather than a workflow library: the shots must be
the same durable, leased, fenced tasks as every other video, and the store already is the
source of truth every replica shares.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx

from app import media
from app.config import LongSettings, Settings
from app.errors import (
    AppError,
    ConflictError,
    ProviderError,
    UnavailableError,
    ValidationError,
    error_from_dict,
)
from app.media.ffmpeg import scratch_dir
from app.prompts.service import PromptService
from app.prompts.storyboard import given_storyboard, split_durations
from app.providers.base import Capabilities, LastFrameSource
from app.providers.download import open_url_stream
from app.providers.registry import ProviderRegistry
from app.storage.base import Storage, new_object_key
from app.tasks.extras import VideoExtras, sidecar_key
from app.tasks.models import Task, TaskStage, TaskStatus
from app.tasks.pipeline import LeaseLostError, cancel_job, video_filename
from app.tasks.signals import Signals
from app.tasks.store import TaskStore

logger = logging.getLogger(__name__)

Continuity = Literal["chain", "independent"]
Update = Callable[..., Awaitable[Task]]

#: How often a parent re-reads its shots from the store (a shot on another replica).
WAIT_S = 1.0
#: Parent progress: the shots make up to this much, joining up to JOINED_AT, storing the rest.
SHOTS_SHARE = 85
JOINED_AT = 95
FETCH_ATTEMPTS = 3
FRAME_SUFFIX = ".last.png"
#: Errors after which a shot is never tried again: the job may exist (and be paid), or a new
#: attempt would be refused the same way.
NEVER_RETRIED = frozenset(
    {
        "provider_outcome_unknown",
        "content_rejected",
        "bad_request",
        "validation_error",
        "invalid_url",
        "provider_auth",
    }
)
#: Body fields a shot's task takes from its parent (prompt, length and frame are its own).
INHERITED = ("aspect_ratio", "fps", "resolution", "negative_prompt", "seed", "options")


# --- at create ---------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class LongSpec:
    """A long video as decided at create: how its shots connect and how long each is."""

    continuity: Continuity
    durations: tuple[int, ...]
    warnings: tuple[str, ...] = ()

    @property
    def total_ms(self) -> int:
        return sum(self.durations)

    def route(self) -> dict[str, Any]:
        return {"continuity": self.continuity, "durations": list(self.durations)}


def routing_duration(body: Mapping[str, Any], *, explicit_duration: bool) -> int:
    """The length to route a request by: with ``shots`` and no ``duration_ms`` of the
    client's, the sum of the shots (5 s for a shot without a length)."""
    shots = body.get("shots")
    if not shots or explicit_duration:
        return int(body.get("duration_ms", 5000))
    return sum(int(shot.get("duration_ms") or 5000) for shot in shots)


def long_video_spec(
    body: Mapping[str, Any],
    *,
    provider: str,
    caps: Capabilities,
    settings: LongSettings,
    explicit_duration: bool,
) -> LongSpec | None:
    """A :class:`LongSpec` when ``body`` asks for a long video of ``provider``, else None.

    ``ValidationError`` (422, naming the field) for what cannot be made: a total over
    ``[long] max_duration_ms``, more shots than the storyboard allows, ``continuity: chain``
    on a provider without image input, long-video options on a single clip.
    """
    shots = body.get("shots")
    duration = int(body.get("duration_ms", 5000))
    longest = caps.clips.longest_ms
    if not shots and duration <= longest:
        if body.get("burn_subtitles"):
            raise ValidationError(
                "burn_subtitles: subtitles are burned into long videos only (shots, or a "
                f"duration_ms over {longest} ms, {provider}'s longest clip)"
            )
        return None
    if body.get("last_frame_url"):
        raise ValidationError(
            "last_frame_url: not supported for long videos; give a shot its own image_url"
        )
    continuity: Continuity = body.get("continuity") or (
        "chain" if caps.image_input else "independent"
    )
    if continuity == "chain" and not caps.image_input:
        raise ValidationError(
            f"continuity: chain starts each shot from the previous shot's last frame, and "
            f"provider {provider!r} takes no first frame; use independent"
        )
    warnings: list[str] = []
    if shots:
        board = given_storyboard(
            shots, caps.clips, total_ms=duration if explicit_duration else None
        )
        durations = [shot.duration_ms for shot in board.shots]
        for index, (shot, fitted) in enumerate(zip(shots, durations, strict=True)):
            asked = shot.get("duration_ms")
            if asked and int(asked) != fitted:
                warnings.append(
                    f"shots[{index}].duration_ms: {asked} ms made as {fitted} ms "
                    f"({provider}'s nearest clip length)"
                )
        field = "shots"
    else:
        try:
            durations = split_durations(duration, caps.clips)
        except ValidationError as exc:
            raise ValidationError(f"duration_ms: {exc.message}") from exc
        field = "duration_ms"
    total = sum(durations)
    if total > settings.max_duration_ms:
        raise ValidationError(
            f"{field}: the video would be {total} ms long; at most {settings.max_duration_ms} ms "
            "([long] max_duration_ms)"
        )
    return LongSpec(continuity=continuity, durations=tuple(durations), warnings=tuple(warnings))


# --- shots -------------------------------------------------------------------------------


def shot_task_id(parent_id: str, index: int, attempt: int = 0) -> str:
    """The task id of a shot's ``attempt``: derived, so a restarted parent finds it again."""
    task_id = f"{parent_id}-{index:02d}" + (f"-{attempt}" if attempt else "")
    if len(task_id) <= 40:
        return task_id
    digest = hashlib.sha256(f"{parent_id}:{index}:{attempt}".encode()).hexdigest()
    return f"vt_{digest[:32]}"


def latest_attempts(children: Sequence[Task]) -> dict[int, tuple[int, Task]]:
    """Shot index → (attempt number, the latest attempt's task); ``children`` oldest first."""
    latest: dict[int, tuple[int, Task]] = {}
    for child in children:
        if child.shot_index is None:
            continue
        attempt = latest[child.shot_index][0] + 1 if child.shot_index in latest else 0
        latest[child.shot_index] = (attempt, child)
    return latest


def shot_error(index: int, count: int, child: Task) -> AppError:
    """The parent's error for a shot that failed for good: the shot's own, saying which."""
    if child.status is TaskStatus.CANCELLED:
        return ConflictError(f"shot {index + 1} of {count} was cancelled (task {child.id})")
    data = child.error or {"code": "provider_error", "message": "failed", "retryable": False}
    message = f"shot {index + 1} of {count} failed: {data.get('message', '')}"
    return error_from_dict({**data, "message": message})


class ShotRunner(Protocol):
    """What a parent needs of the runner: start a shot's task here, stop one here."""

    def enqueue(self, task: Task, *, resumed: bool = False) -> None: ...

    async def cancel(self, task_id: str) -> None: ...


async def cancel_shots(
    store: TaskStore,
    providers: ProviderRegistry,
    runner: ShotRunner,
    parent_id: str,
    *,
    changes: Signals[Task] | None = None,
) -> list[Task]:
    """Cancel a long video's unfinished shots, here and at their providers; return them.

    A shot whose submit is under way (here or on another replica) cancels its own job once
    the job id is recorded (``Pipeline._submit``)."""
    cancelled = []
    for child in await store.children(parent_id):
        if child.status.is_terminal:
            continue
        updated = await store.update(child.id, status=TaskStatus.CANCELLED)
        if updated is None:  # it ended meanwhile
            continue
        if changes is not None:
            changes.fire(child.id, updated)
        await runner.cancel(child.id)
        if updated.provider and updated.provider_task_id and updated.provider in providers:
            await cancel_job(store, providers.get(updated.provider), updated)
        cancelled.append(updated)
    if cancelled:
        logger.info("long video %s: cancelled %d shot(s)", parent_id, len(cancelled))
    return cancelled


async def present_shots(
    store: TaskStore, storage: Storage, task: Task, *, expires_s: int
) -> list[dict[str, Any]] | None:
    """A long video's ``shots`` as the API shows them (None for a single-clip video)."""
    if not task.route.get("long_video"):
        return None
    plan = (task.params.get("storyboard") or {}).get("shots") or []
    latest = latest_attempts(await store.children(task.cached_from or task.id))
    shots = []
    for index, shot in enumerate(plan):
        child = latest[index][1] if index in latest else None
        video_url = None
        if child is not None and child.status is TaskStatus.SUCCEEDED and child.video_key:
            video_url = await storage.url(child.video_key, expires_s=expires_s)
        shots.append(
            {
                "index": index,
                "task_id": child.id if child else None,
                "prompt": shot["prompt"],
                "duration_ms": shot["duration_ms"],
                "status": child.status.value if child else TaskStatus.QUEUED.value,
                "progress": child.progress if child else 0,
                "video_url": video_url,
                "error": child.error if child else None,
            }
        )
    return shots


async def wait_any(signals: Signals[Task], keys: Collection[str], seconds: float) -> None:
    """Wait until one of ``keys`` is fired or ``seconds`` have passed."""
    if not keys:
        await asyncio.sleep(seconds)
        return
    waiters = [asyncio.ensure_future(signals.wait(key, seconds)) for key in keys]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


# --- the parent --------------------------------------------------------------------------


class LongVideos:
    """Runs parent tasks (the pipeline hands them over: ``Pipeline.long_videos``)."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: TaskStore,
        providers: ProviderRegistry,
        storage: Storage,
        prompts: PromptService,
        extras: VideoExtras,
        downloads: httpx.AsyncClient,
        changes: Signals[Task],
        runner: ShotRunner,
        instance_id: str,
        lease_s: float,
    ) -> None:
        self.settings = settings
        self.store = store
        self.providers = providers
        self.storage = storage
        self.prompts = prompts
        self.extras = extras
        self.downloads = downloads  # stored shots are fetched like any result URL
        self.changes = changes
        self.runner = runner
        self.me = instance_id
        self.lease_s = lease_s

    def handles(self, task: Task) -> bool:
        return bool(task.route.get("long_video"))

    async def run(self, parent: Task, update: Update) -> None:
        """Take a parent from its plan to one stored video (``update``: the pipeline's fenced
        write). Errors end it through the pipeline, which records them."""
        try:
            async with scratch_dir(self.settings.data_dir / "tmp", ".long-") as work:
                await _ParentRun(self, parent, update, work).run()
        except LeaseLostError:
            raise  # another process carries on, shots included
        except Exception:
            # Cancelled, or failing: the remaining shots would be paid for nothing.
            try:
                await self.cancel_shots(parent.id)
            except Exception:
                logger.exception("long video %s: cancelling its shots failed", parent.id)
            raise

    async def cancel_shots(self, parent_id: str) -> list[Task]:
        return await cancel_shots(
            self.store, self.providers, self.runner, parent_id, changes=self.changes
        )


@dataclass(frozen=True, kw_only=True)
class _Shot:
    prompt: str
    duration_ms: int
    subtitle: str


class _ParentRun:
    """One run of one parent (a restarted parent starts a new one from what is stored)."""

    def __init__(self, owner: LongVideos, parent: Task, update: Update, work: Path) -> None:
        self.o = owner
        self.parent = parent
        self.update = update
        self.work = work
        self.body = parent.request
        self.spec: dict[str, Any] = parent.route["long_video"]
        self.chain: list[str] = list(parent.route.get("chain") or [parent.provider or ""])
        self.provider = self.chain[0]
        self.shots: list[_Shot] = []
        self.clips: dict[int, Path] = {}

    @property
    def chained(self) -> bool:
        return self.spec.get("continuity") == "chain"

    async def run(self) -> None:
        await self._plan()
        done = await self._make_shots()
        await self._join(done)

    # -- the plan ----------------------------------------------------------------------

    async def _plan(self) -> None:
        stored = self.parent.params.get("storyboard")
        if stored is None:
            stored = await self._write_plan()
        self.shots = [
            _Shot(prompt=s["prompt"], duration_ms=s["duration_ms"], subtitle=s["subtitle"])
            for s in stored["shots"]
        ]

    async def _write_plan(self) -> dict[str, Any]:
        parent, body = self.parent, self.body
        self.parent = await self.update(
            parent.id, status=TaskStatus.RUNNING, stage=TaskStage.EXPANDING
        )
        durations = [int(d) for d in self.spec["durations"]]
        caps = self.o.providers.get(self.provider).capabilities
        if body.get("shots"):
            board = given_storyboard(body["shots"], caps.clips, total_ms=sum(durations))
            planned_by, reason = board.planned_by, None
            shots = [
                {"prompt": s.prompt, "duration_ms": d, "subtitle": s.subtitle}
                for s, d in zip(board.shots, durations, strict=True)
            ]
        else:
            wants = body.get("expand_prompt")
            board = await self.o.prompts.storyboard(
                parent.prompt,
                sum(durations),
                caps.clips,
                style=body.get("style"),
                platform=body.get("platform"),
                max_chars=caps.max_prompt_chars,
                shots=len(durations),
                use_llm=True if wants is None else bool(wants),
            )
            planned_by, reason = board.planned_by, board.fallback_reason
            if reason:
                logger.warning(
                    "long video %s: storyboard by split: %s",
                    parent.id,
                    reason,
                    extra={"task_id": parent.id},
                )
            if planned_by == "llm":  # the LLM's words reach a provider: screened like any
                for shot in board.shots:
                    await self.o.prompts.screen(shot.prompt, what=f"shot {shot.index + 1} prompt")
            shots = [
                {"prompt": s.prompt, "duration_ms": d, "subtitle": s.subtitle}
                for s, d in zip(board.shots, durations, strict=True)
            ]
        plan = {
            "planned_by": planned_by,
            "continuity": self.spec.get("continuity"),
            "transition": body.get("transition") or "cut",
            "shots": shots,
        }
        if reason:
            plan["fallback_reason"] = reason
        expanded_by = {"llm": "llm", "split": "template"}.get(planned_by, "none")
        self.parent = await self.update(
            parent.id,
            stage=TaskStage.GENERATING,
            params={**self.parent.params, "storyboard": plan},
            expanded_by=expanded_by,
        )
        logger.info(
            "long video %s: %d shots planned (%s, %s)",
            parent.id,
            len(shots),
            planned_by,
            plan["continuity"],
            extra={"task_id": parent.id},
        )
        return plan

    # -- the shots ---------------------------------------------------------------------

    async def _make_shots(self) -> list[Task]:
        """Start, follow and retry the shots until every one has a clip here."""
        count = len(self.shots)
        while True:
            latest = latest_attempts(await self.o.store.children(self.parent.id))
            started = False
            for index, (attempt, child) in sorted(latest.items()):
                if child.status is TaskStatus.FAILED and self._retry(child, attempt):
                    logger.warning(
                        "long video %s: shot %d failed (%s); trying it again",
                        self.parent.id,
                        index + 1,
                        (child.error or {}).get("message"),
                        extra={"task_id": self.parent.id},
                    )
                    await self._start(index, attempt + 1)
                    started = True
                elif child.status in (TaskStatus.FAILED, TaskStatus.CANCELLED):
                    raise shot_error(index, count, child)
                elif child.status is TaskStatus.SUCCEEDED and index not in self.clips:
                    self.clips[index] = await self._fetch_clip(index, child)
            if started:
                continue
            if len(self.clips) == count:
                return [latest[index][1] for index in range(count)]
            if await self._start_due(latest):
                continue
            await self._report(latest)
            live = [child.id for _, child in latest.values() if not child.status.is_terminal]
            await wait_any(self.o.changes, live, WAIT_S)

    def _retry(self, child: Task, attempt: int) -> bool:
        error = child.error or {}
        return (
            attempt < self.o.settings.long.shot_retries
            and bool(error.get("retryable"))
            and error.get("code") not in NEVER_RETRIED
        )

    async def _start_due(self, latest: dict[int, tuple[int, Task]]) -> bool:
        """Start the shots whose turn it is; whether any was started."""
        missing = [index for index in range(len(self.shots)) if index not in latest]
        if not missing:
            return False
        if self.chained:
            index = missing[0]
            if index > 0 and index - 1 not in self.clips:
                return False  # the previous shot's last frame is not there yet
            await self._start(index, 0)
            return True
        live = sum(1 for _, child in latest.values() if not child.status.is_terminal)
        room = self.o.settings.long.max_parallel_shots - live
        for index in missing[: max(0, room)]:
            await self._start(index, 0)
        return room > 0

    async def _start(self, index: int, attempt: int) -> None:
        shot = self.shots[index]
        parent = self.parent
        body: dict[str, Any] = {k: self.body[k] for k in INHERITED if self.body.get(k) is not None}
        body |= {
            "prompt": shot.prompt,
            "duration_ms": shot.duration_ms,
            "provider": self.provider,
            "expand_prompt": False,  # the storyboard (or the user) wrote this shot's prompt
        }
        image = await self._first_frame(index)
        if image is not None:
            body["image_url"] = image
        provider = self.o.providers.get(self.provider)
        if self.chained and index < len(self.shots) - 1 and isinstance(provider, LastFrameSource):
            body["return_last_frame"] = True  # the next shot starts from the provider's own
        child = Task(
            id=shot_task_id(parent.id, index, attempt),
            owner=parent.owner,
            prompt=shot.prompt,
            request=body,
            route={
                "chain": self.chain,
                "reason": f"shot {index + 1} of {len(self.shots)} of {parent.id}",
                "warnings": [],
            },
            provider=self.provider,
            parent_id=parent.id,
            shot_index=index,
        )
        made = await self.o.store.create_child(child, fence=self.o.me, lease_s=self.o.lease_s)
        if made is None:
            # Ended (cancelled) or no longer ours: the fenced write says which, and stops us.
            self.parent = await self.update(parent.id)
            return
        stored, created = made
        if created:
            logger.info(
                "long video %s: shot %d started (%s)",
                parent.id,
                index + 1,
                stored.id,
                extra={"task_id": parent.id},
            )
            self.o.runner.enqueue(stored)

    def _own_image(self, index: int) -> str | None:
        shots = self.body.get("shots") or []
        image = shots[index].get("image_url") if index < len(shots) else None
        if image is None and index == 0:
            image = self.body.get("image_url")
        return str(image) if image else None

    async def _first_frame(self, index: int) -> str | None:
        """The shot's own first frame, else (chained) the previous shot's last frame."""
        own = self._own_image(index)
        if own is not None or not self.chained or index == 0:
            return own
        previous = latest_attempts(await self.o.store.children(self.parent.id))[index - 1][1]
        expires_s = self.o.settings.storage.url_expires_s
        # The provider's own last frame where the shot kept one; else ffmpeg's.
        if previous.last_frame_key:
            return await self.o.storage.url(previous.last_frame_key, expires_s=expires_s)
        assert previous.video_key is not None
        image = await media.last_frame(self.clips[index - 1], self.work / f"last{index - 1}.png")
        key = sidecar_key(previous.video_key, FRAME_SUFFIX)
        stored = await media.store_file(self.o.storage, key, image)
        return await self.o.storage.url(stored.key, expires_s=expires_s)

    async def _fetch_clip(self, index: int, child: Task) -> Path:
        """A finished shot's clip on this host's disk: where local storage keeps it (read in
        place), else streamed from storage into the work folder."""
        assert child.video_key is not None
        local = self.o.storage.local_path(child.video_key)
        if local is not None:
            return local
        dest = self.work / f"shot{index:02d}.mp4"
        url = await self.o.storage.url(child.video_key, expires_s=3600)
        for attempt in range(1, FETCH_ATTEMPTS + 1):
            try:
                async with open_url_stream(self.o.downloads, url, provider="storage") as stream:
                    fh = await asyncio.to_thread(dest.open, "wb")
                    try:
                        async for chunk in stream:
                            await asyncio.to_thread(fh.write, chunk)
                    finally:
                        await asyncio.to_thread(fh.close)
                return dest
            except ProviderError as exc:
                if not exc.retryable or attempt == FETCH_ATTEMPTS:
                    raise UnavailableError(
                        f"shot {index + 1}: its clip could not be read back from storage "
                        f"({exc.message})"
                    ) from exc
                await asyncio.sleep(0.5 * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _report(self, latest: dict[int, tuple[int, Task]]) -> None:
        """The parent's progress: its shots', weighted by their lengths."""
        total = sum(shot.duration_ms for shot in self.shots) or 1
        done = 0.0
        for index, shot in enumerate(self.shots):
            if index in self.clips:
                share = 100
            elif index in latest:
                share = latest[index][1].progress
            else:
                share = 0
            done += shot.duration_ms * share
        progress = int(SHOTS_SHARE * done / total / 100)
        if progress > self.parent.progress:
            self.parent = await self.update(self.parent.id, progress=progress)

    # -- the video ---------------------------------------------------------------------

    async def _join(self, shots: list[Task]) -> None:
        parent, body = self.parent, self.body
        self.parent = await self.update(
            parent.id, stage=TaskStage.DOWNLOADING, progress=max(parent.progress, SHOTS_SHARE)
        )
        texts = [shot.subtitle for shot in self.shots]
        joined = await media.join(
            [self.clips[index] for index in range(len(self.shots))],
            self.work / "joined.mp4",
            transition=body.get("transition") or "cut",
            captions=texts if body.get("burn_subtitles") else None,
        )
        self.parent = await self.update(parent.id, stage=TaskStage.UPLOADING, progress=JOINED_AT)
        stored = await media.store_file(self.o.storage, new_object_key(), joined.path)
        extras: dict[str, Any] = {}
        try:
            if body.get("subtitles", True):
                cues = media.shot_cues(joined, texts)
                extras["subtitles_key"] = await self.o.extras.store_subtitles(stored.key, cues)
            thumbnail, caption = await asyncio.gather(
                self.o.extras.store_thumbnail(parent.id, joined.path, stored.key),
                self.o.extras.caption(self.parent),
            )
            extras |= {"thumbnail_key": thumbnail, "caption": caption}
            params = {
                **self.parent.params,
                "duration_ms": round(joined.duration_s * 1000),
                "width": joined.width,
                "height": joined.height,
                "fps": float(joined.fps),
                "shots": len(shots),
                "transition": joined.transition,
            }
            await self.update(
                parent.id,
                status=TaskStatus.SUCCEEDED,
                progress=100,
                params=params,
                video_key=stored.key,
                video_size=stored.size,
                video_sha256=stored.sha256,
                filename=video_filename(self.parent),
                **{name: value for name, value in extras.items() if value is not None},
            )
        except Exception:  # never published: the stored copies are nobody's
            with contextlib.suppress(Exception):
                await self.o.storage.delete(stored.key)
            await self.o.extras.discard(extras)
            raise
        logger.info(
            "long video %s: %d shots joined (%.1f s)",
            parent.id,
            len(shots),
            joined.duration_s,
            extra={"task_id": parent.id},
        )
