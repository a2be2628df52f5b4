"""``/mcp``: the gateway as a Model Context Protocol server (Streamable HTTP).

The tools themselves (``generate_video``, ``get_task``, ``list_tasks``, ``expand_prompt``,
``catalog``) are in :mod:`app.api.mcp_tools`. This module is the route in front of them.

Auth is the API's: every request to ``/mcp`` passes the app's ``TokenVerifier`` before the MCP
SDK sees it (missing/non-Bearer → 401, unknown token → 403, the usual error JSON), so whatever
tokens the API accepts work here too. That token check is also why the SDK's DNS-rebinding
guard (meant for unauthenticated servers on localhost) is not switched on.

The SDK is loaded on the first ``/mcp`` request, not at start: importing it costs about half a
second of CPU, and a gateway restarted after a crash should spend its first seconds taking its
tasks back, not loading a protocol stack that may never be called. :class:`McpHost` imports
:mod:`app.api.mcp_tools` in a thread (the event loop keeps serving), then runs the SDK's session
manager in a task of its own until the app stops. Requests that arrive meanwhile wait for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from app.api.errors import app_error_response
from app.api.security import TokenVerifier
from app.errors import AppError

if TYPE_CHECKING:
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

    from app.prompts.service import PromptService
    from app.providers.registry import ProviderRegistry
    from app.tasks.service import TaskService

PATH = "/mcp"
#: Where the endpoint leaves the caller's ``Principal`` in the request state for the tools.
STATE_KEY = "vgw_principal"

logger = logging.getLogger(__name__)


class McpHost:
    """Starts the SDK's session manager on first use and stops it with the app."""

    def __init__(
        self,
        *,
        tasks: TaskService,
        prompts: PromptService,
        providers: ProviderRegistry,
        max_body_bytes: int,
    ) -> None:
        self._tasks = tasks
        self._prompts = prompts
        self._providers = providers
        self._max_body_bytes = max_body_bytes
        self._manager: StreamableHTTPSessionManager | None = None
        self._ready = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def manager(self) -> StreamableHTTPSessionManager:
        """The running session manager (started by the first caller)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="mcp-session-manager")
        await self._ready.wait()
        if self._manager is None:
            raise RuntimeError("the MCP session manager is not running")
        return self._manager

    async def _run(self) -> None:
        try:
            tools = await asyncio.to_thread(importlib.import_module, "app.api.mcp_tools")
            manager: StreamableHTTPSessionManager = tools.session_manager(
                tasks=self._tasks,
                prompts=self._prompts,
                providers=self._providers,
                max_body_bytes=self._max_body_bytes,
            )
            async with manager.run():
                self._manager = manager
                self._ready.set()
                await self._stop.wait()
        except Exception:
            logger.exception("the MCP session manager failed")
        finally:
            self._manager = None
            self._ready.set()  # waiters see it stopped instead of waiting forever

    async def aclose(self) -> None:
        if self._task is None:
            return
        self._stop.set()
        await self._task


class _Endpoint:
    """The ASGI endpoint at ``/mcp``: the API's token check, then the SDK's session manager."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        verifier: TokenVerifier = request.app.state.verifier
        try:
            principal = await verifier.verify(request.headers.get("authorization"))
            await request.app.state.limiter.hit(principal)  # the token's request rate
        except AppError as exc:
            await app_error_response(exc)(scope, receive, send)
            return
        scope["state"] = {**scope.get("state", {}), STATE_KEY: principal}
        host: McpHost = request.app.state.mcp
        manager = await host.manager()
        await manager.handle_request(scope, receive, send)


def mount(app: FastAPI) -> None:
    """Serve ``/mcp`` (GET, POST, DELETE as Streamable HTTP uses them) on ``app``."""
    # A plain Route (not a Mount) so that "/mcp" itself answers, without a redirect to "/mcp/".
    app.router.routes.append(
        Route(
            PATH, endpoint=_Endpoint(), methods=["GET", "POST", "DELETE"], include_in_schema=False
        )
    )


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[None]:
    """Make ``/mcp`` servable for the app's lifespan, once its services exist (the SDK itself
    starts with the first request)."""
    host = McpHost(
        tasks=app.state.tasks,
        prompts=app.state.prompts,
        providers=app.state.providers,
        max_body_bytes=app.state.settings.server.max_body_bytes,
    )
    app.state.mcp = host
    try:
        yield
    finally:
        await host.aclose()
