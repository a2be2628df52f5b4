"""``/v1/batches``: a CSV of prompts in, one task per row, a results CSV out."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Query, UploadFile, status
from fastapi.responses import Response

from app.api.deps import BatchesDep, PrincipalDep, SettingsDep
from app.api.schemas import AUTH_ERRORS, BatchList, BatchPublic, error_responses
from app.errors import PayloadTooLargeError

router = APIRouter(
    prefix="/v1/batches", tags=["batches"], responses=error_responses(*AUTH_ERRORS, 422)
)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=BatchPublic,
    responses=error_responses(400, 413),
)
async def create_batch(
    file: Annotated[UploadFile, File(description="A CSV whose header names request fields.")],
    principal: PrincipalDep,
    batches: BatchesDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Start a batch: one video task per CSV row, a few at a time."""
    limit = settings.server.max_upload_bytes
    if file.size is not None and file.size > limit:
        raise PayloadTooLargeError(f"the file is larger than {limit} bytes", param="file")
    data = await file.read()
    if len(data) > limit:
        raise PayloadTooLargeError(f"the file is larger than {limit} bytes", param="file")
    batch = await batches.create(data, filename=file.filename, owner=principal.owner)
    [shown] = await batches.present([batch])
    return shown


@router.get("", response_model=BatchList)
async def list_batches(
    principal: PrincipalDep,
    batches: BatchesDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> dict[str, Any]:
    """The caller's batches, newest first."""
    found = await batches.list_for(owner=principal.owner, limit=limit)
    return {"data": await batches.present(found)}


@router.get("/{batch_id}", response_model=BatchPublic, responses=error_responses(404))
async def get_batch(batch_id: str, principal: PrincipalDep, batches: BatchesDep) -> dict[str, Any]:
    """A batch's status and its rows counted by outcome."""
    [shown] = await batches.present([await batches.get(batch_id, owner=principal.owner)])
    return shown


@router.get(
    "/{batch_id}/results.csv",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {}}, "description": "The rows with their outcomes."},
        **error_responses(404),
    },
)
async def batch_results(batch_id: str, principal: PrincipalDep, batches: BatchesDep) -> Response:
    """The input rows in order, plus task_id, status, video_url, error (UTF-8 with BOM)."""
    batch = await batches.get(batch_id, owner=principal.owner)
    return Response(
        await batches.results_csv(batch),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{batch.id}-results.csv"'},
    )


@router.delete("/{batch_id}", response_model=BatchPublic, responses=error_responses(404))
async def cancel_batch(
    batch_id: str, principal: PrincipalDep, batches: BatchesDep
) -> dict[str, Any]:
    """Cancel the rows not started and the tasks still running."""
    [shown] = await batches.present([await batches.cancel(batch_id, owner=principal.owner)])
    return shown
