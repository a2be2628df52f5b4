"""Live task events: ``GET /v1/tasks/{id}/events`` (Server-Sent Events, via ``sse-starlette``)
and ``WS /v1/tasks/{id}/ws`` (the same events as JSON messages).

Both stream ``status`` and ``progress`` events, each carrying the task object, and end with
the terminal event (``succeeded`` | ``failed`` | ``cancelled``). Resuming: SSE clients send
``Last-Event-ID`` (browsers do it themselves), WebSocket clients ``?last_event_id=``; every event
after it is replayed. Auth as everywhere (another token's task is 404); a WebSocket may carry
its token as ``?token=`` because browsers cannot set its headers (query strings are never
logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, WebSocket, WebSocketDisconnect
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.api.deps import PrincipalDep, TasksDep
from app.api.errors import app_error_response
from app.api.schemas import AUTH_ERRORS, error_responses
from app.api.security import TokenVerifier
from app.errors import AppError, ValidationError
from app.tasks.events import Event
from app.tasks.service import TaskService

router = APIRouter(
    prefix="/v1/tasks", tags=["tasks"], responses=error_responses(*AUTH_ERRORS, 404, 422)
)

PING_S = 15


def _resume_point(value: str | None) -> int | None:
    if value is None or not value.strip():
        return None
    try:
        point = int(value.strip())
    except ValueError:
        raise ValidationError("Last-Event-ID must be the id of an event of this stream") from None
    if point < 0:
        raise ValidationError("Last-Event-ID must be the id of an event of this stream")
    return point


def _data(event: Event) -> str:
    return json.dumps(event.data, ensure_ascii=False, separators=(",", ":"), default=str)


@router.get(
    "/{task_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
            "description": "status/progress events (data: the task object), then the end",
        }
    },
)
async def task_events(
    task_id: str,
    principal: PrincipalDep,
    tasks: TasksDep,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)] = None,
) -> EventSourceResponse:
    """Server-Sent Events: status, progress, then one terminal event (resume: Last-Event-ID)."""
    task = await tasks.get(task_id, owner=principal.owner)
    stream = tasks.follow(task, after=_resume_point(last_event_id))

    async def events() -> Any:
        async for event in stream:
            yield ServerSentEvent(
                data=_data(event),
                event=event.type,
                id=str(event.id) if event.id is not None else None,
            )

    return EventSourceResponse(events(), ping=PING_S)


async def _deny(websocket: WebSocket, exc: AppError) -> None:
    """Refuse the handshake with the error as an HTTP answer (or a close code 4000 + status
    where the server cannot send one)."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(app_error_response(exc))
    else:
        await websocket.close(code=4000 + exc.status_code, reason=exc.message[:120])


@router.websocket("/{task_id}/ws")
async def task_ws(
    websocket: WebSocket,
    task_id: str,
    token: Annotated[str | None, Query(max_length=512)] = None,
    last_event_id: Annotated[str | None, Query(max_length=20)] = None,
) -> None:
    """The task's events as JSON messages ``{type, id, data}``; closes after the terminal one."""
    state = websocket.app.state
    verifier: TokenVerifier = state.verifier
    tasks: TaskService = state.tasks
    authorization = websocket.headers.get("authorization") or (f"Bearer {token}" if token else None)
    try:
        principal = await verifier.verify(authorization)
        await state.limiter.hit(principal)  # counted like any request (429 over the rate)
        task = await tasks.get(task_id, owner=principal.owner)
        after = _resume_point(last_event_id)
    except AppError as exc:
        await _deny(websocket, exc)
        return
    await websocket.accept()

    async def send_all() -> None:
        async for event in tasks.follow(task, after=after):
            await websocket.send_json({"type": event.type, "id": event.id, "data": event.data})
        await websocket.close(code=1000)

    async def until_closed() -> None:
        # Also notices a client that left while nothing was being sent.
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass

    sender = asyncio.create_task(send_all())
    receiver = asyncio.create_task(until_closed())
    try:
        await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for job in (sender, receiver):
            job.cancel()
        for job in (sender, receiver):
            with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                await job
