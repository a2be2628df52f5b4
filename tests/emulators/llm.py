"""OpenAI-compatible LLM emulator: ``POST /v1/chat/completions`` and ``POST /v1/moderations``.

Served over real HTTP (``serve_in_thread(emulator.app)``) and driven by the real ``openai`` SDK.
It checks what such servers check: the Bearer key (401 ``invalid_api_key``), the model (404
``model_not_found``) and the request's shape (400 ``invalid_request_error``: ``model`` a
string, ``messages`` a non-empty list of ``{role, content}`` with a known role and string
content, ``temperature`` within 0..2, ``max_tokens`` positive, no streaming).

By default a chat answer is a deterministic expansion of the first line of the last user
message — or, when the system prompt asks for a storyboard or a caption as JSON, a valid one
(``storyboard_answer``, ``caption_answer``). Tests script the next answers with
:meth:`LlmEmulator.script` — any content (empty, whitespace, a refusal, fenced, quoted, with a
preamble, very long), a ``refusal`` field, a ``finish_reason``, an HTTP error (429/500 with
``Retry-After``) or a delay (a slow answer that stops early when the client hangs up).
Every request is recorded, rejected ones too.

Moderation flags an input containing one of ``moderation_triggers`` (case-insensitive) with
the trigger's categories. Multi-modal input (``omni-moderation``: a list of ``{"type": "text",
"text"}`` / ``{"type": "image_url", "image_url": {"url"}}`` parts, at most one image, as
upstream) gets one result for the whole list; an image must be a ``data:image/…;base64`` URL
that decodes (else 400), and ``image_flagger`` decides on it — by default a mostly red image
is ``sexual`` (tests make "bad" frames red).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import itertools
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageStat
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

API_KEY = "sk-emulator-0123456789"
MODEL = "emu-chat-1"
ROLES = frozenset({"system", "user", "assistant", "developer", "tool"})
MODERATION_CATEGORIES = ("harassment", "hate", "illicit", "self-harm", "sexual", "violence")


@dataclass
class Reply:
    """One scripted answer. ``content=None`` means the default answer."""

    content: str | None = None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    finish_reason: str = "stop"
    refusal: str | None = None
    no_choices: bool = False
    times: int = 1
    op: str = "chat"


@dataclass(frozen=True)
class Recorded:
    op: str
    authorization: str | None
    body: Any
    status: int


def default_answer(messages: list[dict[str, Any]]) -> str:
    """What the model says when nothing is scripted: a storyboard or a caption (JSON) when the
    system prompt asks for one (the gateway's own system prompts), else an expansion."""
    system = next((m["content"] for m in messages if m["role"] == "system"), "")
    user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
    if '"shots"' in system:
        return storyboard_answer(str(user))
    if '"hashtags"' in system:
        return caption_answer(str(user))
    first = str(user).strip().splitlines()[0] if str(user).strip() else "a scene"
    idea = re.sub(r"^[^:：]{1,20}[:：]\s*", "", first).strip()
    if re.search(r"[\u4e00-\u9fff]", idea):
        return f"{idea}。光线柔和，细节丰富，镜头缓缓推进。"
    return f"{idea}. Soft natural light, rich detail, the camera slowly pushes in."


def _field(user: str, *names: str) -> str:
    for name in names:
        match = re.search(rf"^{name}\s*[:：]\s*(.+)$", user, re.M)
        if match:
            return match.group(1).strip()
    return ""


def storyboard_answer(user: str) -> str:
    """A valid storyboard for the asked number of shots, each repeating the same character,
    setting and style (what a good model does)."""
    idea = _field(user, "Idea", "创意") or "a scene"
    count = int(_field(user, "Shots", "镜头数") or 1)
    zh = bool(re.search(r"[\u4e00-\u9fff]", idea))
    if zh:
        bible = {"characters": "穿红色雨衣的小女孩", "setting": "海边小镇", "style": "水彩动画风格"}
        shots = [
            {
                "prompt": f"{idea}，第{i + 1}幕：穿红色雨衣的小女孩在海边小镇，水彩动画风格",
                "subtitle": f"{idea}（{i + 1}）",
            }
            for i in range(count)
        ]
    else:
        bible = {"characters": "a girl in a red raincoat", "setting": "a seaside town",
                 "style": "watercolor animation"}  # fmt: skip
        shots = [
            {
                "prompt": f"{idea}, part {i + 1}: a girl in a red raincoat in a seaside town, "
                "watercolor animation",
                "subtitle": f"{idea} ({i + 1})",
            }
            for i in range(count)
        ]
    return json.dumps({**bible, "shots": shots}, ensure_ascii=False)


def caption_answer(user: str) -> str:
    idea = _field(user, "Video idea", "视频创意") or "a scene"
    if re.search(r"[\u4e00-\u9fff]", idea):
        return json.dumps(
            {"caption": f"{idea}，看到最后有惊喜！", "hashtags": ["#AI视频", "#治愈", "#日常"]},
            ensure_ascii=False,
        )
    return json.dumps(
        {"caption": f"{idea} - watch till the end!", "hashtags": ["#aivideo", "#calm", "#daily"]}
    )


def mostly_red(image: Image.Image) -> list[str]:
    """The default image rule: a frame whose average colour is clearly red is ``sexual``."""
    r, g, b = ImageStat.Stat(image.convert("RGB")).mean
    return ["sexual"] if r > 150 and g < 90 and b < 90 else []


def decode_data_url(url: str) -> Image.Image | None:
    match = re.fullmatch(r"data:image/[\w.+-]+;base64,(.+)", url, re.S)
    if not match:
        return None
    try:
        image = Image.open(io.BytesIO(base64.b64decode(match.group(1), validate=True)))
        image.load()
    except (binascii.Error, OSError, ValueError):
        return None
    return image


def _error(status: int, message: str, kind: str, code: str | None) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return JSONResponse(body, status_code=status)


class LlmEmulator:
    def __init__(
        self,
        *,
        api_key: str = API_KEY,
        models: tuple[str, ...] = (MODEL,),
        moderation_triggers: dict[str, list[str]] | None = None,
        image_flagger: Callable[[Image.Image], list[str]] = mostly_red,
    ) -> None:
        self.api_key = api_key
        self.models = models
        self.moderation_triggers = moderation_triggers or {"flagme": ["violence"]}
        self.image_flagger = image_flagger
        self.images_seen: list[tuple[int, int]] = []  # sizes of the images moderated
        self._lock = threading.Lock()
        self._script: list[Reply] = []
        self._records: list[Recorded] = []
        self._ids = itertools.count(1)
        self._generation = 0  # bumped by reset(): late records of older requests are dropped
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/moderations", self._moderations, methods=["POST"]),
            ]
        )

    # --- test controls -----------------------------------------------------------------------

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def reply(self, content: str, **kwargs: Any) -> None:
        self.script(Reply(content=content, **kwargs))

    def fail_next(self, status: int, *, times: int = 1, retry_after: float | None = None) -> None:
        headers = {"retry-after": f"{retry_after:g}"} if retry_after is not None else {}
        self.script(Reply(status=status, headers=headers, times=times))

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self._records.clear()
            self.images_seen.clear()
            self._generation += 1

    def requests(self, op: str = "chat") -> list[Recorded]:
        with self._lock:
            return [r for r in self._records if r.op == op]

    def pending(self) -> int:
        with self._lock:
            return sum(r.times for r in self._script)

    # --- internals ---------------------------------------------------------------------------

    @staticmethod
    def _moderation_inputs(
        inputs: Any,
    ) -> list[tuple[list[str], list[Image.Image]]] | str:
        """The inputs to judge, one ``(texts, images)`` per result; an error text if malformed.

        A string or a list of strings: one result each. A list of typed parts: one result.
        """
        if isinstance(inputs, str):
            return [([inputs], [])]
        if isinstance(inputs, list) and inputs and all(isinstance(i, str) for i in inputs):
            return [([text], []) for text in inputs]
        if (
            not isinstance(inputs, list)
            or not inputs
            or not all(isinstance(i, dict) for i in inputs)
        ):
            return "'input' must be a string, a list of strings or a list of typed parts"
        texts: list[str] = []
        images: list[Image.Image] = []
        for index, part in enumerate(inputs):
            if part.get("type") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif part.get("type") == "image_url" and isinstance(part.get("image_url"), dict):
                url = part["image_url"].get("url")
                image = decode_data_url(url) if isinstance(url, str) else None
                if image is None:
                    return f"input[{index}].image_url.url is not a valid image data URL"
                images.append(image)
            else:
                return f"input[{index}] must be a text or an image_url part"
        if len(images) > 1:
            return "only one image per request is supported"
        return [(texts, images)]

    def _take(self, op: str) -> Reply | None:
        with self._lock:
            for reply in self._script:
                if reply.op == op:
                    reply.times -= 1
                    if reply.times <= 0:
                        self._script.remove(reply)
                    return reply
        return None

    def _record(self, op: str, request: Request, body: Any, status: int) -> None:
        with self._lock:
            if request.state.generation == self._generation:
                self._records.append(
                    Recorded(op, request.headers.get("authorization"), body, status)
                )

    async def _read(self, request: Request, op: str) -> tuple[Any, JSONResponse | None]:
        with self._lock:
            request.state.generation = self._generation
        try:
            body = await request.json()
        except ValueError:
            body = None
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            denied = _error(
                401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
            )
            self._record(op, request, body, 401)
            return body, denied
        if not isinstance(body, dict):
            self._record(op, request, body, 400)
            return body, _error(400, "body must be a JSON object", "invalid_request_error", None)
        return body, None

    @staticmethod
    def _shape_error(body: dict[str, Any]) -> str | None:
        if not isinstance(body.get("model"), str) or not body["model"]:
            return "'model' is required and must be a string"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "'messages' must be a non-empty list"
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in ROLES:
                return f"messages[{index}].role must be one of {sorted(ROLES)}"
            if not isinstance(message.get("content"), str):
                return f"messages[{index}].content must be a string"
        temperature = body.get("temperature")
        if temperature is not None and not (
            isinstance(temperature, int | float) and 0 <= temperature <= 2
        ):
            return "'temperature' must be between 0 and 2"
        max_tokens = body.get("max_tokens")
        if max_tokens is not None and not (isinstance(max_tokens, int) and max_tokens > 0):
            return "'max_tokens' must be a positive integer"
        if body.get("stream"):
            return "this emulator does not stream"
        return None

    @staticmethod
    async def _wait(request: Request, delay_s: float) -> bool:
        """Sleep ``delay_s``; ``False`` when the client hung up meanwhile."""
        deadline = time.monotonic() + delay_s
        while time.monotonic() < deadline:
            await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
            if await request.is_disconnected():
                return False
        return True

    async def _chat(self, request: Request) -> JSONResponse:
        body, denied = await self._read(request, "chat")
        if denied is not None:
            return denied
        problem = self._shape_error(body)
        if problem is not None:
            self._record("chat", request, body, 400)
            return _error(400, problem, "invalid_request_error", None)
        if body["model"] not in self.models:
            self._record("chat", request, body, 404)
            return _error(
                404,
                f"The model `{body['model']}` does not exist.",
                "invalid_request_error",
                "model_not_found",
            )
        reply = self._take("chat") or Reply()
        if reply.delay_s and not await self._wait(request, reply.delay_s):
            self._record("chat", request, body, 499)
            return JSONResponse({}, status_code=499)
        if reply.status is not None:
            self._record("chat", request, body, reply.status)
            kind = "rate_limit_exceeded" if reply.status == 429 else "server_error"
            response = _error(reply.status, f"emulated HTTP {reply.status}", kind, None)
            response.headers.update(reply.headers)
            return response
        self._record("chat", request, body, 200)
        content = default_answer(body["messages"]) if reply.content is None else reply.content
        choices = (
            []
            if reply.no_choices
            else [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": None if reply.refusal else content,
                        "refusal": reply.refusal,
                    },
                    "finish_reason": reply.finish_reason,
                    "logprobs": None,
                }
            ]
        )
        return JSONResponse(
            {
                "id": f"chatcmpl-emu-{next(self._ids)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": choices,
                "usage": {"prompt_tokens": 10, "completion_tokens": 10, "total_tokens": 20},
            },
            headers=reply.headers,
        )

    async def _moderations(self, request: Request) -> JSONResponse:
        body, denied = await self._read(request, "moderations")
        if denied is not None:
            return denied
        parsed = self._moderation_inputs(body.get("input"))
        if isinstance(parsed, str):
            self._record("moderations", request, body, 400)
            return _error(400, parsed, "invalid_request_error", None)
        reply = self._take("moderations") or Reply(op="moderations")
        if reply.delay_s and not await self._wait(request, reply.delay_s):
            self._record("moderations", request, body, 499)
            return JSONResponse({}, status_code=499)
        if reply.status is not None:
            self._record("moderations", request, body, reply.status)
            response = _error(reply.status, f"emulated HTTP {reply.status}", "server_error", None)
            response.headers.update(reply.headers)
            return response
        self._record("moderations", request, body, 200)
        results = []
        for texts, images in parsed:
            hits: dict[str, list[str]] = {}
            for text in texts:
                for trigger, categories in self.moderation_triggers.items():
                    if trigger.lower() in text.lower():
                        for category in categories:
                            hits.setdefault(category, []).append("text")
            for image in images:
                with self._lock:
                    self.images_seen.append(image.size)
                for category in self.image_flagger(image):
                    hits.setdefault(category, []).append("image")
            every = (*MODERATION_CATEGORIES, *hits)
            results.append(
                {
                    "flagged": bool(hits),
                    "categories": {c: c in hits for c in every},
                    "category_scores": {c: 0.99 if c in hits else 0.01 for c in every},
                    "category_applied_input_types": {
                        c: sorted(set(hits.get(c, []))) for c in every
                    },
                }
            )
        return JSONResponse(
            {
                "id": f"modr-emu-{next(self._ids)}",
                "model": body.get("model") or "omni-moderation-latest",
                "results": results,
            }
        )
