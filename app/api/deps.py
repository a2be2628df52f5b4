"""Dependency aliases: routes read the app's shared objects through these.

The providers are ``async def`` although they do no I/O: FastAPI runs plain ``def``
dependencies in a thread pool, a trip per dependency per request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.api.security import Principal, TokenVerifier
from app.batches.service import BatchService
from app.config import Settings
from app.errors import AppError, ForbiddenError, UnavailableError
from app.prompts.service import PromptService
from app.providers.registry import ProviderRegistry
from app.storage.base import Storage
from app.tasks.runner import LocalRunner
from app.tasks.service import TaskService
from app.tenants.limits import RequestLimiter
from app.tenants.tokens import TokenService


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_batches(request: Request) -> BatchService:
    batches: BatchService = request.app.state.batches
    return batches


async def get_tasks(request: Request) -> TaskService:
    tasks: TaskService = request.app.state.tasks
    return tasks


async def get_prompts(request: Request) -> PromptService:
    prompts: PromptService = request.app.state.prompts
    return prompts


async def get_storage(request: Request) -> Storage:
    storage: Storage = request.app.state.storage
    return storage


async def get_providers(request: Request) -> ProviderRegistry:
    providers: ProviderRegistry = request.app.state.providers
    return providers


async def get_runner(request: Request) -> LocalRunner:
    runner: LocalRunner = request.app.state.runner
    return runner


# Declares the bearer scheme in /openapi.json (importers then ask for the token); the header
# itself is checked by the verifier, which tells a missing header from another scheme.
_bearer = HTTPBearer(auto_error=False, description="A gateway token: Authorization: Bearer …")


async def get_principal(
    request: Request,
    _: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
) -> Principal:
    """The caller (401/403), counted against its request rate (429)."""
    verifier: TokenVerifier = request.app.state.verifier
    principal = await verifier.verify(request.headers.get("authorization"))
    limiter: RequestLimiter = request.app.state.limiter
    await limiter.hit(principal)
    return principal


async def get_optional_principal(request: Request) -> Principal | None:
    """The caller if a valid token came with the request; None otherwise (never an error)."""
    authorization = request.headers.get("authorization")
    if not authorization:
        return None
    verifier: TokenVerifier = request.app.state.verifier
    try:
        return await verifier.verify(authorization)
    except AppError:
        return None


async def get_admin(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    """An admin token (403 for the others)."""
    if not principal.admin:
        raise ForbiddenError("this needs an admin token")
    return principal


async def get_token_service(request: Request) -> TokenService:
    service: TokenService | None = request.app.state.token_service
    if service is None:
        raise UnavailableError("managed tokens are not available")
    return service


SettingsDep = Annotated[Settings, Depends(get_settings)]
TasksDep = Annotated[TaskService, Depends(get_tasks)]
BatchesDep = Annotated[BatchService, Depends(get_batches)]
PromptsDep = Annotated[PromptService, Depends(get_prompts)]
StorageDep = Annotated[Storage, Depends(get_storage)]
ProvidersDep = Annotated[ProviderRegistry, Depends(get_providers)]
RunnerDep = Annotated[LocalRunner, Depends(get_runner)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
OptionalPrincipalDep = Annotated[Principal | None, Depends(get_optional_principal)]
AdminDep = Annotated[Principal, Depends(get_admin)]
TokenServiceDep = Annotated[TokenService, Depends(get_token_service)]
