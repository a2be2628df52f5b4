"""The task: one request for one video, from acceptance to a terminal state.

``status`` is the one vocabulary every provider maps onto; ``stage`` says what a running task
is doing. A task's state changes only in ``app.tasks.pipeline`` (and cancel in the routes),
always through ``TaskStore.update`` guarded by "not yet terminal".
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, field
from typing import Any

from app.status import TERMINAL_STATUSES, Status

__all__ = ["TERMINAL_STATUSES", "Task", "TaskStage", "TaskStatus", "utcnow"]


#: A task's status: the gateway's one vocabulary (``app.status``), shared with provider jobs.
TaskStatus = Status


class TaskStage(enum.StrEnum):
    EXPANDING = "expanding"
    GENERATING = "generating"
    DOWNLOADING = "downloading"
    UPLOADING = "uploading"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(kw_only=True)
class Task:
    id: str
    owner: str
    status: TaskStatus = TaskStatus.QUEUED
    stage: TaskStage | None = None
    progress: int = 0
    provider: str | None = None
    provider_task_id: str | None = None
    provider_status: str | None = None
    prompt: str
    expanded_prompt: str | None = None
    expanded_by: str | None = None
    request: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    route: dict[str, Any] = field(default_factory=dict)
    video_key: str | None = None
    video_size: int | None = None
    video_sha256: str | None = None
    # The video's last frame (a PNG in storage), when the request asked for it.
    last_frame_key: str | None = None
    filename: str | None = None
    error: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    callback_url: str | None = None
    idempotency_key: str | None = None
    request_hash: str | None = None
    group_id: str | None = None
    # The result cache: what identifies an identical request, and the task whose video this is.
    cache_key: str | None = None
    cached_from: str | None = None
    # The task this one remixes (same settings, a new prompt), if any.
    remixed_from: str | None = None
    attempts: int = 0
    # Which gateway process works on the task, and until when (renewed while it runs).
    lease_owner: str | None = None
    lease_until: dt.datetime | None = None
    # When the provider submit began: a submit whose answer was lost is reconciled from here.
    submit_started_at: dt.datetime | None = None
    # Long videos (app.tasks.long_video): a shot's task names its parent and its place.
    parent_id: str | None = None
    shot_index: int | None = None
    # What comes with a finished video: its poster frame, WebVTT subtitles, platform caption.
    thumbnail_key: str | None = None
    subtitles_key: str | None = None
    caption: dict[str, Any] | None = None
    # While queued for a provider slot: 1 = next in line.
    queue_position: int | None = None
    # When the provider reported the video done (recent durations estimate progress).
    generated_at: dt.datetime | None = None
    created_at: dt.datetime = field(default_factory=utcnow)
    updated_at: dt.datetime = field(default_factory=utcnow)
    finished_at: dt.datetime | None = None
    # Deleted by its owner: hidden from them, kept for the record (a paid job is never lost).
    deleted_at: dt.datetime | None = None


def generated_duration_ms(task: Task) -> int:
    """The video's length as the provider planned it (``duration_ms``, or frames / fps)."""
    params = task.params
    for key in ("duration_ms", "duration_ms_effective"):
        if isinstance(params.get(key), int | float):
            return int(params[key])
    frames, fps = params.get("frames") or params.get("num_frames"), params.get("fps")
    if isinstance(frames, int) and isinstance(fps, int | float) and fps > 0:
        return round(frames * 1000 / fps)
    return int(task.request.get("duration_ms", 5000))
