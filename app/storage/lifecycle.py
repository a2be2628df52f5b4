"""``python -m app storage lifecycle``: the seed's storage cost rule, applied to the bucket.

Objects under ``videos/`` move to archive-class storage after ``days`` (default 30: Archive on
OSS, ``[s3] archive_storage_class`` on S3-compatible stores) and incomplete multipart uploads are
aborted after 7 days. The rule has a fixed ID (``vgw-archive-videos``) so running the command
again changes nothing; other rules on the bucket are left alone. Each returned line says what
was (or, with ``dry_run``, would be) changed.
"""

from __future__ import annotations

import asyncio

from app.config import ConfigError, Settings
from app.storage.registry import StorageDeps, backend_name, build_storage

DEFAULT_ARCHIVE_AFTER_DAYS = 30


def run_lifecycle(
    settings: Settings, *, days: int = DEFAULT_ARCHIVE_AFTER_DAYS, dry_run: bool = False
) -> list[str]:
    """Apply the lifecycle rule to the configured bucket; return what changed, line by line.

    Raises ``ConfigError`` for bad settings and ``UnavailableError`` when the store refuses.
    """
    if days < 1:
        raise ConfigError(f"--days must be at least 1, got {days}")
    name = backend_name(settings)
    if name == "local":
        return [
            "storage backend 'local': no bucket lifecycle to apply "
            f"(videos are files under {settings.storage.local_dir or settings.data_dir / 'files'})"
        ]
    deps = StorageDeps(data_dir=settings.data_dir, public_base_url=settings.server.base_url())
    storage = build_storage(settings, deps)
    apply = getattr(storage, "apply_lifecycle", None)
    if apply is None:
        return [f"storage backend {name!r}: lifecycle rules are not supported"]
    try:
        lines: list[str] = apply(days=days, dry_run=dry_run)
    finally:
        asyncio.run(storage.aclose())  # a CLI call: no event loop is running here
    return lines
