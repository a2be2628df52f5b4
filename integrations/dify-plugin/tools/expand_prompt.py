"""``expand_prompt``: the prompt a video task would send, without generating anything."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from dify_plugin import Tool
from dify_plugin.entities.tool import ToolInvokeMessage
from tools.gateway_api import Gateway


class ExpandPromptTool(Tool):
    def _invoke(self, tool_parameters: dict[str, Any]) -> Generator[ToolInvokeMessage, None, None]:
        body: dict[str, Any] = {"prompt": str(tool_parameters.get("prompt") or "")}
        for name in ("style", "template", "platform", "provider"):
            value = str(tool_parameters.get(name) or "").strip()
            if value:
                body[name] = value
        with Gateway(self.runtime.credentials) as gateway:
            result = gateway.expand(body)
        yield self.create_variable_message("expanded_prompt", result["expanded_prompt"])
        yield self.create_variable_message("expanded_by", result["expanded_by"])
        yield self.create_json_message(result)
        yield self.create_text_message(result["expanded_prompt"])
