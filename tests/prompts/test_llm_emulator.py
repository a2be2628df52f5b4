"""The LLM emulator checks what a real OpenAI-compatible server checks (so tests can trust it)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.emulators.llm import API_KEY, MODEL
from tests.prompts.conftest import LlmServer

GOOD: dict[str, Any] = {"model": MODEL, "messages": [{"role": "user", "content": "a cat"}]}


def post(llm: LlmServer, body: Any, *, key: str = API_KEY) -> httpx.Response:
    return httpx.post(
        f"{llm.base_url}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        timeout=5,
    )


def test_a_good_request_gets_a_chat_completion(llm: LlmServer) -> None:
    response = post(llm, GOOD)
    assert response.status_code == 200
    choice = response.json()["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"].startswith("a cat.")
    assert choice["finish_reason"] == "stop"


def test_wrong_key_is_401(llm: LlmServer) -> None:
    response = post(llm, GOOD, key="sk-nope")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert [r.status for r in llm.emulator.requests()] == [401]


@pytest.mark.parametrize(
    "body",
    [
        {"messages": GOOD["messages"]},
        {"model": MODEL},
        {"model": MODEL, "messages": []},
        {"model": MODEL, "messages": [{"role": "wizard", "content": "x"}]},
        {"model": MODEL, "messages": [{"role": "user"}]},
        {"model": MODEL, "messages": [{"role": "user", "content": 3}]},
        {**GOOD, "temperature": 3},
        {**GOOD, "max_tokens": 0},
        {**GOOD, "stream": True},
        ["not", "an", "object"],
    ],
)
def test_malformed_requests_are_400(llm: LlmServer, body: Any) -> None:
    response = post(llm, body)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_unknown_model_is_404(llm: LlmServer) -> None:
    response = post(llm, {**GOOD, "model": "gpt-17"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


def test_scripted_failures_carry_retry_after(llm: LlmServer) -> None:
    llm.emulator.fail_next(429, retry_after=7)
    response = post(llm, GOOD)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert post(llm, GOOD).status_code == 200  # only the next one failed


def test_moderation_shape(llm: LlmServer) -> None:
    response = httpx.post(
        f"{llm.base_url}/v1/moderations",
        json={"input": ["fine", "FlagMe please"]},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=5,
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["flagged"] for r in results] == [False, True]
    assert results[1]["categories"]["violence"] is True
    bad = httpx.post(
        f"{llm.base_url}/v1/moderations",
        json={"input": 42},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=5,
    )
    assert bad.status_code == 400
