"""CSV batches: a spreadsheet of prompts in, one task per row, a results sheet out.

``create`` reads and checks the whole file (a bad file is a 400 with the reason; a bad row is
stored as failed with its reason) and stores the batch with its rows; the feeder
(``app.batches.feeder``) then turns the rows into tasks a bounded number at a time. Reading,
results and cancelling work from any gateway process.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from app.batches import csvfile
from app.batches.feeder import BatchFeeder
from app.batches.store import (
    CANCELLED,
    FAILED,
    PENDING,
    RUNNING,
    Batch,
    BatchRow,
    BatchStore,
    ResultRow,
)
from app.config import Settings
from app.errors import NotFoundError
from app.storage.base import Storage
from app.tasks.models import utcnow
from app.tasks.service import TaskService

logger = logging.getLogger(__name__)


def new_batch_id() -> str:
    return f"vb_{uuid.uuid4().hex}"


class BatchService:
    def __init__(
        self,
        *,
        settings: Settings,
        store: BatchStore,
        tasks: TaskService,
        storage: Storage,
        feeder: BatchFeeder,
    ) -> None:
        self._settings = settings
        self._store = store
        self._tasks = tasks
        self._storage = storage
        self._feeder = feeder

    async def create(self, data: bytes, *, filename: str | None, owner: str) -> Batch:
        """Check and store a CSV as a batch; its valid rows start feeding at once."""
        sheet = csvfile.parse(data, max_rows=self._settings.batches.max_rows)
        now = utcnow()
        batch = Batch(
            id=new_batch_id(),
            owner=owner,
            status=RUNNING,
            filename=(filename or "")[:200] or None,
            columns=sheet.columns,
            total=len(sheet.rows),
            concurrency=self._settings.batches.concurrency,
            lease_owner=None,
            lease_until=None,
            created_at=now,
            updated_at=now,
            finished_at=None,
        )
        rows = [
            BatchRow(
                batch_id=batch.id,
                idx=row.index,
                cells=row.cells,
                body=row.body,
                status=PENDING if row.error is None else FAILED,
                task_id=None,
                error=None
                if row.error is None
                else {"code": "validation_error", "message": row.error, "retryable": False},
                attempts=0,
                next_attempt_at=None,
            )
            for row in sheet.rows
        ]
        await self._store.create(batch, rows)
        invalid = sum(row.error is not None for row in sheet.rows)
        logger.info(
            "batch %s accepted: %d rows (%d invalid), %s",
            batch.id,
            batch.total,
            invalid,
            sheet.encoding,
        )
        await self._feeder.take(batch.id)
        return batch

    async def get(self, batch_id: str, *, owner: str) -> Batch:
        batch = await self._store.get(batch_id, owner=owner)
        if batch is None:
            raise NotFoundError(f"no batch {batch_id!r}")
        return batch

    async def list_for(self, *, owner: str, limit: int) -> list[Batch]:
        return await self._store.list_for(owner, limit=limit)

    async def cancel(self, batch_id: str, *, owner: str) -> Batch:
        """Stop feeding, cancel the rows not started and the tasks that have not ended."""
        batch = await self.get(batch_id, owner=owner)
        if batch.status == RUNNING:
            batch = await self._store.finish(batch.id, CANCELLED) or await self.get(
                batch_id, owner=owner
            )
        # Also after a cancel elsewhere raced with a row being fed: whatever still runs stops.
        if batch.status == CANCELLED:
            for task_id in await self._store.live_task_ids(batch.id):
                try:
                    await self._tasks.cancel(task_id, owner=owner)
                except NotFoundError:  # deleted by its owner meanwhile
                    continue
        return batch

    async def present(self, batches: list[Batch]) -> list[dict[str, Any]]:
        counts = await self._store.counts([batch.id for batch in batches]) if batches else {}
        base_url = self._settings.server.base_url()
        return [
            {
                "id": batch.id,
                "object": "batch",
                "results_url": f"{base_url}/v1/batches/{batch.id}/results.csv",
                "status": batch.status,
                "filename": batch.filename,
                "columns": batch.columns,
                "concurrency": batch.concurrency,
                "counts": counts[batch.id],
                "created_at": batch.created_at,
                "finished_at": batch.finished_at,
            }
            for batch in batches
        ]

    async def results_csv(self, batch: Batch) -> bytes:
        """The input rows in order, plus task_id, status, video_url and error."""
        rows = await self._store.results(batch.id)
        expires_s = self._settings.storage.url_expires_s
        out = []
        for row in rows:
            url = (
                await self._storage.url(row.video_key, expires_s=expires_s) if row.video_key else ""
            )
            out.append([*row.cells, row.task_id or "", row.status, url, _error_text(row)])
        return csvfile.write([*batch.columns, *csvfile.RESULT_COLUMNS], out)


def _error_text(row: ResultRow) -> str:
    if not row.error or row.status == "succeeded":
        return ""
    return f"{row.error.get('code', 'error')}: {row.error.get('message', '')}"
