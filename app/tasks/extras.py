"""What every finished video gets besides itself:

* a poster frame (``thumbnail_key``): a JPEG next to the video in storage
  (``videos/…/<hex>.mp4`` → ``videos/…/<hex>.jpg``), picked by :func:`app.media.thumbnail`.
  It is made *after* the video is published (:meth:`VideoExtras.poster_later`), from the stored
  copy, a few at a time per process: an ffmpeg run per video must never delay the video URL
  or crowd out the event loop when a hundred tasks finish together. Posters also yield to
  publishing: one starts only once no video was published here for ``POSTER_QUIET_S`` (or
  after ``POSTER_MAX_DELAY_S``), because starting an ffmpeg costs the gateway's own process
  several milliseconds that the other tasks ending at that moment are waiting for. It appears
  on the task a moment later (``TaskStore.record_thumbnail``). A long video's poster is made
  from its joined file before it is published (:mod:`app.tasks.long_video`); shot tasks get
  none.
* with ``caption: true``, a caption and hashtags for the request's ``platform`` preset in the
  prompt's language (``PromptService.caption``: the LLM's, else the template's);
* with ``subtitles: true`` on a single-clip video, a WebVTT file with one cue (the prompt)
  for the whole video. A long video's subtitles (one cue per shot, timed to the joined video)
  are written by :mod:`app.tasks.long_video` with :meth:`VideoExtras.store_subtitles`.

The video is what was paid for: none of these may fail its task. Each failure is logged and
the video is published without that piece.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from app import media
from app.media.ffmpeg import low_priority, scratch_dir
from app.prompts.service import PromptService
from app.prompts.storyboard import SUBTITLE_CHARS
from app.prompts.text import trim_prompt
from app.storage.base import Storage
from app.tasks.models import Task, generated_duration_ms
from app.tasks.store import TaskStore

logger = logging.getLogger(__name__)

THUMBNAIL_SUFFIX = ".jpg"
SUBTITLES_SUFFIX = ".vtt"
THUMBNAIL_TIMEOUT_S = 60.0
#: Posters made at once per process (each is one or two short ffmpeg runs).
POSTERS_AT_ONCE = 1
#: A poster waits until no video was published in this process for this long ...
POSTER_QUIET_S = 0.3
#: ... but never longer than this.
POSTER_MAX_DELAY_S = 5.0


def sidecar_key(video_key: str, suffix: str) -> str:
    """The key of a file stored next to a video: its key with ``suffix`` for ``.mp4``."""
    head, _, name = video_key.rpartition("/")
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return f"{head}/{stem}{suffix}" if head else f"{stem}{suffix}"


class VideoExtras:
    def __init__(
        self,
        *,
        store: TaskStore,
        storage: Storage,
        prompts: PromptService,
        work_dir: Path,
        posters_at_once: int = POSTERS_AT_ONCE,
    ) -> None:
        self._store = store
        self._storage = storage
        self._prompts = prompts
        self.work_dir = work_dir
        self._posters = asyncio.Semaphore(posters_at_once)
        self._pending: set[asyncio.Task[None]] = set()
        self._last_published = 0.0

    async def for_video(self, task: Task, video_key: str) -> dict[str, Any]:
        """The task fields a single-clip video stored under ``video_key`` gets before it is
        published: ``caption`` and ``subtitles_key``, when asked for."""
        extras: dict[str, Any] = {"caption": await self.caption(task)}
        if task.request.get("subtitles"):
            extras["subtitles_key"] = await self._single_cue(task, video_key)
        return {name: value for name, value in extras.items() if value is not None}

    def poster_later(self, task: Task, video_key: str) -> None:
        """Make the published video's poster in the background and record it on the task."""
        if task.parent_id is not None:  # a long video's shot: the long video has the poster
            return
        self._last_published = asyncio.get_running_loop().time()
        job = asyncio.create_task(self._poster(task.id, video_key), name=f"poster-{task.id}")
        self._pending.add(job)
        job.add_done_callback(self._pending.discard)

    async def _poster(self, task_id: str, video_key: str) -> None:
        async with self._posters:
            await self._publishing_quiet()
            with low_priority():
                await self._make_poster(task_id, video_key)

    async def _publishing_quiet(self) -> None:
        """Until no video was published for ``POSTER_QUIET_S`` (``POSTER_MAX_DELAY_S`` at most)."""
        loop = asyncio.get_running_loop()
        latest = loop.time() + POSTER_MAX_DELAY_S
        while (wait := self._last_published + POSTER_QUIET_S - loop.time()) > 0:
            if loop.time() >= latest:
                return
            await asyncio.sleep(min(wait, latest - loop.time()))

    async def _make_poster(self, task_id: str, video_key: str) -> None:
        # A file on this host is read as it is, not through the gateway's own /files.
        source: Path | str | None = self._storage.local_path(video_key)
        if source is None:
            source = await self._storage.url(video_key, expires_s=600)
        key = await self.store_thumbnail(task_id, source, video_key)
        if key is None:
            return
        try:
            recorded = await self._store.record_thumbnail(task_id, video_key, key)
        except Exception as exc:
            logger.warning("task %s: poster not recorded: %s", task_id, _reason(exc))
            recorded = False
        if not recorded:  # the task was deleted or changed meanwhile
            with contextlib.suppress(Exception):
                await self._storage.delete(key)

    async def store_thumbnail(self, task_id: str, source: Path | str, video_key: str) -> str | None:
        """Make a poster of ``source`` and store it next to ``video_key``; None on failure."""
        key = sidecar_key(video_key, THUMBNAIL_SUFFIX)
        try:
            async with scratch_dir(self.work_dir, ".thumb-") as work:
                image = await media.thumbnail(
                    source, work / f"poster{THUMBNAIL_SUFFIX}", timeout_s=THUMBNAIL_TIMEOUT_S
                )
                stored = await media.store_file(self._storage, key, image)
        except Exception as exc:  # a video without a poster is still the video
            logger.warning(
                "task %s: no thumbnail: %s", task_id, _reason(exc), extra={"task_id": task_id}
            )
            return None
        return stored.key

    async def caption(self, task: Task) -> dict[str, Any] | None:
        """``caption: true``: the caption, its hashtags and who wrote them."""
        body = task.request
        if not body.get("caption"):
            return None
        try:
            written = await self._prompts.caption(
                task.prompt, platform=body.get("platform"), style=body.get("style")
            )
        except Exception as exc:
            logger.warning(
                "task %s: no caption: %s", task.id, _reason(exc), extra={"task_id": task.id}
            )
            return None
        if written.fallback_reason:
            logger.warning(
                "task %s: caption from the template: %s",
                task.id,
                written.fallback_reason,
                extra={"task_id": task.id},
            )
        return {
            "text": written.text,
            "hashtags": list(written.hashtags),
            "written_by": written.written_by,
        }

    async def store_subtitles(self, video_key: str, cues: Sequence[media.Cue]) -> str:
        """Store ``cues`` as WebVTT next to the video; return the key."""
        key = sidecar_key(video_key, SUBTITLES_SUFFIX)
        async with scratch_dir(self.work_dir, ".subs-") as work:
            path = work / f"subtitles{SUBTITLES_SUFFIX}"
            await asyncio.to_thread(path.write_text, media.to_webvtt(cues), encoding="utf-8")
            stored = await media.store_file(self._storage, key, path)
        return stored.key

    async def _single_cue(self, task: Task, video_key: str) -> str | None:
        """One cue, the prompt, for the whole of a single clip (its length as planned)."""
        text = trim_prompt(task.prompt.strip(), SUBTITLE_CHARS)
        cue = media.Cue(0.0, generated_duration_ms(task) / 1000, text)
        try:
            return await self.store_subtitles(video_key, [cue])
        except Exception as exc:
            logger.warning(
                "task %s: no subtitles: %s", task.id, _reason(exc), extra={"task_id": task.id}
            )
            return None

    async def discard(self, extras: dict[str, Any]) -> None:
        """Delete the stored files of ``extras`` (their video was never published)."""
        for name in ("thumbnail_key", "subtitles_key"):
            key = extras.get(name)
            if key:
                with contextlib.suppress(Exception):
                    await self._storage.delete(key)

    async def aclose(self) -> None:
        """Stop making posters (a video whose poster was not made yet keeps none)."""
        for job in list(self._pending):
            job.cancel()
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)


def _reason(exc: BaseException) -> str:
    return getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
