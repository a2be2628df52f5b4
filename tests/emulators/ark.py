"""Volcengine Ark content-generation emulator (Seedance), faithful to Ark's published API.

Checks what Ark checks: the Bearer key, the model id, the ``content`` items, every output field's
type and range (``null`` means absent, as the official SDK sends it), text ``--flags`` as an older
alternative to the JSON fields. Per model (:data:`MODEL_TABLE`, from Ark's model table): which
modes it takes (text, first frame, first+last, 1–4 or 1–9 ``reference_image`` items that never
mix with frames, a ``draft_task`` alone), its duration range, audio (1.5 pro, 2.0), drafts (1.5
pro: 480p only, no last frame, no flex) and ``adaptive`` without an image (1.5 pro, 2.0).
``return_last_frame`` adds ``content.last_frame_url`` (a real PNG served at ``/frames/…``).

Tasks move queued → running → succeeded over ``queued_s`` +
``running_s`` seconds and their video is served by the emulator itself.

Slow creates: ``slow_answer_next(hold_s)`` makes the next creates take the job and then hold
the answer — the case that makes a naive client pay twice. ``jobs_for(prompt)`` counts the jobs
a prompt made (what a test about paying once must assert on).

Trigger words in the prompt: ``BLOCKED_INPUT`` (400 InputTextSensitiveContentDetected),
``BLOCKED_OUTPUT`` (task fails with OutputVideoSensitiveContentDetected), ``EXPIRE_ME`` (task
expires), ``FAIL_ME`` (task fails with InternalServiceError); an image URL containing ``blocked``
→ InputImageSensitiveContentDetected. Fault injection: ``emulator.state.fail_next(...)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import re
import struct
import threading
import time
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, Request
from starlette.responses import JSONResponse, Response

from tests.emulators.faults import Fault, Faults, Videos, fault_response


@dataclass(frozen=True)
class Model:
    """What one Ark model takes (Ark's model table for the content-generation API)."""

    modes: frozenset[str]  # t2v, first, first_last, reference, draft_task
    references: int = 0
    audio: bool = False
    draft: bool = False
    durations: tuple[int, int] = (2, 12)
    adaptive_text: bool = False
    default_resolution: str = "720p"
    reference_1080p: bool = True


_ALL_FRAMES = frozenset({"t2v", "first", "first_last"})
_PRO = Model(modes=_ALL_FRAMES, default_resolution="1080p")
_LITE_I2V = Model(
    modes=frozenset({"first", "first_last", "reference"}), references=4, reference_1080p=False
)
_V15 = Model(
    modes=_ALL_FRAMES | {"draft_task"},
    audio=True,
    draft=True,
    durations=(4, 12),
    adaptive_text=True,
)
_V20 = Model(
    modes=_ALL_FRAMES | {"reference"},
    references=9,
    audio=True,
    durations=(4, 15),
    adaptive_text=True,
)
MODEL_TABLE: dict[str, Model] = {
    "doubao-seedance-1-0-pro-250528": _PRO,
    "seedance-1-0-pro-250528": _PRO,
    "doubao-seedance-1-0-pro-fast-251015": Model(
        modes=frozenset({"t2v", "first"}), default_resolution="1080p"
    ),
    "doubao-seedance-1-0-lite-t2v-250428": Model(modes=frozenset({"t2v"})),
    "doubao-seedance-1-0-lite-i2v-250428": _LITE_I2V,
    "doubao-seedance-1-5-pro-251215": _V15,
    "seedance-1-5-pro-251215": _V15,
    "doubao-seedance-2-0-260128": _V20,
    "doubao-seedance-2-0-fast-260128": _V20,
}
MODELS = frozenset(MODEL_TABLE)
RESOLUTIONS = ("480p", "720p", "1080p")
ENDED = frozenset({"succeeded", "failed", "expired", "cancelled"})
#: Callbacks the emulator has on the wire at once (see ``callback_slots``).
CALLBACKS_IN_FLIGHT = 64
RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9")
CREATE_FIELDS = frozenset(
    {
        "model",
        "content",
        "callback_url",
        "return_last_frame",
        "service_tier",
        "execution_expires_after",
        "seed",
        "resolution",
        "ratio",
        "duration",
        "frames",
        "camera_fixed",
        "watermark",
        "generate_audio",
        "draft",
    }
)
FLAG_NAMES = {
    "resolution": "resolution",
    "rs": "resolution",
    "ratio": "ratio",
    "rt": "ratio",
    "duration": "duration",
    "dur": "duration",
    "fps": "fps",
    "seed": "seed",
    "camerafixed": "camera_fixed",
    "cf": "camera_fixed",
    "watermark": "watermark",
    "wm": "watermark",
}
_FLAG = re.compile(r"--(\w+)\s+(\S+)")
DEFAULT_ERRORS: dict[int, tuple[str, str]] = {
    400: ("InvalidParameter", "the request is invalid"),
    401: ("AuthenticationError", "The API key in the request is missing or invalid."),
    403: ("AccountOverdueError", "the account is overdue"),
    404: ("InvalidEndpointOrModel.NotFound", "the model does not exist"),
    429: ("ModelAccountRpmRateLimitExceeded", "request rate limit exceeded"),
    500: ("InternalServiceError", "internal error"),
    502: ("InternalServiceError", "bad gateway"),
    503: ("ServerOverloaded", "service overloaded"),
}


class ArkError(Exception):
    def __init__(self, status: int, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.param = status, code, message, param


def error_body(code: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "param": param, "type": "BadRequest"}}


@dataclass
class EmulatedTask:
    id: str
    model: str
    created: float  # monotonic, for the status timeline
    params: dict[str, Any]
    prompt: str
    images: list[dict[str, Any]]
    callback_url: str | None
    outcome: str  # succeeded | failed_output | failed_internal | expired
    created_at: int = field(default_factory=lambda: int(time.time()))  # what Ark reports
    cancelled: bool = False
    draft: bool = False
    draft_of: str | None = None  # a full render: the draft it renders


@dataclass
class ArkState:
    api_key: str = "ark-test-key"
    models: frozenset[str] = MODELS
    queued_s: float = 0.1
    running_s: float = 0.2
    # Relays show other words; e.g. {"queued": "pending"} to check "unknown = in progress".
    status_alias: dict[str, str] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)
    videos: Videos = field(default_factory=Videos)
    tasks: dict[str, EmulatedTask] = field(default_factory=dict)
    creates: int = 0
    create_bodies: list[dict[str, Any]] = field(default_factory=list)
    gets: int = 0
    lists: int = 0
    # When each status read (GET of one task, or a list) arrived (time.monotonic()).
    status_reads: list[float] = field(default_factory=list)
    # How many status reads (a GET, or a list page naming it) answered for each job.
    job_reads: Counter[str] = field(default_factory=Counter)
    # Each status read's time and the ids of the ended jobs it answered for.
    ended_reports: list[tuple[float, frozenset[str]]] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    callbacks_sent: list[tuple[str, str, int]] = field(default_factory=list)
    frames_served: int = 0
    frames_gone: bool = False  # the last-frame URL answers 404 (expired)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Every create: with this probability, take the job, then hold the answer slow_answer_s.
    slow_answer_ratio: float = 0.0
    slow_answer_s: float = 0.0
    slow_answers: int = 0
    rng: random.Random = field(default_factory=lambda: random.Random(7))
    # A video of its own for a job (e.g. a different clip per shot of a long video); None:
    # the shared ``videos``.
    video_of: Callable[[EmulatedTask], bytes | None] | None = None
    # A last frame of its own for a job (return_last_frame); None: LAST_FRAME_PNG.
    frame_of: Callable[[EmulatedTask], bytes | None] | None = None

    def fail_next(
        self,
        status: int = 500,
        *,
        times: int = 1,
        on: str = "create",
        retry_after: float | None = None,
        should_retry: bool | None = None,
        code: str | None = None,
        message: str | None = None,
        garbage: bool = False,
    ) -> None:
        """The next ``times`` calls of ``on`` (create|get|delete|list|any) answer ``status``."""
        headers: dict[str, str] = {}
        if retry_after is not None:
            headers["Retry-After"] = f"{retry_after:g}"
        if should_retry is not None:
            headers["x-should-retry"] = "true" if should_retry else "false"
        default_code, default_message = DEFAULT_ERRORS.get(status, ("InternalServiceError", "?"))
        body = error_body(code or default_code, message or default_message)
        self.faults.add(
            Fault(op=on, status=status, times=times, body=body, headers=headers, garbage=garbage)
        )

    def slow_next(self, delay_s: float, *, on: str = "create", times: int = 1) -> None:
        self.faults.add(Fault(op=on, status=None, times=times, delay_s=delay_s))

    def slow_answer_next(self, hold_s: float, *, times: int = 1) -> None:
        """The next ``times`` creates make their job, then hold the answer ``hold_s``."""
        self.faults.add(Fault(op="create-answer", status=None, times=times, hold_s=hold_s))

    def jobs_for(self, prompt: str) -> list[str]:
        """The ids of the jobs created for ``prompt`` (as sent: flags stripped)."""
        with self.lock:
            return [t.id for t in self.tasks.values() if t.prompt == prompt]

    def jobs(self) -> list[EmulatedTask]:
        with self.lock:
            return list(self.tasks.values())

    def finished_at(self, task_id: str) -> float:
        """When a job's outcome became visible (time.monotonic())."""
        task = self.tasks[task_id]
        return task.created + self.queued_s + self.running_s

    def reads_per_second(self, since: float, until: float) -> list[int]:
        """Status reads in each whole second from ``since`` to ``until``."""
        seconds = max(1, int(until - since + 0.999))
        counts = [0] * seconds
        for at in self.status_reads:
            if since <= at < until:
                counts[min(seconds - 1, int(at - since))] += 1
        return counts


def _png(width: int = 4, height: int = 4) -> bytes:
    """A real, tiny red PNG: what Ark returns as ``content.last_frame_url``."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


LAST_FRAME_PNG = _png()


def _require_bool(params: dict[str, Any], key: str) -> None:
    if key in params and not isinstance(params[key], bool):
        raise ArkError(400, "InvalidParameter", f"{key} must be a boolean", key)


def _coerce_flag(key: str, value: str) -> Any:
    if key in ("duration", "fps", "seed"):
        try:
            return int(value)
        except ValueError as exc:
            raise ArkError(400, "InvalidParameter", f"--{key} must be an integer", key) from exc
    if key in ("camera_fixed", "watermark"):
        if value.lower() not in ("true", "false"):
            raise ArkError(400, "InvalidParameter", f"--{key} must be true or false", key)
        return value.lower() == "true"
    return value


def _fail(message: str, param: str | None = None, code: str = "InvalidParameter") -> ArkError:
    return ArkError(400, code, message, param)


def _content(content: Any, model: Model) -> tuple[list[str], list[dict[str, Any]], str | None]:
    """Texts, images (url, role) and a draft task id, as Ark reads ``content``."""
    if not isinstance(content, list) or not content:
        raise ArkError(400, "MissingParameter", "content is required", "content")
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    drafts: list[str] = []
    for item in content:
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "text":
            if not isinstance(item.get("text"), str):
                raise _fail("text must be a string", "content.text")
            texts.append(item["text"])
        elif kind == "image_url":
            url = (item.get("image_url") or {}).get("url")
            if not isinstance(url, str) or not url.startswith(("http", "data:image/")):
                raise _fail("image_url.url is invalid", "content.image_url")
            role = item.get("role")
            if role not in (None, "first_frame", "last_frame", "reference_image"):
                raise _fail(f"unknown role {role}", "content.role")
            images.append({"url": url, "role": role})
        elif kind == "draft_task":
            draft_id = (item.get("draft_task") or {}).get("id")
            if not isinstance(draft_id, str) or not draft_id:
                raise _fail("draft_task.id is required", "content.draft_task")
            drafts.append(draft_id)
        else:
            raise _fail("content item type must be text|image_url|draft_task", "content.type")
    if len(texts) > 1:
        raise _fail("at most one text item", "content")
    if drafts:
        if len(drafts) > 1 or texts or images:
            raise _fail("a draft_task item goes alone in content", "content")
        if "draft_task" not in model.modes:
            raise _fail("the model does not render drafts", "content.draft_task")
        return [], [], drafts[0]
    roles = [image["role"] for image in images]
    if "reference_image" in roles:
        if any(role != "reference_image" for role in roles):
            raise _fail("reference images cannot be mixed with first/last frames", "content.role")
        if "reference" not in model.modes:
            raise _fail("the model does not take reference images", "content.role")
        if len(images) > model.references:
            raise _fail(f"at most {model.references} reference images", "content")
    elif len(images) > 2:
        raise _fail("at most two frame images", "content")
    elif len(images) == 2:
        if sorted(str(r) for r in roles) != ["first_frame", "last_frame"]:
            raise _fail("two images need first_frame and last_frame", "content.role")
        if "first_last" not in model.modes:
            raise _fail("the model does not take a last frame", "content.role")
    elif len(images) == 1:
        if roles[0] not in (None, "first_frame"):
            raise _fail("one image is the first frame", "content.role")
        if "first" not in model.modes:
            raise _fail("the model does not take images", "content.image_url")
    elif "t2v" not in model.modes:
        raise _fail("the model needs an image", "content")
    if not texts and not images:
        raise ArkError(400, "MissingParameter", "a text or an image is required", "content")
    return texts, images, None


def validate_create(
    body: Any, models: frozenset[str]
) -> tuple[str, dict[str, Any], str, list[dict[str, Any]], str | None]:
    """Return (model, effective params, prompt text, images, draft id) or raise ArkError."""
    if not isinstance(body, dict):
        raise _fail("the body must be a JSON object")
    body = {k: v for k, v in body.items() if v is not None}  # the SDK sends unset as null
    unknown = set(body) - CREATE_FIELDS
    if unknown:
        raise _fail(f"unknown parameter {sorted(unknown)[0]}")
    model_id = body.get("model")
    if not model_id:
        raise ArkError(400, "MissingParameter", "model is required", "model")
    if model_id not in models:
        raise ArkError(404, "InvalidEndpointOrModel.NotFound", f"model {model_id} does not exist")
    model = MODEL_TABLE.get(model_id, _PRO)
    texts, images, draft_of = _content(body.get("content"), model)
    text = texts[0] if texts else ""
    params: dict[str, Any] = {}
    for match in _FLAG.finditer(text):
        name = FLAG_NAMES.get(match.group(1).lower())
        if name is None:
            raise _fail(f"unknown flag --{match.group(1)}")
        params[name] = _coerce_flag(name, match.group(2))
    prompt = _FLAG.sub("", text).strip()
    for key in ("resolution", "ratio", "duration", "frames", "seed", "camera_fixed", "watermark"):
        if key in body:
            params[key] = body[key]  # JSON fields win over text flags
    for key in ("camera_fixed", "watermark", "return_last_frame", "generate_audio", "draft"):
        _require_bool({**params, **body}, key)
    reference = any(image["role"] == "reference_image" for image in images)
    if "resolution" in params:
        if params["resolution"] not in RESOLUTIONS:
            raise _fail("resolution is invalid", "resolution")
        if reference and params["resolution"] == "1080p" and not model.reference_1080p:
            raise _fail("reference images make at most 720p", "resolution")
    if "ratio" in params:
        allowed = (*RATIOS, "adaptive") if images or model.adaptive_text else RATIOS
        if params["ratio"] not in allowed or (reference and params["ratio"] == "adaptive"):
            raise _fail("ratio is invalid", "ratio")
    if "duration" in params:
        d, (low, high) = params["duration"], model.durations
        if isinstance(d, bool) or not isinstance(d, int) or not low <= d <= high:
            raise _fail(f"duration must be within [{low}, {high}]", "duration")
    if params.get("fps", 24) != 24:
        raise _fail("fps must be 24", "fps")
    if "seed" in params:
        seed = params["seed"]
        if isinstance(seed, bool) or not isinstance(seed, int) or not -1 <= seed <= 2**32 - 1:
            raise _fail("seed is out of range", "seed")
    if reference and "camera_fixed" in params:
        raise _fail("camera_fixed is not supported with reference images", "camera_fixed")
    if body.get("generate_audio") and not model.audio:
        raise _fail("the model does not generate audio", "generate_audio")
    tier = body.get("service_tier")
    if tier is not None and tier not in ("default", "flex"):
        raise _fail("service_tier is invalid", "service_tier")
    exp = body.get("execution_expires_after")
    if exp is not None and (
        isinstance(exp, bool) or not isinstance(exp, int) or not 3600 <= exp <= 259200
    ):
        raise _fail("execution_expires_after out of range", "execution_expires_after")
    if body.get("draft"):
        if not model.draft:
            raise _fail("the model has no draft mode", "draft")
        if params.get("resolution", "480p") != "480p":
            raise _fail("a draft is 480p only", "resolution")
        if body.get("return_last_frame"):
            raise _fail("a draft cannot return the last frame", "return_last_frame")
        if tier == "flex":
            raise _fail("a draft cannot use the flex tier", "service_tier")
        params["resolution"] = "480p"
    cb = body.get("callback_url")
    if cb is not None and (not isinstance(cb, str) or not cb.startswith("http")):
        raise _fail("callback_url is invalid", "callback_url")
    params.setdefault("duration", 5)
    params.setdefault("resolution", model.default_resolution)
    params.setdefault("ratio", "adaptive" if images else "16:9")
    params["service_tier"] = tier or "default"
    params["execution_expires_after"] = exp or 172800
    params["return_last_frame"] = bool(body.get("return_last_frame"))
    params["generate_audio"] = bool(body.get("generate_audio", model.audio))
    return model_id, params, prompt, images, draft_of


def create_app(state: ArkState | None = None) -> FastAPI:
    state = state or ArkState()
    clients: list[httpx.AsyncClient] = []

    def callback_client() -> httpx.AsyncClient:
        # One client for every callback (a client each costs an SSL context each), keeping no
        # connection: Ark calls back from many machines, and a pool of kept connections is
        # scanned whole by httpcore for every request.
        if not clients:
            limits = httpx.Limits(max_connections=CALLBACKS_IN_FLIGHT, max_keepalive_connections=0)
            clients.append(httpx.AsyncClient(timeout=5.0, limits=limits))
        return clients[0]

    # Ark sends callbacks from many machines; one client here must not queue a thousand of
    # them inside httpcore's pool, which scans every connection for every waiting request
    # (at 1,000 jobs the emulator spent its CPU there and callbacks arrived 30 s late, or
    # never: the queue's wait counted against the 5 s timeout).
    callback_slots = asyncio.Semaphore(CALLBACKS_IN_FLIGHT)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        for client in clients:
            await client.aclose()

    app = FastAPI(lifespan=lifespan)
    app.state.emulator = state
    ids = itertools.count(1)
    background: set[asyncio.Task[None]] = set()

    def authorized(request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {state.api_key}"

    def ark_error(exc: ArkError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, exc.param), status_code=exc.status)

    async def injected(op: str) -> Response | None:
        fault = state.faults.take(op)
        if fault is None:
            return None
        if fault.delay_s:
            await asyncio.sleep(fault.delay_s)
        if fault.status is None and not fault.garbage:
            return None
        return fault_response(fault, error_body("InternalServiceError", "injected"))

    def status_of(task: EmulatedTask) -> str:
        if task.cancelled:
            return "cancelled"
        age = time.monotonic() - task.created
        if age < state.queued_s:
            word = "queued"
        elif age < state.queued_s + state.running_s:
            word = "running"
        else:
            word = {
                "succeeded": "succeeded",
                "failed_output": "failed",
                "failed_internal": "failed",
                "expired": "expired",
            }[task.outcome]
        return state.status_alias.get(word, word)

    def task_object(task: EmulatedTask, base_url: str) -> dict[str, Any]:
        word = status_of(task)
        obj: dict[str, Any] = {
            "id": task.id,
            "model": task.model,
            "status": word,
            "content": None,
            "error": None,
            "seed": task.params.get("seed", 12345),
            "resolution": task.params["resolution"],
            "ratio": task.params["ratio"],
            "duration": task.params["duration"],
            "framespersecond": 24,
            "service_tier": task.params.get("service_tier", "default"),
            "execution_expires_after": task.params.get("execution_expires_after", 172800),
            "usage": None,
            "created_at": task.created_at,
            "updated_at": int(time.time()),
        }
        if word == "succeeded":
            obj["content"] = {
                "video_url": f"{base_url}videos/{task.id}.mp4?X-Tos-Expires=86400&X-Tos-Sig=abc"
            }
            if task.params.get("return_last_frame"):
                obj["content"]["last_frame_url"] = (
                    f"{base_url}frames/{task.id}.png?X-Tos-Expires=86400&X-Tos-Sig=abc"
                )
            obj["usage"] = {"completion_tokens": 108900, "total_tokens": 108900}
        elif word == "failed":
            if task.outcome == "failed_output":
                obj["error"] = {
                    "code": "OutputVideoSensitiveContentDetected",
                    "message": "The generated video may contain sensitive content.",
                }
            else:
                obj["error"] = {"code": "InternalServiceError", "message": "generation failed"}
        return obj

    async def send_callbacks(task: EmulatedTask, base_url: str) -> None:
        assert task.callback_url is not None
        seen: str | None = None
        changes = (task.created + state.queued_s, task.created + state.queued_s + state.running_s)
        client = callback_client()
        for _ in range(200):
            word = status_of(task)
            if word != seen:
                seen = word
                try:
                    async with callback_slots:
                        r = await client.post(task.callback_url, json=task_object(task, base_url))
                    state.callbacks_sent.append((task.id, word, r.status_code))
                except httpx.HTTPError:
                    state.callbacks_sent.append((task.id, word, 0))
            if word in ("succeeded", "failed", "expired", "cancelled"):
                return
            # Sleep until the next change (a cancel is noticed within 0.5 s).
            now = time.monotonic()
            upcoming = [at - now for at in changes if at > now]
            await asyncio.sleep(min([0.5, *upcoming]) + 0.001)

    @app.post("/contents/generations/tasks")
    async def create(request: Request) -> Response:
        if not authorized(request):
            return ark_error(ArkError(401, *DEFAULT_ERRORS[401]))
        faulty = await injected("create")
        if faulty is not None:
            return faulty
        try:
            body = await request.json()
        except ValueError:
            return ark_error(ArkError(400, "InvalidParameter", "the body is not valid JSON"))
        try:
            model, params, prompt, images, draft_of = validate_create(body, state.models)
            if draft_of is not None:
                draft = state.tasks.get(draft_of)
                if draft is None or not draft.draft or status_of(draft) != "succeeded":
                    raise _fail(f"draft task {draft_of} is not a succeeded draft", "draft_task")
                # The full render reuses the draft's inputs; only its own output fields apply.
                own = {k: params[k] for k in ("service_tier", "return_last_frame")}
                params = {**draft.params, **own, "resolution": body.get("resolution") or "720p"}
                prompt, images = draft.prompt, draft.images
        except ArkError as exc:
            return ark_error(exc)
        if "BLOCKED_INPUT" in prompt:
            return ark_error(
                ArkError(
                    400,
                    "InputTextSensitiveContentDetected",
                    "The request failed because the input text may contain sensitive content.",
                )
            )
        if any("blocked" in image["url"] for image in images):
            return ark_error(
                ArkError(
                    400,
                    "InputImageSensitiveContentDetected",
                    "The input image may contain sensitive content.",
                )
            )
        outcome = "succeeded"
        if "BLOCKED_OUTPUT" in prompt:
            outcome = "failed_output"
        elif "EXPIRE_ME" in prompt:
            outcome = "expired"
        elif "FAIL_ME" in prompt:
            outcome = "failed_internal"
        with state.lock:
            state.creates += 1
            state.create_bodies.append(body)
            task_id = f"cgt-2025{next(ids):08d}"
            task = EmulatedTask(
                id=task_id,
                model=model,
                created=time.monotonic(),
                params=params,
                prompt=prompt,
                images=images,
                callback_url=body.get("callback_url"),
                outcome=outcome,
                draft=bool(body.get("draft")),
                draft_of=draft_of,
            )
            state.tasks[task_id] = task
        if task.callback_url:
            job = asyncio.create_task(send_callbacks(task, str(request.base_url)))
            background.add(job)
            job.add_done_callback(background.discard)
        held = state.faults.take("create-answer")
        if held is not None:
            await asyncio.sleep(held.hold_s)  # the job exists; the answer is late
        elif state.slow_answer_ratio and state.rng.random() < state.slow_answer_ratio:
            state.slow_answers += 1
            await asyncio.sleep(state.slow_answer_s)
        return JSONResponse({"id": task_id})

    @app.get("/contents/generations/tasks/{task_id}")
    async def get(task_id: str, request: Request) -> Response:
        if not authorized(request):
            return ark_error(ArkError(401, *DEFAULT_ERRORS[401]))
        state.gets += 1
        started = time.monotonic()
        state.status_reads.append(started)
        faulty = await injected("get")
        if faulty is not None:
            return faulty
        task = state.tasks.get(task_id)
        if task is None:
            return ark_error(ArkError(404, "ResourceNotFound", f"task {task_id} not found"))
        obj = task_object(task, str(request.base_url))
        state.job_reads[task_id] += 1
        ended = frozenset({task_id} if obj["status"] in ENDED else ())
        state.ended_reports.append((started, ended))
        return JSONResponse(obj)

    @app.get("/contents/generations/tasks")
    async def list_tasks(request: Request) -> Response:
        if not authorized(request):
            return ark_error(ArkError(401, *DEFAULT_ERRORS[401]))
        state.lists += 1
        started = time.monotonic()  # every job ended by now is reported ended below
        state.status_reads.append(started)
        faulty = await injected("list")
        if faulty is not None:
            return faulty
        q = request.query_params
        try:
            page_size = int(q.get("page_size", "10"))
            page_num = int(q.get("page_num", "1"))
        except ValueError:
            return ark_error(ArkError(400, "InvalidParameter", "page_num/page_size must be ints"))
        if not 1 <= page_size <= 500:
            return ark_error(ArkError(400, "InvalidParameter", "page_size is invalid"))
        if not 1 <= page_num <= 500:
            return ark_error(ArkError(400, "InvalidParameter", "page_num is invalid"))
        # filter.task_ids: repeated (filter.task_ids=a&filter.task_ids=b, as Ark documents it);
        # a comma list is accepted too.
        wanted = {
            part.strip()
            for value in q.getlist("filter.task_ids")
            for part in value.split(",")
            if part.strip()
        }
        with state.lock:
            # Newest first, as Ark lists them.
            chosen = [
                t
                for t in reversed(state.tasks.values())
                if (not wanted or t.id in wanted)
                and (not q.get("filter.model") or t.model == q["filter.model"])
            ]
        items = [task_object(t, str(request.base_url)) for t in chosen]
        if q.get("filter.status"):
            items = [i for i in items if i["status"] == q["filter.status"]]
        start = (page_num - 1) * page_size
        page = items[start : start + page_size]
        ended = frozenset(i["id"] for i in page if i["status"] in ENDED)
        state.job_reads.update(i["id"] for i in page)
        state.ended_reports.append((started, ended))
        return JSONResponse({"total": len(items), "items": page})

    @app.delete("/contents/generations/tasks/{task_id}")
    async def delete(task_id: str, request: Request) -> Response:
        if not authorized(request):
            return ark_error(ArkError(401, *DEFAULT_ERRORS[401]))
        faulty = await injected("delete")
        if faulty is not None:
            return faulty
        task = state.tasks.get(task_id)
        if task is None:
            return ark_error(ArkError(404, "ResourceNotFound", f"task {task_id} not found"))
        state.deletes.append(task_id)
        word = status_of(task)
        if word == "queued":
            task.cancelled = True
        elif word == "running":
            return ark_error(
                ArkError(400, "OperationDenied", "a running task cannot be cancelled or deleted")
            )
        else:
            del state.tasks[task_id]
        return JSONResponse({})

    @app.get("/_emulator/jobs")
    async def jobs() -> Response:
        """Not Ark's: every job this emulator accepted, for tests that count provider jobs."""
        with state.lock:
            items = [
                {"id": task.id, "prompt": task.prompt, "status": status_of(task)}
                for task in state.tasks.values()
            ]
            return JSONResponse({"creates": state.creates, "jobs": items})

    @app.get("/videos/{name}")
    async def video(name: str, request: Request) -> Response:
        task = state.tasks.get(name.removesuffix(".mp4"))
        own = state.video_of(task) if state.video_of is not None and task is not None else None
        if own is not None:
            return await Videos(own).serve(request)
        return await state.videos.serve(request)

    @app.get("/frames/{name}")
    async def frame(name: str) -> Response:
        if state.frames_gone:
            return Response(b"NoSuchKey", status_code=404)
        state.frames_served += 1
        task = state.tasks.get(name.removesuffix(".png"))
        own = state.frame_of(task) if state.frame_of is not None and task is not None else None
        return Response(own or LAST_FRAME_PNG, media_type="image/png")

    return app
