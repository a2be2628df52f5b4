"""The MCP server behind ``/mcp``: five tools over the gateway's task and prompt services.

Agent hosts (Dify's MCP tools and agents, Claude, Cursor, ...) call::

    generate_video   VideoCreate          create a task, report its progress, return the video
    get_task         TaskQuery            read a task, optionally waiting for it to end
    list_tasks       TaskListQuery        the caller's own tasks, newest first
    expand_prompt    PromptExpand         the prompt a task would send (no video made)
    catalog          (none)               providers, templates, styles, platform presets

A facade like the HTTP routes: each tool validates its arguments with the pydantic model named
above (the same models the HTTP API uses; their JSON schemas are the tools' input schemas) and
calls ``TaskService`` / ``PromptService`` directly, never HTTP to ourselves. Arguments the model
refuses and domain errors (``AppError``) come back as a tool result with ``isError: true`` and
the error code, so the calling model can read and correct them; MCP protocol errors are left for
what the protocol is about (unknown tool, malformed request).

``generate_video`` and ``get_task`` wait for the task within a budget (``wait_s``; default
:data:`DEFAULT_WAIT_S`, below the 60 s request timeout most MCP clients use), sending a
``notifications/progress`` whenever the task's ``progress``/``status``/``stage`` changes (when
the client asked for progress). Out of budget, they return the task as it stands — not an
error — with the advice to call ``get_task`` again.

The route, its token check and when this module is loaded: :mod:`app.api.routes.mcp`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import mcp.types as mcp_types
from mcp.server import Server, ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request

from app import __version__
from app.api.routes.mcp import STATE_KEY
from app.api.routes.prompts import PromptExpand
from app.api.routes.tasks import task_fields
from app.api.schemas import TaskStatusWord, VideoCreate
from app.api.security import Principal
from app.errors import AppError
from app.errors import ValidationError as GatewayValidationError
from app.prompts.service import PromptService
from app.providers.registry import ProviderRegistry
from app.tasks.models import Task, TaskStatus
from app.tasks.service import TaskService

#: How long ``generate_video`` waits when the call names no ``wait_s``. Most MCP clients give
#: up on a request after 60 s; a task returned at 50 s can be picked up with ``get_task``.
DEFAULT_WAIT_S = 50.0
#: How often a waiting call re-reads the task to report progress.
PROGRESS_EVERY_S = 1.0


class TaskQuery(BaseModel):
    """Arguments of ``get_task``."""

    model_config = ConfigDict(extra="forbid")

    task_id: str = Field(min_length=1, max_length=64, description="The id generate_video gave.")
    wait_s: float = Field(
        0, ge=0, le=60, description="Wait up to this many seconds for the task to end."
    )


class TaskListQuery(BaseModel):
    """Arguments of ``list_tasks``."""

    model_config = ConfigDict(extra="forbid")

    status: TaskStatusWord | None = Field(None, description="Only tasks in this status.")
    limit: int = Field(20, ge=1, le=100, description="At most this many, newest first.")


class NoArguments(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _input_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema, with ``X | None`` fields written as plain ``X``.

    Pydantic spells an optional field ``anyOf: [X, {type: null}]``; MCP clients that build a
    form from the schema (Dify's MCP tools among them) read one ``type`` per property. Leaving a
    field out means the same as null here, so the null branch carries no information.
    """
    schema = model.model_json_schema()
    for prop in schema.get("properties", {}).values():
        branches = prop.get("anyOf")
        if isinstance(branches, list):
            concrete = [b for b in branches if b.get("type") != "null"]
            if len(concrete) == 1 and len(branches) == 2:
                del prop["anyOf"]
                prop.update(concrete[0])
    return schema


Handler = Callable[["McpTools", Principal, Any, ServerRequestContext[Any, Any]], Awaitable[Any]]


class McpTools:
    """The five tools, bound to one app's services."""

    def __init__(
        self, *, tasks: TaskService, prompts: PromptService, providers: ProviderRegistry
    ) -> None:
        self._tasks = tasks
        self._prompts = prompts
        self._providers = providers

    # --- tools ---------------------------------------------------------------------------

    async def generate_video(
        self, principal: Principal, body: VideoCreate, ctx: ServerRequestContext[Any, Any]
    ) -> mcp_types.CallToolResult:
        if body.n > 1 or body.styles:
            raise GatewayValidationError("variants (n, styles) are created with POST /v1/tasks")
        task, _ = await self._tasks.create(
            task_fields(body),
            owner=principal.owner,
            explicit=body.model_fields_set,
            principal=principal,
        )
        task = await self._follow(task, DEFAULT_WAIT_S if body.wait_s is None else body.wait_s, ctx)
        return await self._task_result(task)

    async def get_task(
        self, principal: Principal, query: TaskQuery, ctx: ServerRequestContext[Any, Any]
    ) -> mcp_types.CallToolResult:
        task = await self._tasks.get(query.task_id, owner=principal.owner)
        task = await self._follow(task, query.wait_s, ctx)
        return await self._task_result(task)

    async def list_tasks(
        self, principal: Principal, query: TaskListQuery, ctx: ServerRequestContext[Any, Any]
    ) -> dict[str, Any]:
        found = await self._tasks.list(
            owner=principal.owner,
            status=TaskStatus(query.status) if query.status else None,
            group_id=None,
            limit=query.limit,
        )
        return {"data": [await self._tasks.present(task) for task in found]}

    async def expand_prompt(
        self, principal: Principal, body: PromptExpand, ctx: ServerRequestContext[Any, Any]
    ) -> dict[str, Any]:
        name = body.provider or self._providers.default
        return await self._prompts.preview(
            body.prompt,
            provider=name,
            capabilities=self._providers.get(name).capabilities,
            style=body.style,
            template=body.template,
            platform=body.platform,
            negative_prompt=body.negative_prompt,
        )

    async def catalog(
        self, principal: Principal, _: NoArguments, ctx: ServerRequestContext[Any, Any]
    ) -> dict[str, Any]:
        providers = []
        for name in self._providers.names():
            caps = self._providers.get(name).capabilities
            providers.append(
                {
                    "name": name,
                    "default": name == self._providers.default,
                    "image_input": caps.image_input,
                    "last_frame": caps.last_frame,
                    "negative_prompt": caps.negative_prompt,
                    "max_prompt_chars": caps.max_prompt_chars,
                    "aspect_ratios": sorted(caps.aspect_ratios),
                }
            )
        return {"providers": providers, **self._prompts.listing()}

    # --- helpers -------------------------------------------------------------------------

    async def _follow(
        self, task: Task, budget_s: float, ctx: ServerRequestContext[Any, Any]
    ) -> Task:
        """Wait up to ``budget_s`` for ``task`` to end, reporting each change as progress."""
        remaining = budget_s
        seen: tuple[str, str | None, int] | None = None
        while True:
            state = (task.status.value, task.stage.value if task.stage else None, task.progress)
            if state != seen:
                seen = state
                # A no-op unless the client sent a progress token with the call.
                await ctx.session.report_progress(
                    100 if task.status is TaskStatus.SUCCEEDED else task.progress,
                    total=100,
                    message=" · ".join(part for part in state[:2] if part),
                )
            if task.status.is_terminal or remaining <= 0:
                return task
            step = min(PROGRESS_EVERY_S, remaining)
            task = await self._tasks.wait(task, step)
            remaining -= step

    async def _task_result(self, task: Task) -> mcp_types.CallToolResult:
        view = await self._tasks.present(task)
        content: list[mcp_types.ContentBlock] = [
            mcp_types.TextContent(text=json.dumps(view, ensure_ascii=False, default=str))
        ]
        if task.status is TaskStatus.SUCCEEDED and view.get("video_url"):
            content.append(
                mcp_types.ResourceLink(
                    uri=view["video_url"], name=task.filename or task.id, mime_type="video/mp4"
                )
            )
        elif not task.status.is_terminal:
            content.append(
                mcp_types.TextContent(
                    text=f"The video is still being generated (task {task.id}, {task.status}). "
                    f'Call get_task with {{"task_id": "{task.id}", "wait_s": 50}} to wait for it.'
                )
            )
        failed = task.status in (TaskStatus.FAILED, TaskStatus.CANCELLED)
        return mcp_types.CallToolResult(content=content, structured_content=view, is_error=failed)


_TOOLS: dict[str, tuple[type[BaseModel], Handler, str, bool]] = {
    "generate_video": (
        VideoCreate,
        McpTools.generate_video,
        "Generate a video from a prompt and return its hosted URL (video_url) with the task. "
        "Reports progress while it renders; if it takes longer than wait_s (default "
        f"{DEFAULT_WAIT_S:.0f} s) it returns the unfinished task: call get_task with its id.",
        False,
    ),
    "get_task": (
        TaskQuery,
        McpTools.get_task,
        "Read a video task (status, progress, video_url when done); with wait_s, wait up to "
        "that long for it to finish.",
        True,
    ),
    "list_tasks": (
        TaskListQuery,
        McpTools.list_tasks,
        "List your video tasks, newest first.",
        True,
    ),
    "expand_prompt": (
        PromptExpand,
        McpTools.expand_prompt,
        "Turn a short idea into the detailed prompt a video task would send (screened, "
        "expanded with a style/template/platform preset), without generating a video.",
        True,
    ),
    "catalog": (
        NoArguments,
        McpTools.catalog,
        "What this gateway offers: providers (and which is the default), prompt templates, "
        "styles and platform presets, by the names the other tools accept.",
        True,
    ),
}


def _tool_error(message: str, *, code: str) -> mcp_types.CallToolResult:
    body = {"error": {"code": code, "message": message}}
    return mcp_types.CallToolResult(
        content=[mcp_types.TextContent(text=f"{code}: {message}")],
        structured_content=body,
        is_error=True,
    )


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in err['loc']) or 'arguments'}: {err['msg']}"
        for err in exc.errors()
    )


def build_server(tools: McpTools) -> Server[Any]:
    """The low-level MCP server: tools/list and tools/call over :class:`McpTools`."""
    listing = mcp_types.ListToolsResult(
        tools=[
            mcp_types.Tool(
                name=name,
                description=description,
                input_schema=_input_schema(model),
                annotations=mcp_types.ToolAnnotations(read_only_hint=read_only),
            )
            for name, (model, _, description, read_only) in _TOOLS.items()
        ]
    )

    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: mcp_types.PaginatedRequestParams | None
    ) -> mcp_types.ListToolsResult:
        return listing

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: mcp_types.CallToolRequestParams
    ) -> mcp_types.CallToolResult:
        entry = _TOOLS.get(params.name)
        if entry is None:
            return _tool_error(f"no tool {params.name!r}", code="not_found")
        model, handler, _, _ = entry
        request = ctx.request
        if not isinstance(request, Request):  # /mcp is only mounted behind the token check
            return _tool_error("no authenticated request", code="unauthorized")
        principal: Principal = getattr(request.state, STATE_KEY)
        try:
            arguments = model.model_validate(params.arguments or {})
        except ValidationError as exc:
            return _tool_error(_validation_message(exc), code="validation_error")
        try:
            result = await handler(tools, principal, arguments, ctx)
        except AppError as exc:
            return _tool_error(exc.message, code=exc.code)
        if isinstance(result, mcp_types.CallToolResult):
            return result
        text = json.dumps(result, ensure_ascii=False, default=str)
        return mcp_types.CallToolResult(
            content=[mcp_types.TextContent(text=text)], structured_content=json.loads(text)
        )

    return Server(
        "dify-video-gateway",
        version=__version__,
        title="Dify Video Gateway",
        instructions=(
            "Generate hosted videos from text prompts. Call catalog to see the providers and "
            "presets, expand_prompt to preview a prompt, generate_video to make a video."
        ),
        on_list_tools=list_tools,
        on_call_tool=call_tool,
    )


def session_manager(
    *, tasks: TaskService, prompts: PromptService, providers: ProviderRegistry, max_body_bytes: int
) -> StreamableHTTPSessionManager:
    """The SDK's session manager for the tools, *stateless*: every POST carries its own request
    and answers on its own SSE stream (progress notifications included), so any replica can
    serve any call and nothing is kept between calls."""
    tools = McpTools(tasks=tasks, prompts=prompts, providers=providers)
    return StreamableHTTPSessionManager(
        app=build_server(tools),
        stateless=True,
        # The same body limit as every other route ([server] max_body_bytes).
        max_request_body_size=max_body_bytes,
    )
