"""The one status vocabulary of the gateway: a task's ``status`` and a provider job's state.

Both the task layer (``app.tasks``) and the provider adapters (``app.providers``) speak it, so it
lives here, depending on neither. ``TaskStatus`` (``app.tasks.models``) and ``JobState``
(``app.providers.base``) are this same enum under the name each seam reads best with: a job that
ends ``Status.CANCELLED`` at its provider ends its task with that very value, no mapping between.
"""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED})
