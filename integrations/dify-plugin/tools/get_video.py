"""``get_video``: read a gateway task, long-polling a bounded time for it to end."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from dify_plugin import Tool
from dify_plugin.entities.tool import ToolInvokeMessage
from tools.gateway_api import Gateway, task_messages

DEFAULT_WAIT_S = 25.0
MAX_WAIT_S = 60.0  # the gateway's own long-poll limit


class GetVideoTool(Tool):
    def _invoke(self, tool_parameters: dict[str, Any]) -> Generator[ToolInvokeMessage, None, None]:
        task_id = str(tool_parameters.get("task_id") or "").strip()
        wait = tool_parameters.get("wait_s")
        wait_s = DEFAULT_WAIT_S if wait in (None, "") else min(MAX_WAIT_S, max(0.0, float(wait)))
        with Gateway(self.runtime.credentials) as gateway:
            task = gateway.get_task(task_id, wait_s=wait_s)
            if wait_s > 0:
                task = gateway.with_poster(task)
        yield from task_messages(self, task)
