"""Provider callbacks: a hint to poll now, never a source of truth.

Ark POSTs the task object to the ``callback_url`` the gateway gave it on every status change.
The URL carries an HMAC of the gateway task id (``?sig=``) so strangers cannot make the gateway
poll; the body is unsigned and ignored — the pipeline re-GETs the task from Ark.
"""

from __future__ import annotations

from fastapi import APIRouter, Query

from app.api.deps import RunnerDep, SettingsDep
from app.errors import ForbiddenError, NotFoundError
from app.providers.seedance import verify_callback

router = APIRouter(tags=["callbacks"])


@router.post("/v1/callbacks/seedance/{task_id}", include_in_schema=False)
async def seedance_callback(
    task_id: str,
    settings: SettingsDep,
    runner: RunnerDep,
    sig: str = Query("", max_length=128),
) -> dict[str, bool]:
    """Seedance status-change callback: re-check the task at Ark now."""
    if settings.seedance.api_key is None:
        raise NotFoundError("seedance is not configured on this gateway")
    if not verify_callback(settings.seedance, task_id, sig):
        raise ForbiddenError("bad callback signature")
    runner.nudge(task_id)
    return {"ok": True}
