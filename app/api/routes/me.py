"""``GET /v1/me``: who the caller's token is — its tenant name, whether it is an admin, its
limits, providers and usage — so a client (the console) can adapt without trying."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from app.api.deps import PrincipalDep
from app.api.schemas import AUTH_ERRORS, TokenUsage, error_responses
from app.tenants.tokens import TokenService

router = APIRouter(prefix="/v1/me", tags=["auth"], responses=error_responses(*AUTH_ERRORS))


class EffectiveLimits(BaseModel):
    requests_per_s: float | None = Field(description="`null`: no limit.")
    burst: int | None
    max_active_tasks: int | None
    tasks_per_day: int | None


class Me(BaseModel):
    name: str = Field(description="The tenant's name (`config-…` for a configured token).")
    admin: bool
    limits: EffectiveLimits = Field(description="As applied: the token's own, else `[limits]`.")
    providers: list[str] | None = Field(description="Providers it may use; `null`: all.")
    usage: TokenUsage | None = Field(description="Active tasks and tasks created today (UTC).")


@router.get("", response_model=Me)
async def me(principal: PrincipalDep, request: Request) -> dict[str, Any]:
    """The calling token: name, admin or not, effective limits, providers, usage today."""
    tokens: TokenService | None = request.app.state.token_service
    limits = principal.limits
    return {
        "name": principal.name,
        "admin": principal.admin,
        "limits": {
            "requests_per_s": limits.requests_per_s,
            "burst": limits.burst,
            "max_active_tasks": limits.max_active_tasks,
            "tasks_per_day": limits.tasks_per_day,
        },
        "providers": sorted(principal.providers) if principal.providers is not None else None,
        "usage": await tokens.usage_of(principal.owner) if tokens is not None else None,
    }
