"""``/mcp`` driven by the official MCP client over Streamable HTTP against the live gateway."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import mcp.types as mcp_types
import pytest
from mcp import Client, MCPError
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from tests.conftest import LiveGateway
from tests.mp4 import probe

pytestmark = pytest.mark.anyio

FAST = {"duration_ms": 1000, "fps": 8}  # 8 frames: renders in well under a second


@asynccontextmanager
async def mcp_client(gateway: LiveGateway, token: str, **options: Any) -> AsyncIterator[Client]:
    """The SDK's high-level client, sending the token as a bearer header."""
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    async with (
        http,
        Client(streamable_http_client(f"{gateway.base_url}/mcp", http_client=http), **options) as c,
    ):
        yield c


def _structured(result: mcp_types.CallToolResult) -> dict[str, Any]:
    assert isinstance(result.structured_content, dict), result
    return result.structured_content


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_lists_the_five_tools_with_schemas_from_the_api_models(
    live_gateway: LiveGateway, mode: str
) -> None:
    async with mcp_client(live_gateway, live_gateway.token, mode=mode) as client:
        listed = await client.list_tools()

    tools = {tool.name: tool for tool in listed.tools}
    assert set(tools) == {"generate_video", "get_task", "list_tasks", "expand_prompt", "catalog"}
    video = tools["generate_video"].input_schema
    assert video["required"] == ["prompt"]
    assert video["properties"]["aspect_ratio"]["enum"] == [
        "16:9",
        "9:16",
        "1:1",
        "4:3",
        "3:4",
        "21:9",
    ]
    assert video["properties"]["style"]["type"] == "string"  # "str | None" flattened for forms
    assert video["additionalProperties"] is False
    assert tools["get_task"].input_schema["properties"]["wait_s"]["maximum"] == 60


@pytest.mark.parametrize("mode", ["auto", "legacy"])  # 2026-07-28, and the 2025 handshake
async def test_generate_video_reports_progress_and_returns_a_playable_mp4(
    live_gateway: LiveGateway, tmp_path: Path, mode: str
) -> None:
    updates: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, total, message))

    async with mcp_client(live_gateway, live_gateway.token, mode=mode) as client:
        result = await client.call_tool(
            "generate_video",
            {"prompt": "a paper boat on a pond", "aspect_ratio": "9:16", **FAST},
            progress_callback=on_progress,
        )

    assert not result.is_error, result
    task = _structured(result)
    assert task["status"] == "succeeded"
    links = [block for block in result.content if isinstance(block, mcp_types.ResourceLink)]
    assert [str(link.uri) for link in links] == [task["video_url"]]
    video = httpx.get(task["video_url"], timeout=30)
    assert video.status_code == 200
    path = tmp_path / "video.mp4"
    path.write_bytes(video.content)
    info = probe(path)
    assert (info.codec, info.frames) == ("h264", 8)
    assert info.width < info.height
    # Progress went out while it ran: from where the task started up to 100, never backwards.
    assert len(updates) >= 2, updates
    assert updates[-1][:2] == (100, 100)
    assert [u[0] for u in updates] == sorted(u[0] for u in updates)
    assert "succeeded" in (updates[-1][2] or "")
    # The task is the caller's own, under the same token on the HTTP API.
    assert live_gateway.client.get(f"/v1/tasks/{task['id']}").json()["status"] == "succeeded"


async def test_generate_video_past_its_budget_returns_the_task_to_poll(
    live_gateway: LiveGateway,
) -> None:
    async with mcp_client(live_gateway, live_gateway.token) as client:
        started = await client.call_tool(
            "generate_video", {"prompt": "a slow sunrise", "wait_s": 0, **FAST}
        )
        task = _structured(started)
        assert not started.is_error
        assert task["status"] in {"queued", "running"}
        assert any("get_task" in getattr(block, "text", "") for block in started.content)

        done = await client.call_tool("get_task", {"task_id": task["id"], "wait_s": 30})
        listed = await client.call_tool("list_tasks", {"limit": 5})

    assert _structured(done)["status"] == "succeeded"
    assert _structured(done)["video_url"]
    assert [t["id"] for t in _structured(listed)["data"]] == [task["id"]]


async def test_bad_arguments_are_tool_errors_not_transport_errors(
    live_gateway: LiveGateway,
) -> None:
    async with mcp_client(live_gateway, live_gateway.token) as client:
        bad_schema = await client.call_tool("generate_video", {"prompt": "", "duration_ms": -5})
        unknown_style = await client.call_tool(
            "generate_video", {"prompt": "a cat", "style": "no-such-style"}
        )
        missing = await client.call_tool("get_task", {"task_id": "vt_missing"})
        still_works = await client.call_tool("catalog", {})

    assert bad_schema.is_error
    assert _structured(bad_schema)["error"]["code"] == "validation_error"
    text = bad_schema.content[0].text  # type: ignore[union-attr]
    assert "prompt" in text and "duration_ms" in text
    assert unknown_style.is_error
    assert _structured(unknown_style)["error"]["code"] == "validation_error"
    assert "no-such-style" in json.dumps(_structured(unknown_style))
    assert missing.is_error and _structured(missing)["error"]["code"] == "not_found"
    # No task was created by the refused calls.
    assert live_gateway.client.get("/v1/tasks").json()["data"] == []
    catalog = _structured(still_works)
    assert {p["name"] for p in catalog["providers"]} >= {"preview"}
    assert catalog["styles"] and catalog["platforms"]


async def test_expand_prompt_matches_the_http_endpoint(live_gateway: LiveGateway) -> None:
    args = {"prompt": "小猫在窗台上晒太阳", "style": "cinematic", "platform": "douyin"}
    async with mcp_client(live_gateway, live_gateway.token) as client:
        result = await client.call_tool("expand_prompt", args)

    over_http = live_gateway.client.post("/v1/prompts/expand", json=args)
    assert over_http.status_code == 200
    assert _structured(result) == over_http.json()


async def test_tasks_are_per_token(live_gateway: LiveGateway) -> None:
    async with mcp_client(live_gateway, live_gateway.token) as client:
        made = _structured(
            await client.call_tool("generate_video", {"prompt": "a kite", "wait_s": 0, **FAST})
        )
    async with mcp_client(live_gateway, live_gateway.other_token) as other:
        theirs = await other.call_tool("get_task", {"task_id": made["id"]})
        listed = await other.call_tool("list_tasks", {})

    assert theirs.is_error and _structured(theirs)["error"]["code"] == "not_found"
    assert _structured(listed)["data"] == []


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({}, 401, "unauthorized"),
        ({"Authorization": "Basic dXNlcjpwdw=="}, 401, "unauthorized"),
        ({"Authorization": "Bearer not-a-known-token"}, 403, "forbidden"),
    ],
)
def test_a_wrong_token_is_refused_at_http_level(
    live_gateway: LiveGateway, headers: dict[str, str], status: int, code: str
) -> None:
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "0"},
        },
    }
    response = httpx.post(
        f"{live_gateway.base_url}/mcp",
        json=initialize,
        headers={"Accept": "application/json, text/event-stream", **headers},
        timeout=30,
    )

    assert response.status_code == status
    assert response.json()["error"]["code"] == code


async def test_the_sdk_client_fails_to_connect_with_a_wrong_token(
    live_gateway: LiveGateway,
) -> None:
    with pytest.raises(ExceptionGroup) as raised:
        async with mcp_client(live_gateway, "not-a-known-token") as client:
            await client.list_tools()

    assert raised.group_contains(MCPError, match="error response", depth=None)
