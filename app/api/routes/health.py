"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.api.deps import PrincipalDep
from app.api.errors import error_response
from app.errors import AppError

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz(request: Request) -> dict[str, str]:
    """The process is alive (``instance``: which gateway process answered)."""
    runner = getattr(request.app.state, "runner", None)
    return {"status": "ok", "instance": runner.instance_id if runner else "starting"}


async def _probe(check: Any) -> str:
    try:
        async with asyncio.timeout(5):
            await check()
        return "ok"
    except AppError as exc:
        return exc.message
    except TimeoutError:
        return "timed out"
    except Exception as exc:  # a readiness probe reports; it never raises
        return f"{type(exc).__name__}"


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """The task store, the storage and the default provider are reachable (and each
    provider's circuit breaker: closed, open or half_open)."""
    state = request.app.state
    provider = state.providers.get(state.providers.default)
    checks = {
        "store": await _probe(state.store.check),
        "storage": await _probe(state.storage.check),
        f"provider:{provider.name}": await _probe(provider.check),
    }
    failing = {name: result for name, result in checks.items() if result != "ok"}
    if failing:
        message = "; ".join(f"{name}: {result}" for name, result in failing.items())
        return error_response(
            503, "unavailable", f"not ready: {message}", retryable=True, detail=checks
        )
    # Circuit breakers (app.providers.health) inform, they do not make the gateway unready:
    # an open circuit means tasks go to other providers or fail fast for a while.
    breakers = state.providers.breakers.snapshot()
    return JSONResponse({"status": "ready", "checks": checks, "providers": breakers})


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, _: PrincipalDep) -> Response:
    """Prometheus metrics."""
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
