"""Volcengine visual API emulator (Jimeng ``CVSync2AsyncSubmitTask`` / ``GetResult``).

Verifies the V4 signature the way the API gateway does — written here independently of
``app.providers.volc_sign`` so that a shared mistake cannot pass: the credential's access key,
scope date (= X-Date's date), region and service; ``X-Date`` within ±5 minutes; the signed
headers (must include ``host`` and ``x-date``); ``X-Content-Sha256`` = sha256(body); and the
signature itself. Gateway errors come back as ``ResponseMetadata.Error``, business errors as
``{"code", "message", "data": null}``.

Trigger words: ``BLOCKED_INPUT`` (50411 at submit), ``BLOCKED_OUTPUT`` (``done`` with 50511 at
get), ``EXPIRE_ME`` (status ``expired``). Faults: ``state.fail_next(code=50429, ...)``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import itertools
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import JSONResponse, Response

from tests.emulators.faults import Fault, Faults, Videos, fault_response

VERSION = "2022-08-31"
REQ_KEYS_T2V = frozenset({"jimeng_t2v_v30", "jimeng_t2v_v30_1080p", "jimeng_vgfm_t2v_l20"})
REQ_KEYS_I2V = frozenset({"jimeng_i2v_first_v30", "jimeng_vgfm_i2v_l20", "jimeng_ti2v_v30_pro"})
REQ_KEYS_TAIL = frozenset({"jimeng_i2v_first_tail_v30"})
RATIOS = ("16:9", "4:3", "1:1", "3:4", "9:16", "21:9")
GATEWAY_ERRORS: dict[int, tuple[str, int]] = {
    100002: ("MissingParameter", 400),
    100006: ("InvalidTimestamp", 400),
    100008: ("InvalidActionOrVersion", 404),
    100009: ("InvalidAccessKey", 401),
    100010: ("SignatureDoesNotMatch", 401),
    100013: ("AccessDenied", 403),
    100018: ("FlowLimitExceeded", 429),
}
BUSINESS_STATUS = {50429: 429, 50430: 429, 50500: 500, 50501: 500}


def gateway_error(code_n: int, message: str = "") -> JSONResponse:
    code, status = GATEWAY_ERRORS[code_n]
    return JSONResponse(
        {
            "ResponseMetadata": {
                "RequestId": "20250101000000EMULATOR",
                "Action": "",
                "Version": VERSION,
                "Service": "cv",
                "Region": "cn-north-1",
                "Error": {"CodeN": code_n, "Code": code, "Message": message or code},
            }
        },
        status_code=status,
    )


def business(code: int, message: str, data: Any = None, status: int = 200) -> JSONResponse:
    return JSONResponse(
        {
            "code": code,
            "data": data,
            "message": message,
            "request_id": "emulator",
            "time_elapsed": "12ms",
        },
        status_code=status,
    )


@dataclass
class JimengTask:
    id: str
    req_key: str
    created: float
    outcome: str  # succeeded | blocked_output | expired


@dataclass
class JimengOfficialState:
    access_key: str = "AKLTtestaccesskey"
    secret_key: str = "dGVzdHNlY3JldGtleQ=="
    region: str = "cn-north-1"
    service: str = "cv"
    max_skew_s: float = 300.0
    queued_s: float = 0.1
    running_s: float = 0.2
    status_alias: dict[str, str] = field(default_factory=dict)
    faults: Faults = field(default_factory=Faults)
    videos: Videos = field(default_factory=Videos)
    tasks: dict[str, JimengTask] = field(default_factory=dict)
    submits: int = 0
    submit_bodies: list[dict[str, Any]] = field(default_factory=list)
    gets: int = 0
    signature_failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def slow_answer_next(self, hold_s: float, *, times: int = 1) -> None:
        """The next ``times`` submits make their task, then hold the answer ``hold_s``."""
        self.faults.add(Fault(op="submit-answer", status=None, times=times, hold_s=hold_s))

    def fail_next(
        self,
        code: int,
        *,
        times: int = 1,
        on: str = "submit",
        status: int | None = None,
        retry_after: float | None = None,
        garbage: bool = False,
    ) -> None:
        """Business (5xxxx) or gateway (1000xx) error code for the next ``times`` calls."""
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        if code in GATEWAY_ERRORS:
            name, default_status = GATEWAY_ERRORS[code]
            body: Any = {"ResponseMetadata": {"Error": {"CodeN": code, "Code": name}}}
        else:
            default_status = BUSINESS_STATUS.get(code, 400)
            body = {"code": code, "data": None, "message": f"injected {code}"}
        self.faults.add(
            Fault(
                op=on,
                status=status or default_status,
                times=times,
                body=body,
                headers=headers,
                garbage=garbage,
            )
        )


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def verify_signature(
    state: JimengOfficialState, request: Request, body: bytes
) -> JSONResponse | None:
    """None when the request is properly signed; else the gateway's error answer."""
    auth = request.headers.get("authorization")
    x_date = request.headers.get("x-date")
    if not auth or not x_date:
        return gateway_error(100002, "missing Authorization or X-Date")
    try:
        when = dt.datetime.strptime(x_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return gateway_error(100006, "X-Date is malformed")
    if abs((dt.datetime.now(dt.UTC) - when).total_seconds()) > state.max_skew_s:
        return gateway_error(100006, "X-Date is too far from the server time")
    try:
        algorithm, rest = auth.split(" ", 1)
        parts = dict(p.strip().split("=", 1) for p in rest.split(","))
        credential = parts["Credential"].split("/")
        signed = parts["SignedHeaders"].split(";")
        given = parts["Signature"]
    except (ValueError, KeyError):
        return gateway_error(100010, "Authorization is malformed")
    if algorithm != "HMAC-SHA256" or len(credential) != 5 or credential[4] != "request":
        return gateway_error(100010, "Authorization is malformed")
    ak, date, region, service, _ = credential
    if ak != state.access_key:
        return gateway_error(100009, "the access key does not exist")
    if date != x_date[:8] or region != state.region or service != state.service:
        state.signature_failures.append("scope")
        return gateway_error(100010, "credential scope mismatch")
    if "host" not in signed or "x-date" not in signed or signed != sorted(signed):
        state.signature_failures.append("signed headers")
        return gateway_error(100010, "signed headers must include host and x-date")
    body_hash = hashlib.sha256(body).hexdigest()
    declared = request.headers.get("x-content-sha256")
    if declared is not None and declared != body_hash:
        state.signature_failures.append("payload hash")
        return gateway_error(100010, "X-Content-Sha256 does not match the body")
    pairs = urllib.parse.parse_qsl(request.url.query, keep_blank_values=True)
    query = "&".join(
        f"{k}={v}"
        for k, v in sorted(
            (urllib.parse.quote(k, safe="-_.~"), urllib.parse.quote(v, safe="-_.~"))
            for k, v in pairs
        )
    )
    headers = "".join(f"{name}:{(request.headers.get(name) or '').strip()}\n" for name in signed)
    canonical = "\n".join(
        [request.method, request.url.path or "/", query, headers, ";".join(signed), body_hash]
    )
    scope = f"{date}/{region}/{service}/request"
    to_sign = "\n".join(
        ["HMAC-SHA256", x_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _hmac(_hmac(_hmac(_hmac(state.secret_key.encode(), date), region), service), "request")
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given):
        state.signature_failures.append("signature")
        return gateway_error(100010, "the request signature does not match")
    return None


def create_app(state: JimengOfficialState | None = None) -> FastAPI:
    state = state or JimengOfficialState()
    app = FastAPI()
    app.state.emulator = state
    ids = itertools.count(1)

    def status_of(task: JimengTask) -> str:
        age = time.monotonic() - task.created
        if task.outcome == "expired" and age >= state.queued_s:
            word = "expired"
        elif age < state.queued_s:
            word = "in_queue"
        elif age < state.queued_s + state.running_s:
            word = "generating"
        else:
            word = "done"
        return state.status_alias.get(word, word)

    def submit(payload: dict[str, Any]) -> JSONResponse:
        req_key = payload.get("req_key")
        if req_key not in REQ_KEYS_T2V | REQ_KEYS_I2V | REQ_KEYS_TAIL:
            return business(50400, f"invalid req_key {req_key}", status=400)
        prompt = payload.get("prompt")
        if req_key in REQ_KEYS_T2V and (not isinstance(prompt, str) or not prompt):
            return business(50400, "prompt is required", status=400)
        if isinstance(prompt, str) and len(prompt) > 800:
            return business(50400, "prompt is too long", status=400)
        if payload.get("frames", 121) not in (121, 241):
            return business(50400, "frames must be 121 or 241", status=400)
        if "aspect_ratio" in payload and payload["aspect_ratio"] not in RATIOS:
            return business(50400, "aspect_ratio is invalid", status=400)
        seed = payload.get("seed", -1)
        if isinstance(seed, bool) or not isinstance(seed, int):
            return business(50400, "seed must be an integer", status=400)
        images = payload.get("image_urls") or []
        if not isinstance(images, list) or not all(isinstance(u, str) for u in images):
            return business(50400, "image_urls must be a list of URLs", status=400)
        wanted = 2 if req_key in REQ_KEYS_TAIL else 1 if req_key in REQ_KEYS_I2V else 0
        if len(images) != wanted:
            return business(50400, f"{req_key} takes {wanted} image(s)", status=400)
        if isinstance(prompt, str) and "BLOCKED_INPUT" in prompt:
            return business(50411, "Pre Img Risk Not Pass", status=400)
        outcome = "succeeded"
        if isinstance(prompt, str) and "BLOCKED_OUTPUT" in prompt:
            outcome = "blocked_output"
        elif isinstance(prompt, str) and "EXPIRE_ME" in prompt:
            outcome = "expired"
        with state.lock:
            state.submits += 1
            state.submit_bodies.append(payload)
            task_id = f"{7000000000000000000 + next(ids)}"
            state.tasks[task_id] = JimengTask(task_id, req_key, time.monotonic(), outcome)
        return business(10000, "Success", {"task_id": task_id})

    def get_result(payload: dict[str, Any], base_url: str) -> JSONResponse:
        state.gets += 1
        task = state.tasks.get(str(payload.get("task_id")))
        if task is None:
            return business(10000, "Success", {"status": "not_found", "video_url": ""})
        if payload.get("req_key") != task.req_key:
            return business(50400, "req_key does not match the task", status=400)
        word = status_of(task)
        if word == "done" and task.outcome == "blocked_output":
            return business(50511, "Post Img Risk Not Pass", {"status": "done", "video_url": ""})
        data: dict[str, Any] = {"status": word, "video_url": ""}
        if word == "done":
            data["video_url"] = f"{base_url}videos/{task.id}.mp4?x-expires=3600"
        return business(10000, "Success", data)

    @app.post("/")
    async def api(request: Request) -> Response:
        body = await request.body()
        failure = verify_signature(state, request, body)
        if failure is not None:
            return failure
        action = request.query_params.get("Action")
        if request.query_params.get("Version") != VERSION or action not in (
            "CVSync2AsyncSubmitTask",
            "CVSync2AsyncGetResult",
        ):
            return gateway_error(100008)
        op = "submit" if action == "CVSync2AsyncSubmitTask" else "get"
        fault = state.faults.take(op)
        if fault is not None:
            if fault.delay_s:
                await asyncio.sleep(fault.delay_s)
            if fault.status is not None or fault.garbage:
                return fault_response(fault, {"code": 50500, "data": None, "message": "?"})
        try:
            import json

            payload = json.loads(body)
        except ValueError:
            return business(50400, "the body is not JSON", status=400)
        if not isinstance(payload, dict):
            return business(50400, "the body must be an object", status=400)
        if op == "submit":
            answer = submit(payload)
            held = state.faults.take("submit-answer")
            if held is not None:
                await asyncio.sleep(held.hold_s)  # the task exists; the answer is late
            return answer
        return get_result(payload, str(request.base_url))

    @app.get("/videos/{name}")
    async def video(name: str, request: Request) -> Response:
        return await state.videos.serve(request)

    return app
