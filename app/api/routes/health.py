"""Liveness, readiness and metrics.

``/readyz`` answers from checks at most ``READY_TTL_S`` old: however often it is hit, the
store, the storage and the default provider see one probe round per interval (concurrent hits
wait for the same round). Anonymous callers learn ready or not; admin tokens also see which
check failed and why.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from app.api.deps import AdminDep, OptionalPrincipalDep
from app.api.errors import error_response
from app.api.schemas import error_responses
from app.errors import AppError

router = APIRouter(tags=["health"])
READY_TTL_S = 5.0
Check = Callable[[], Awaitable[None]]


class Health(BaseModel):
    status: str
    instance: str


class ReadinessBody(BaseModel):
    status: str
    checks: dict[str, str] | None = None


async def _probe(check: Check) -> str:
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


class Readiness:
    """The last probe round, refreshed at most once per ``ttl_s`` (single flight)."""

    def __init__(self, checks: Mapping[str, Check], *, ttl_s: float = READY_TTL_S) -> None:
        self._checks = dict(checks)
        self._ttl_s = ttl_s
        self._results: dict[str, str] | None = None
        self._at = 0.0
        self._lock = asyncio.Lock()

    async def results(self) -> dict[str, str]:
        if self._results is not None and time.monotonic() - self._at < self._ttl_s:
            return self._results
        async with self._lock:
            if self._results is None or time.monotonic() - self._at >= self._ttl_s:
                names = list(self._checks)
                outcomes = await asyncio.gather(*(_probe(self._checks[n]) for n in names))
                self._results = dict(zip(names, outcomes, strict=True))
                self._at = time.monotonic()
            return self._results


@router.get("/healthz", response_model=Health)
async def healthz(request: Request) -> dict[str, str]:
    """The process is alive (``instance``: which gateway process answered)."""
    runner = getattr(request.app.state, "runner", None)
    return {"status": "ok", "instance": runner.instance_id if runner else "starting"}


@router.get("/readyz", responses={200: {"model": ReadinessBody}, **error_responses(503)})
async def readyz(request: Request, principal: OptionalPrincipalDep) -> JSONResponse:
    """Ready or not (details for admin tokens): store, storage, default provider, limiter."""
    readiness: Readiness = request.app.state.readiness
    checks = await readiness.results()
    details = principal is not None and principal.admin
    failing = {name: result for name, result in checks.items() if result != "ok"}
    if failing:
        if not details:
            return error_response(503, "unavailable", "not ready", retryable=True)
        message = "; ".join(f"{name}: {result}" for name, result in failing.items())
        return error_response(
            503, "unavailable", f"not ready: {message}", retryable=True, detail=checks
        )
    body: dict[str, Any] = {"status": "ready"}
    if details:
        body["checks"] = checks
        # Circuit breakers (app.providers.health) inform, they do not make the gateway unready:
        # an open circuit means tasks go to other providers or fail fast for a while.
        body["providers"] = request.app.state.providers.breakers.snapshot()
    return JSONResponse(body)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, _: AdminDep) -> Response:
    """Prometheus metrics (admin tokens)."""
    metrics = request.app.state.metrics
    await metrics.refresh()
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
