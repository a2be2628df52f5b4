"""``GET /``: the web console page, and its content-hashed assets under ``/console/assets/``.

No auth here: the page asks for a token and then calls the public API like any client.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.console.assets import ConsoleBundle
from app.errors import NotFoundError

router = APIRouter(include_in_schema=False)

_IMMUTABLE = "public, max-age=31536000, immutable"


async def _bundle(request: Request) -> ConsoleBundle:
    """Read and hash the files once per app, off the event loop, on the first visit."""
    bundle: ConsoleBundle | None = getattr(request.app.state, "console", None)
    if bundle is None:
        bundle = await asyncio.to_thread(ConsoleBundle.load)
        request.app.state.console = bundle
    return bundle


@router.get("/", response_class=HTMLResponse)
async def console_page(request: Request) -> HTMLResponse:
    """The console page (always revalidated, so a new release's asset names are picked up)."""
    bundle = await _bundle(request)
    return HTMLResponse(
        bundle.index_html,
        headers={
            "Cache-Control": "no-cache",
            "Content-Security-Policy": bundle.content_security_policy(),
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
        },
    )


@router.get("/console/assets/{name:path}")
async def console_asset(name: str, request: Request) -> Response:
    """One hashed asset; gzipped when the client accepts it."""
    asset = (await _bundle(request)).assets.get(name)
    if asset is None:
        raise NotFoundError(f"no console asset {name!r}")
    headers = {
        "Cache-Control": _IMMUTABLE,
        "X-Content-Type-Options": "nosniff",
        "Vary": "Accept-Encoding",
    }
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(asset.gzipped, media_type=asset.media_type, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)
