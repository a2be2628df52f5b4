"""``generate_video``: create a gateway task and wait (bounded) for its video."""

from __future__ import annotations

import base64
from collections.abc import Generator
from typing import Any

from dify_plugin import Tool
from dify_plugin.entities.tool import ToolInvokeMessage
from dify_plugin.file.file import File
from tools.gateway_api import Gateway, task_messages

DEFAULT_MAX_WAIT_S = 120.0


def _data_url(image: File) -> str:
    """The image as a ``data:`` URL: the plugin can read Dify's file URL, the gateway may not."""
    mime = image.mime_type or "image/png"
    return f"data:{mime};base64,{base64.b64encode(image.blob).decode()}"


class GenerateVideoTool(Tool):
    def _invoke(self, tool_parameters: dict[str, Any]) -> Generator[ToolInvokeMessage, None, None]:
        body: dict[str, Any] = {"prompt": str(tool_parameters.get("prompt") or "")}
        if tool_parameters.get("aspect_ratio"):
            body["aspect_ratio"] = tool_parameters["aspect_ratio"]
        if tool_parameters.get("duration") not in (None, ""):
            body["duration_ms"] = round(float(tool_parameters["duration"]) * 1000)
        for name in ("style", "platform", "provider"):
            value = str(tool_parameters.get(name) or "").strip()
            if value:
                body[name] = value
        if tool_parameters.get("expand_prompt") is not None:
            body["expand_prompt"] = bool(tool_parameters["expand_prompt"])
        image = tool_parameters.get("image")
        if isinstance(image, File):
            body["image_url"] = _data_url(image)
        max_wait = tool_parameters.get("max_wait")
        max_wait_s = DEFAULT_MAX_WAIT_S if max_wait in (None, "") else max(0.0, float(max_wait))

        with Gateway(self.runtime.credentials) as gateway:
            key = str(tool_parameters.get("idempotency_key") or "")
            task = gateway.wait(gateway.create_task(body, idempotency_key=key), max_wait_s)
        yield from task_messages(self, task)
