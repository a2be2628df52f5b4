"""The gateway's public HTTP API as the plugin's tools call it, and the messages they answer with.

One small synchronous client (the Dify plugin runtime runs tools in gevent-patched threads, so
``httpx.Client`` does not block other invocations). Every gateway error body
``{"error": {"code", "message"}}`` becomes a :class:`GatewayError` whose text names the code and
the message, never the token.

A create is sent with an ``Idempotency-Key``: the workflow's when it gives one (so a node that Dify
retries gets the task it already started), otherwise one per tool call. When a create's answer is
lost (a dropped connection, a time-out, a retryable 5xx or 429) it is sent again with the same
key, and the gateway answers with the task the first one made: a video is paid for once. Task
reads are sent again the same way, so one dropped poll does not fail a tool whose video is on
its way.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Callable, Generator, Mapping
from typing import Any

import httpx
from dify_plugin.entities.tool import ToolInvokeMessage
from dify_plugin.interfaces.tool import Tool

USER_AGENT = "dify-video-gateway-plugin/0.1.2"
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
#: The gateway answers a long-poll after at most 60 s; ask for less so a slow network still fits.
LONG_POLL_S = 25.0
#: A video's poster (``thumbnail_url``) is made just after the video is published: how long a
#: tool that has the video waits for it before answering without one.
POSTER_WAIT_S = 5.0
_TASK_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: How many times a create or a task read is sent when its answer is lost, and the pause before
#: the n-th resend (``n * RESEND_PAUSE_S``). A create keeps its Idempotency-Key: one task is made.
ATTEMPTS = 3
RESEND_PAUSE_S = 1.0
#: The gateway keeps a key for 200 characters; a longer one from a workflow is hashed down.
_MAX_KEY = 200


class GatewayError(Exception):
    """The gateway refused or could not be reached; ``code`` is the gateway's error code."""

    def __init__(
        self, message: str, *, code: str, status: int | None = None, retryable: bool = False
    ) -> None:
        where = f"HTTP {status} {code}" if status is not None else code
        super().__init__(f"{where}: {message}")
        self.code = code
        self.status = status
        #: Sending the same request again may work (the gateway says so, or no answer came).
        self.retryable = retryable


class Gateway:
    def __init__(self, credentials: Mapping[str, Any]) -> None:
        base_url = str(credentials.get("base_url") or "").strip().rstrip("/")
        token = str(credentials.get("token") or "").strip()
        if not base_url.startswith(("http://", "https://")):
            raise GatewayError(
                "the gateway base URL must start with http:// or https://", code="bad_credentials"
            )
        if not token:
            raise GatewayError("the API token is empty", code="bad_credentials")
        self.base_url = base_url
        self._client = httpx.Client(
            base_url=base_url,
            headers={"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT},
            timeout=httpx.Timeout(30.0, connect=10.0),
        )

    def __enter__(self) -> Gateway:
        return self

    def __exit__(self, *exc: object) -> None:
        self._client.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Mapping[str, Any] | None = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        wait_s: float = 0.0,
    ) -> Any:
        try:
            timeout = httpx.Timeout(30.0 + wait_s, connect=10.0)
            response = self._client.request(
                method, path, json=json, params=params, headers=headers, timeout=timeout
            )
        except httpx.TimeoutException as exc:
            raise GatewayError(
                f"the gateway at {self.base_url} did not answer in time",
                code="timeout",
                retryable=True,
            ) from exc
        except httpx.HTTPError as exc:
            raise GatewayError(
                f"cannot reach the gateway at {self.base_url} ({type(exc).__name__})",
                code="unreachable",
                retryable=True,
            ) from exc
        if response.status_code >= 400:
            code, message = "http_error", response.text[:300]
            retryable = response.status_code in {502, 503, 504}
            try:
                error = response.json()["error"]
                code, message = str(error["code"]), str(error["message"])
                retryable = bool(error.get("retryable", retryable))
            except (ValueError, KeyError, TypeError, AttributeError):
                pass
            raise GatewayError(message, code=code, status=response.status_code, retryable=retryable)
        return response.json()

    # --- the calls the tools make -----------------------------------------------------------

    def check(self) -> None:
        """A cheap authenticated call: proves the URL and the token."""
        self.call("GET", "/v1/tasks", params={"limit": 1})

    def create_task(
        self, body: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """The task ``body`` makes; sent again (same key) while its answer is lost."""
        headers = {"Idempotency-Key": task_key(idempotency_key)}
        return dict(_resent(lambda: self.call("POST", "/v1/tasks", json=body, headers=headers)))

    def get_task(self, task_id: str, *, wait_s: float = 0.0) -> dict[str, Any]:
        if not _TASK_ID.match(task_id):
            raise GatewayError(f"{task_id!r} is not a task id", code="validation_error")
        params = {"wait_s": wait_s} if wait_s > 0 else None
        path = f"/v1/tasks/{task_id}"
        return dict(_resent(lambda: self.call("GET", path, params=params, wait_s=wait_s)))

    def wait(self, task: dict[str, Any], max_wait_s: float) -> dict[str, Any]:
        """Long-poll ``task`` until it ends or ``max_wait_s`` has passed; the latest state."""
        deadline = time.monotonic() + max_wait_s
        while task.get("status") not in TERMINAL:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            task = self.get_task(str(task["id"]), wait_s=min(LONG_POLL_S, remaining))
        return self.with_poster(task)

    def with_poster(self, task: dict[str, Any]) -> dict[str, Any]:
        """``task`` read again, if it succeeded without a poster yet, until the poster is there
        (at most ``POSTER_WAIT_S``; the video is what matters, so then it goes without)."""
        deadline = time.monotonic() + POSTER_WAIT_S
        while (
            task.get("status") == "succeeded"
            and not task.get("thumbnail_url")
            and time.monotonic() < deadline
        ):
            time.sleep(0.25)
            task = self.get_task(str(task["id"]))
        return task

    def expand(self, body: Mapping[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.call("POST", "/v1/prompts/expand", json=body)
        return result


def _resent(send: Callable[[], Any]) -> Any:
    """``send()``'s answer, sending again (``ATTEMPTS`` in all) while it fails in a way that may
    pass: no answer, or an error the gateway calls retryable."""
    for attempt in range(1, ATTEMPTS):
        try:
            return send()
        except GatewayError as exc:
            if not exc.retryable:
                raise
        time.sleep(RESEND_PAUSE_S * attempt)
    return send()


def task_key(given: str | None) -> str:
    """The Idempotency-Key for a create: the workflow's (hashed if the gateway would refuse its
    length), else a fresh one for this tool call."""
    given = (given or "").strip()
    if not given:
        return f"dify-plugin-{uuid.uuid4().hex}"
    if len(given) > _MAX_KEY:
        return "dify-plugin-sha256-" + hashlib.sha256(given.encode()).hexdigest()
    return given


def task_outputs(task: Mapping[str, Any]) -> dict[str, Any]:
    """What a workflow reads from a task; fields the gateway does not send yet are empty."""
    return {
        "task_id": task.get("id") or "",
        "status": task.get("status") or "",
        "progress": task.get("progress") or 0,
        "video_url": task.get("video_url") or "",
        "thumbnail_url": task.get("thumbnail_url") or "",
        "expires_at": task.get("expires_at") or "",
        "provider": task.get("provider") or "",
        "prompt": task.get("prompt") or "",
        "expanded_prompt": task.get("expanded_prompt") or "",
        "error": task.get("error"),
    }


def task_messages(tool: Tool, task: Mapping[str, Any]) -> Generator[ToolInvokeMessage, None, None]:
    """The messages a task answers with: variables for workflows, JSON, and a line for chats.

    A failed or cancelled task raises :class:`GatewayError`, so that the tool node fails (and
    takes its fail branch) instead of passing on an empty URL.
    """
    outputs = task_outputs(task)
    if outputs["status"] in {"failed", "cancelled"}:
        error = outputs["error"] or {}
        raise GatewayError(
            f"task {outputs['task_id']} {outputs['status']}: "
            f"{error.get('message') or 'no reason given'}",
            code=str(error.get("code") or outputs["status"]),
        )
    for name in ("video_url", "task_id", "status", "progress", "thumbnail_url"):
        yield tool.create_variable_message(name, outputs[name])
    yield tool.create_json_message(outputs)
    if outputs["status"] == "succeeded":
        yield tool.create_link_message(outputs["video_url"])
        yield tool.create_text_message(
            f"Video ready: {outputs['video_url']} (task {outputs['task_id']}; the link expires at "
            f"{outputs['expires_at'] or 'the gateway-configured time'})."
        )
    else:
        yield tool.create_text_message(
            f"The video is still being generated (task {outputs['task_id']}, {outputs['status']}, "
            f"{outputs['progress']}%). Check it later with Get video and this task id."
        )
