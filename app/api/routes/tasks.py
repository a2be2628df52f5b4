"""``/v1/tasks``: the asynchronous API (submit, poll or long-poll, list, cancel)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, status

from app.api.deps import PrincipalDep, TasksDep
from app.api.schemas import (
    AUTH_ERRORS,
    TaskGroup,
    TaskList,
    TaskPublic,
    TaskStatusWord,
    VideoCreate,
    error_responses,
)
from app.api.security import Principal, TokenVerifier
from app.errors import ForbiddenError, NotFoundError
from app.tasks.models import Task, TaskStatus
from app.tasks.service import TaskService

router = APIRouter(prefix="/v1/tasks", tags=["tasks"], responses=error_responses(*AUTH_ERRORS, 422))

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=200, description="Same key, same task (24 h)."),
]


OwnerQuery = Annotated[
    str | None,
    Query(
        max_length=64,
        description="Admin tokens only: a tenant's name (or tenant id), or `all`.",
    ),
]


async def owner_scope(request: Request, principal: Principal, owner: str | None) -> str | None:
    """Whose tasks a request reads: the caller's own, or (admins, when asked) another
    tenant's or everyone's (``None``)."""
    if owner is None:
        return principal.owner
    if not principal.admin:
        raise ForbiddenError("only admin tokens may read other tenants' tasks")
    if owner == "all":
        return None
    verifier: TokenVerifier = request.app.state.verifier
    if owner in verifier.static_owners:
        return verifier.static_owners[owner]
    tokens = request.app.state.token_service
    record = await tokens.store.by_name(owner) if tokens is not None else None
    if record is not None:
        return str(record.tenant_id)
    if owner.startswith("tn_") or len(owner) == 32:
        return owner  # a tenant id as stored
    raise NotFoundError(f"no tenant named {owner!r}")


async def presented(
    request: Request, tasks: TaskService, found: Sequence[Task], *, owner: str | None
) -> list[dict[str, Any]]:
    """``found`` as answered; in an admin's read with ``?owner=`` each also names its tenant."""
    bodies = [await tasks.present(task) for task in found]
    if owner is not None:
        verifier: TokenVerifier = request.app.state.verifier
        names: dict[str, str] = {}
        for task, body in zip(found, bodies, strict=True):
            if task.owner not in names:
                names[task.owner] = await verifier.tenant_name(task.owner)
            body["owner"] = names[task.owner]
    return bodies


def task_fields(body: VideoCreate) -> dict[str, Any]:
    """The stored request: what was sent, without the variant controls."""
    return body.model_dump(exclude_none=True, exclude={"n", "styles"})


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TaskPublic | TaskGroup,
    responses=error_responses(400, 409, 413, 503),
)
async def create_task(
    body: VideoCreate,
    principal: PrincipalDep,
    tasks: TasksDep,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    """Submit a video task (or ``n`` variants of it); answers at once."""
    explicit = body.model_fields_set
    if body.n > 1 or body.styles:
        group_id, created = await tasks.create_group(
            task_fields(body),
            owner=principal.owner,
            n=body.n,
            styles=body.styles,
            idempotency_key=idempotency_key,
            explicit=explicit,
            principal=principal,
        )
        return {"group_id": group_id, "data": [await tasks.present(task) for task in created]}
    task, _ = await tasks.create(
        task_fields(body),
        owner=principal.owner,
        idempotency_key=idempotency_key,
        explicit=explicit,
        principal=principal,
    )
    return await tasks.present(task)


@router.get("/{task_id}", response_model=TaskPublic, responses=error_responses(404))
async def get_task(
    task_id: str,
    request: Request,
    principal: PrincipalDep,
    tasks: TasksDep,
    wait_s: Annotated[float, Query(ge=0, le=60, description="Long-poll until the task ends.")] = 0,
    owner: OwnerQuery = None,
) -> dict[str, Any]:
    """Read a task; with ``wait_s`` wait up to that long for it to end."""
    task = await tasks.get(task_id, owner=await owner_scope(request, principal, owner))
    if wait_s > 0:
        task = await tasks.wait(task, wait_s)
    [body] = await presented(request, tasks, [task], owner=owner)
    return body


@router.get("", response_model=TaskList)
async def list_tasks(
    request: Request,
    principal: PrincipalDep,
    tasks: TasksDep,
    status: TaskStatusWord | None = None,
    group_id: Annotated[str | None, Query(max_length=40)] = None,
    provider: Annotated[str | None, Query(max_length=32)] = None,
    before: Annotated[
        str | None, Query(max_length=40, description="Page on: the previous page's next_before.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    owner: OwnerQuery = None,
) -> dict[str, Any]:
    """The caller's own tasks, newest first (``group_id``: the variants of one create)."""
    found = await tasks.list(
        owner=await owner_scope(request, principal, owner),
        status=TaskStatus(status) if status else None,
        group_id=group_id,
        provider=provider,
        before=before,
        limit=limit + 1,
    )
    page = found[:limit]
    has_more = len(found) > limit
    return {
        "data": await presented(request, tasks, page, owner=owner),
        "has_more": has_more,
        "next_before": page[-1].id if has_more else None,
    }


@router.delete("/{task_id}", response_model=TaskPublic, responses=error_responses(404))
async def cancel_task(
    task_id: str,
    request: Request,
    principal: PrincipalDep,
    tasks: TasksDep,
    owner: OwnerQuery = None,
) -> dict[str, Any]:
    """Cancel a task that has not ended (also at the provider); admins may cancel another
    tenant's with ``owner``."""
    scope = await owner_scope(request, principal, owner)
    cancelled = await tasks.cancel(task_id, owner=scope)
    [body] = await presented(request, tasks, [cancelled], owner=owner)
    return body
