"""``GET /files/{key}``: downloads from the ``local`` storage backend, by signed URL only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from app.api.deps import StorageDep
from app.errors import NotFoundError
from app.media.files import content_type_for
from app.storage.local import LocalStorage

router = APIRouter(tags=["files"])


@router.get("/files/{key:path}", include_in_schema=False)
async def get_file(
    key: str,
    storage: StorageDep,
    exp: Annotated[str | None, Query()] = None,
    sig: Annotated[str | None, Query()] = None,
) -> FileResponse:
    """Serve a stored file (a video, its poster, subtitles or last frame, an image uploaded for
    a provider to fetch) when the URL's signature is valid and unexpired."""
    if not isinstance(storage, LocalStorage):
        raise NotFoundError("this gateway does not serve files itself")
    path = storage.verify(key, exp, sig)
    return FileResponse(path, media_type=content_type_for(path), filename=path.name)
