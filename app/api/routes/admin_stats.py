"""``GET /v1/admin/stats``: task counts and recent failures across every tenant and replica
(admin tokens; the console's Operate page). The counting is :mod:`app.tasks.stats`."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from app.api.deps import AdminDep
from app.api.schemas import AUTH_ERRORS, error_responses
from app.tasks import stats

router = APIRouter(
    prefix="/v1/admin/stats", tags=["admin"], responses=error_responses(*AUTH_ERRORS, 422, 503)
)


class ActiveTasks(BaseModel):
    queued: int
    running: int
    by_provider: dict[str, dict[str, int]] = Field(
        description='provider → {queued, running} (`""`: not routed yet).'
    )
    by_instance: dict[str, int] = Field(
        description="gateway process (its `/healthz` instance) → unfinished tasks it holds."
    )


class FailureExample(BaseModel):
    task_id: str
    message: str
    provider: str | None


class FailureGroup(BaseModel):
    code: str = Field(description="The error code (`unknown` when the task has none).")
    count: int
    last_at: dt.datetime
    example: FailureExample = Field(description="The latest failure with this code.")


class AdminStats(BaseModel):
    since: dt.datetime = Field(description="Start of the window: tasks created since then.")
    window_h: float
    total: int = Field(description="Tasks created in the window.")
    by_status: dict[str, int]
    by_provider: dict[str, dict[str, int]] = Field(description="provider → status → count.")
    active: ActiveTasks = Field(description="Unfinished tasks now, whenever they were created.")
    failures: list[FailureGroup] = Field(description="The window's failures by code, most first.")


@router.get("", response_model=AdminStats)
async def admin_stats(
    request: Request,
    _: AdminDep,
    hours: Annotated[float, Query(gt=0, le=720, description="The window, in hours.")] = 24,
) -> dict[str, Any]:
    """Task counts by status and provider, queue and running counts, failures by error code."""
    found = await stats.collect(request.app.state.store, window=dt.timedelta(hours=hours))
    return found.public()
