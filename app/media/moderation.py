"""Output screening: frames of a finished video → the moderation endpoint, before publishing.

Hosted providers (Seedance, Jimeng) screen what they generate; the local CogVideoX worker and
the preview renderer do not. With ``[prompts] moderate_output = true`` the pipeline sends
``[prompts] moderate_output_frames`` frames, spread evenly over such a video, to the
``[prompts] moderation_url`` endpoint (``ModerationClient.flagged_image_categories``); one
flagged frame rejects the video (``ContentRejectedError``, the task ends ``content_rejected``)
and nothing is stored. Because frames are needed, the video is spooled to a file first (disk,
not memory), screened, then streamed into storage.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from pathlib import Path
from typing import TYPE_CHECKING

from app.errors import ContentRejectedError
from app.media.ffmpeg import scratch_dir
from app.media.files import store_file
from app.media.frames import sample_frames

if TYPE_CHECKING:
    from app.config import Settings
    from app.prompts.screening import ModerationClient
    from app.storage.base import Storage, StoredObject

#: Providers whose output nobody screened before us.
UNSCREENED_PROVIDERS = frozenset({"cogvideox", "preview"})


class OutputScreen:
    """Screens finished videos of the providers in ``providers``."""

    def __init__(
        self,
        moderation: ModerationClient,
        *,
        frames: int = 4,
        work_dir: Path | None = None,
        providers: frozenset[str] = UNSCREENED_PROVIDERS,
    ) -> None:
        self._moderation = moderation
        self.frames = frames
        self._work_dir = work_dir
        self.providers = providers

    @classmethod
    def from_settings(
        cls, settings: Settings, moderation: ModerationClient | None
    ) -> OutputScreen | None:
        """The screen ``[prompts] moderate_output`` asks for, or ``None`` (off)."""
        if not settings.prompts.moderate_output or moderation is None:
            return None
        return cls(
            moderation,
            frames=settings.prompts.moderate_output_frames,
            work_dir=settings.server.data_dir / "tmp",
        )

    def applies(self, provider: str) -> bool:
        return provider in self.providers

    async def screen_video(self, source: Path | str) -> None:
        """Raise ``ContentRejectedError`` when a sampled frame of ``source`` is flagged
        (``UnavailableError`` when the endpoint fails and ``moderation_fail_open`` is off)."""
        images = await sample_frames(source, self.frames)
        flagged = await self._moderation.flagged_image_categories(images)
        if flagged:
            raise ContentRejectedError(
                f"the video was rejected by moderation (categories: {', '.join(flagged)})"
            )

    async def put_screened(
        self,
        storage: Storage,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        content_type: str = "video/mp4",
    ) -> StoredObject:
        """Spool ``chunks`` to disk, screen them, then stream them into ``storage``."""
        async with scratch_dir(self._work_dir, ".screen-") as work:
            path = work / "video.mp4"
            fh = await asyncio.to_thread(path.open, "wb")
            try:
                async for chunk in chunks:
                    await asyncio.to_thread(fh.write, chunk)
            finally:
                await asyncio.to_thread(fh.close)
            await self.screen_video(path)
            return await store_file(storage, key, path, content_type=content_type)
