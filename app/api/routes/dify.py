"""``GET /dify/openapi.json``: the gateway as a Dify custom tool (Tools → Custom → Import from URL).

Dify's importer wants OpenAPI 3 with ``servers`` (the public base URL the tool calls), an
``operationId`` per operation and flat JSON request bodies whose properties become the tool's
parameters (string / number / integer / boolean only). The document is small and hand-shaped for
that importer rather than generated from the app's full schema; property names and enums come
from :class:`app.api.schemas.VideoCreate` so the two cannot drift apart silently. It is served
without auth because Dify fetches it before any credentials are configured; calling the tools
still needs the bearer token, set as the tool's "API Key (Bearer)" authorization.
"""

from __future__ import annotations

from typing import Any, get_args

from fastapi import APIRouter

from app import __version__
from app.api.deps import SettingsDep
from app.api.schemas import AspectRatio, VideoCreate
from app.urls import base_url

router = APIRouter(tags=["dify"])

# Dify gives API tools about 60 s (API_TOOL_DEFAULT_READ_TIMEOUT); stay below it.
TOOL_WAIT_S = 50


def _field(name: str) -> str:
    if name not in VideoCreate.model_fields:  # guards against a renamed field
        raise KeyError(name)
    return name


def _video_body(*, with_wait: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {
        _field("prompt"): {
            "type": "string",
            "description": "What the video shows: a short idea or a full prompt (1-2000 chars).",
        },
        _field("aspect_ratio"): {
            "type": "string",
            "enum": list(get_args(AspectRatio)),
            "default": "16:9",
            "description": "Frame shape.",
        },
        _field("duration_ms"): {
            "type": "integer",
            "default": 5000,
            "description": "Length in milliseconds (500-120000; beyond one clip the video "
            "is made of shots and joined).",
        },
        _field("fps"): {"type": "integer", "default": 24, "description": "Frames per second."},
        _field("expand_prompt"): {
            "type": "boolean",
            "description": "Let the gateway expand a short idea into a detailed prompt.",
        },
        _field("negative_prompt"): {"type": "string", "description": "What to avoid."},
    }
    if with_wait:
        properties[_field("wait_s")] = {
            "type": "number",
            "default": TOOL_WAIT_S,
            "description": (
                "Seconds to wait for the video before answering 202 with the task id. Keep it "
                f"at or below {TOOL_WAIT_S} when called as a Dify tool."
            ),
        }
    return {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"type": "object", "required": ["prompt"], "properties": properties}
            }
        },
    }


def openapi_document(base_url: str) -> dict[str, Any]:
    """The OpenAPI 3.0 document Dify's custom-tool importer accepts, calling ``base_url``."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Dify Video Gateway",
            "version": __version__,
            "description": "Turns a short idea into a hosted video URL.",
        },
        "servers": [{"url": base_url}],
        "components": {"securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearerAuth": []}],
        "paths": {
            "/generate-video": {
                "post": {
                    "operationId": "generateVideo",
                    "summary": "Generate a video and return its URL",
                    "description": (
                        "Renders the video and answers with video_url, filename and task_id. "
                        "If it takes longer than wait_s the answer is 202 with task_id: then "
                        "call getVideoTask with that id."
                    ),
                    "requestBody": _video_body(with_wait=True),
                    "responses": {
                        "200": {"description": "The video URL."},
                        "202": {"description": "Still running: poll getVideoTask."},
                    },
                }
            },
            "/v1/tasks": {
                "post": {
                    "operationId": "createVideoTask",
                    "summary": "Start a video job and return its task id at once",
                    "description": "Answers 202 with the task (id, status); poll getVideoTask.",
                    "requestBody": _video_body(with_wait=False),
                    "responses": {"202": {"description": "The task."}},
                }
            },
            "/v1/tasks/{task_id}": {
                "get": {
                    "operationId": "getVideoTask",
                    "summary": "Read a video task (status, video_url when done)",
                    "description": "With wait_s, waits up to that long for the task to end.",
                    "parameters": [
                        {
                            "name": "task_id",
                            "in": "path",
                            "required": True,
                            "description": "The task id from generateVideo or createVideoTask.",
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "wait_s",
                            "in": "query",
                            "required": False,
                            "description": f"Long-poll up to this many seconds (<= {TOOL_WAIT_S}).",
                            "schema": {"type": "number", "default": 25},
                        },
                    ],
                    "responses": {"200": {"description": "The task."}},
                }
            },
        },
    }


@router.get("/dify/openapi.json")
async def dify_openapi(settings: SettingsDep) -> dict[str, Any]:
    """OpenAPI document for adding the gateway as a Dify custom tool."""
    return openapi_document(base_url(settings.server.base_url()))
