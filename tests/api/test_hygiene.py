"""Small things a careful user trips over, each pinned by a test."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import app.__main__ as cli
from app.config import ConfigError, load_settings
from app.logs import log_context, make_handler
from tests.conftest import GatewayFactory, LiveGateway
from tests.fakes import ControlledProvider

QUICK = {"prompt": "hygiene", "duration_ms": 500, "fps": 4}


def test_links_use_the_request_host_when_bound_to_every_interface(
    gateway_factory: GatewayFactory, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="app"),
        gateway_factory({"server": {"host": "0.0.0.0"}}) as gateway,
    ):
        assert any("public_base_url" in r.getMessage() for r in caplog.records)
        done = gateway.client.post("/generate-video", json={**QUICK, "wait_s": 60}).json()
        assert done["video_url"].startswith(gateway.base_url + "/files/")
        assert "0.0.0.0" not in json.dumps(done)
        # X-Forwarded-* from a client that is not a trusted proxy changes nothing.
        spoofed = gateway.client.get(
            f"/v1/tasks/{done['task_id']}",
            headers={"X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https"},
        ).json()
        assert spoofed["video_url"].startswith(gateway.base_url + "/files/")
        assert httpx.get(spoofed["video_url"]).status_code == 200
        openapi = httpx.get(f"{gateway.base_url}/dify/openapi.json").json()
        assert openapi["servers"] == [{"url": gateway.base_url}]


def test_forwarded_headers_from_a_trusted_proxy(gateway_factory: GatewayFactory) -> None:
    with gateway_factory({"server": {"trusted_proxies": "127.0.0.1"}}) as gateway:
        task = gateway.client.post("/v1/tasks", json=QUICK).json()
        gateway.wait_task(task["id"], lambda t: t["status"] == "succeeded")
        seen = gateway.client.get(
            f"/v1/tasks/{task['id']}",
            headers={"X-Forwarded-Host": "videos.example.com", "X-Forwarded-Proto": "https"},
        ).json()
        assert seen["video_url"].startswith("https://videos.example.com/files/")


@pytest.mark.parametrize(
    "query",
    [
        {"exp": "²", "sig": "00"},
        {"exp": "١٢٣", "sig": "00"},  # Arabic-Indic digits: isdigit() holds
        {"exp": "99999999999", "sig": "é"},
        {"exp": "99999999999", "sig": "Ω" * 64},
        {"exp": "1" * 400, "sig": "00"},
    ],
)
def test_crafted_file_signatures_are_403(live_gateway: LiveGateway, query: dict[str, str]) -> None:
    answer = httpx.get(f"{live_gateway.base_url}/files/videos/x.mp4", params=query)
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "forbidden"


def test_a_chunked_body_over_the_limit_is_413(live_gateway: LiveGateway) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"prompt": "'
        for _ in range(40):
            yield b"x" * 32_768
        yield b'"}'

    answer = live_gateway.client.post(
        "/v1/tasks", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 413
    assert answer.json()["error"]["code"] == "payload_too_large"
    small = live_gateway.client.post(
        "/v1/tasks",
        content=iter([json.dumps(QUICK).encode()]),
        headers={"Content-Type": "application/json"},
    )
    assert small.status_code == 202, small.text


class ExplodingProvider(ControlledProvider):
    def plan(self, request: Any) -> dict[str, Any]:
        raise RuntimeError("bug in an adapter")


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = make_handler("json")
    handler.setStream(stream)  # type: ignore[attr-defined]
    logger = logging.getLogger("app")
    logger.addHandler(handler)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


def test_a_500_carries_the_request_id_and_so_does_its_log(
    gateway_factory: GatewayFactory, json_log: io.StringIO
) -> None:
    with gateway_factory(extra_providers={"boom": ExplodingProvider("boom")}) as gateway:
        answer = gateway.client.post(
            "/v1/tasks", json={**QUICK, "provider": "boom"}, headers={"X-Request-ID": "req-42"}
        )
    assert answer.status_code == 500
    assert answer.headers["x-request-id"] == "req-42"
    assert answer.json()["error"] == {
        "code": "internal_error",
        "message": "internal error",
        "retryable": True,
    }
    records = [json.loads(line) for line in json_log.getvalue().splitlines()]
    crash = [r for r in records if r["message"].startswith("unhandled error")]
    assert crash and crash[0]["request_id"] == "req-42"
    assert "bug in an adapter" in crash[0]["exception"]


def test_log_formats_render_context_and_extra_fields() -> None:
    logger = logging.getLogger("app.test_hygiene")
    logger.propagate = False
    outputs = {}
    for fmt in ("json", "text"):
        stream = io.StringIO()
        handler = make_handler(fmt)
        handler.setStream(stream)  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        with log_context(task_id="vt_1", provider="seedance"):
            logger.info("polled", extra={"stage": "generating", "delay_s": 1.5})
        logger.removeHandler(handler)
        outputs[fmt] = stream.getvalue()
    record = json.loads(outputs["json"])
    assert record["message"] == "polled" and record["request_id"] == "-"
    assert record["task_id"] == "vt_1" and record["provider"] == "seedance"
    assert record["stage"] == "generating" and record["delay_s"] == 1.5
    assert outputs["json"].count("\n") == 1
    text = outputs["text"]
    for part in ("polled", "task_id=vt_1", "provider=seedance", "stage=generating"):
        assert part in text


@pytest.fixture
def own_logging() -> Iterator[None]:
    """``serve`` sets up the app's log handler on the captured stderr; put the old one back, or
    later tests log into a closed stream past pytest's log capture."""
    logger = logging.getLogger("app")
    saved = (list(logger.handlers), logger.propagate, logger.level)
    yield
    logger.handlers[:], logger.propagate = saved[0], saved[1]
    logger.setLevel(saved[2])


def test_the_dev_token_is_printed_only_when_it_is_made(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    own_logging: None,
) -> None:
    """Also: ``--config X`` is honoured before the command and without one."""
    config = tmp_path / "gw.ini"
    config.write_text(f"[server]\ndata_dir = {tmp_path / 'data'}\nport = 8123\n")
    started: list[Any] = []

    def fake_run(app: Any, **kwargs: Any) -> None:  # the server itself is not under test
        started.append((app.state.settings, kwargs))

    import uvicorn

    monkeypatch.setattr(uvicorn, "run", fake_run)
    for env in [k for k in __import__("os").environ if k.startswith("VGW_")]:
        monkeypatch.delenv(env)
    assert cli.main(["--config", str(config), "serve"]) == 0
    first = capsys.readouterr().out
    token = (tmp_path / "data" / "dev-token").read_text().strip()
    assert token in first
    assert cli.main(["--config", str(config)]) == 0
    second = capsys.readouterr().out
    assert token not in second and "dev-token" in second
    assert [kwargs["port"] for _, kwargs in started] == [8123, 8123]
    assert all(s.data_dir == tmp_path / "data" for s, _ in started)


def test_a_malformed_ini_line_is_not_echoed(tmp_path: Path) -> None:
    path = tmp_path / "config.ini"
    path.write_text('[auth]\nvalid_tokens = ["ok-token-1234"]\nsk-live-SECRET-9f8e7d\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert "SECRET" not in str(caught.value) and "line(s) 3" in str(caught.value)
    path.write_text("api_key = sk-live-SECRET-9f8e7d\n[llm]\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(path, environ={})
    assert "SECRET" not in str(caught.value) and "line 1" in str(caught.value)


def test_generate_video_answers_what_was_generated(live_gateway: LiveGateway) -> None:
    done = live_gateway.client.post(
        "/generate-video",
        json={"prompt": "a dance", "platform": "douyin", "duration_ms": 1100, "fps": 4},
    )
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["aspect_ratio"] == "9:16"  # the preset's, not the default 16:9
    task = live_gateway.client.get(f"/v1/tasks/{body['task_id']}").json()
    params = task["params"]
    assert body["duration_ms"] == round(params["frames"] * 1000 / params["fps"])
