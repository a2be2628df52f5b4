"""``/v1/admin/tokens``: managed tokens for admin tokens (the web console; the CLI does the same
through the same service). A new or rotated token is in the answer once, never again."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status

from app.api.deps import AdminDep, TokenServiceDep
from app.api.schemas import (
    AUTH_ERRORS,
    TokenCreate,
    TokenIssued,
    TokenList,
    TokenPublic,
    TokenRotate,
    TokenUpdate,
    error_responses,
)
from app.api.security import TokenVerifier
from app.tenants.principal import TokenLimits
from app.tenants.tokens import TokenRecord, TokenService

router = APIRouter(
    prefix="/v1/admin/tokens",
    tags=["admin"],
    responses=error_responses(*AUTH_ERRORS, 404, 409, 422, 503),
)


async def _public(tokens: TokenService, record: TokenRecord) -> dict[str, Any]:
    return {**record.public(), "usage": await tokens.usage(record)}


def _changed(request: Request) -> None:
    """This replica sees its own change at once (others within ``[auth] cache_s``)."""
    verifier: TokenVerifier = request.app.state.verifier
    verifier.forget()


@router.get("", response_model=TokenList)
async def list_tokens(_: AdminDep, tokens: TokenServiceDep) -> dict[str, Any]:
    """Every managed token: limits, status, last use and usage (never the token)."""
    return {"data": [await _public(tokens, record) for record in await tokens.listing()]}


@router.post("", response_model=TokenIssued, status_code=status.HTTP_201_CREATED)
async def create_token(body: TokenCreate, _: AdminDep, tokens: TokenServiceDep) -> dict[str, Any]:
    """Create a tenant and its token (shown in this answer only)."""
    limits = TokenLimits(**body.model_dump(include=set(TokenLimits.__dataclass_fields__)))
    record, token = await tokens.create(
        body.name, admin=body.admin, limits=limits, providers=body.providers
    )
    return {**await _public(tokens, record), "token": token}


@router.get("/{name}", response_model=TokenPublic)
async def get_token(name: str, _: AdminDep, tokens: TokenServiceDep) -> dict[str, Any]:
    """One managed token with its usage."""
    return await _public(tokens, await tokens.get(name))


@router.patch("/{name}", response_model=TokenPublic)
async def update_token(
    name: str, body: TokenUpdate, request: Request, _: AdminDep, tokens: TokenServiceDep
) -> dict[str, Any]:
    """Change a token's limits, providers or admin flag."""
    sent = body.model_fields_set
    limits = {key: getattr(body, key) for key in TokenLimits.__dataclass_fields__ if key in sent}
    record = await tokens.update(
        name,
        limits=limits,
        providers=body.providers if "providers" in sent else False,
        admin=body.admin if "admin" in sent else None,
    )
    _changed(request)
    return await _public(tokens, record)


@router.post("/{name}/rotate", response_model=TokenIssued)
async def rotate_token(
    name: str, body: TokenRotate, request: Request, _: AdminDep, tokens: TokenServiceDep
) -> dict[str, Any]:
    """A new token for the tenant; the old one works for ``grace_s`` more seconds."""
    record, token = await tokens.rotate(name, grace_s=body.grace_s)
    _changed(request)
    return {**await _public(tokens, record), "token": token}


@router.post("/{name}/revoke", response_model=TokenPublic)
async def revoke_token(
    name: str, request: Request, _: AdminDep, tokens: TokenServiceDep
) -> dict[str, Any]:
    """Revoke the tenant's token (and any previous one still in its grace)."""
    record = await tokens.revoke(name)
    _changed(request)
    return await _public(tokens, record)
