"""Provider callbacks: a hint to look now, and the job id of a submit whose answer was lost.

Ark POSTs the task object to the ``callback_url`` the gateway gave it on every status change.
The URL carries an HMAC of the gateway task id (``?sig=``), so only Ark, which received it from
us, can call it. The body's state is never trusted — the pipeline re-GETs the job from Ark with
our key, and a job that says it is still queued or running is only not read at once — but its
``id`` tells which job is this task's: a task whose create answer was lost adopts it
(``TaskService.adopt_job``), which is how a slow create is paid for exactly once.
"""

from __future__ import annotations

import json

from fastapi import APIRouter, Query, Request

from app.api.deps import SettingsDep, TasksDep
from app.errors import ForbiddenError, NotFoundError
from app.providers.seedance import NAME as SEEDANCE
from app.providers.seedance import still_going, verify_callback

router = APIRouter(tags=["callbacks"])


@router.post("/v1/callbacks/seedance/{task_id}", include_in_schema=False)
async def seedance_callback(
    task_id: str,
    settings: SettingsDep,
    tasks: TasksDep,
    request: Request,
    sig: str = Query("", max_length=128),
) -> dict[str, bool]:
    """Seedance status-change callback: adopt the job if the task lost its id; look now."""
    if settings.seedance.api_key is None:
        raise NotFoundError("seedance is not configured on this gateway")
    if not verify_callback(settings.seedance, task_id, sig):
        raise ForbiddenError("bad callback signature")
    try:
        body = json.loads(await request.body())
    except ValueError:
        body = None
    job_id = body.get("id") if isinstance(body, dict) else None
    # Only a job that may have ended is worth reading now. The word is the caller's, and
    # decides nothing but that: "queued" and "running" leave the job to its read schedule
    # (a hundred jobs starting together would otherwise be read in the middle of their
    # submits); anything else, or nothing, is read at once.
    look = not still_going(body.get("status") if isinstance(body, dict) else None)
    if isinstance(job_id, str) and 0 < len(job_id) <= 200:
        await tasks.adopt_job(task_id, SEEDANCE, job_id, look=look)
    elif look:
        await tasks.nudge(task_id)
    return {"ok": True}
