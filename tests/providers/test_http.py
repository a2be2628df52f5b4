"""The outbound-call helper: which answers are retried, how long it waits, when it stops."""

from __future__ import annotations

import random
import ssl
from typing import Any

import anyio
import httpx
import pytest

from app.errors import ProviderError, ProviderOutcomeUnknownError
from app.providers.http import RetryPolicy, provider_client, retry_after_s, send
from tests.emulators.server import serve_in_thread

pytestmark = pytest.mark.anyio


def scripted(*answers: httpx.Response | Exception) -> tuple[httpx.AsyncClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return httpx.AsyncClient(transport=httpx.MockTransport(handler)), seen


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def policy(**changes: object) -> RetryPolicy:
    values: dict[str, object] = {"attempts": 4, "base_s": 0.5, "max_backoff_s": 8.0}
    values.update(changes)
    return RetryPolicy(rng=random.Random(7), **values)  # type: ignore[arg-type]


async def call(
    client: httpx.AsyncClient, pol: RetryPolicy, sleeps: Sleeps, *, creates: bool = False
) -> httpx.Response:
    return await send(
        client,
        lambda: client.build_request("POST", "http://p.test/x", json={}),
        provider="p",
        policy=pol,
        sleep=sleeps,
        creates=creates,
    )


async def test_retries_5xx_with_bounded_full_jitter_backoff() -> None:
    client, seen = scripted(httpx.Response(503), httpx.Response(500), httpx.Response(200))
    sleeps = Sleeps()
    response = await call(client, policy(), sleeps)
    assert response.status_code == 200 and len(seen) == 3
    assert len(sleeps.calls) == 2
    assert 0 <= sleeps.calls[0] <= 0.5 and 0 <= sleeps.calls[1] <= 1.0


async def test_honours_retry_after() -> None:
    client, _seen = scripted(httpx.Response(429, headers={"Retry-After": "3"}), httpx.Response(200))
    sleeps = Sleeps()
    assert (await call(client, policy(), sleeps)).status_code == 200
    assert sleeps.calls == [3.0]


async def test_retry_after_beyond_the_cap_returns_at_once() -> None:
    client, seen = scripted(httpx.Response(429, headers={"Retry-After": "120"}))
    sleeps = Sleeps()
    assert (await call(client, policy(max_retry_after_s=30), sleeps)).status_code == 429
    assert sleeps.calls == [] and len(seen) == 1


async def test_x_should_retry_false_stops_retrying() -> None:
    client, seen = scripted(httpx.Response(429, headers={"x-should-retry": "false"}))
    sleeps = Sleeps()
    assert (await call(client, policy(), sleeps)).status_code == 429
    assert len(seen) == 1


async def test_4xx_is_not_retried() -> None:
    client, seen = scripted(httpx.Response(400))
    assert (await call(client, policy(), Sleeps())).status_code == 400
    assert len(seen) == 1


async def test_attempts_are_bounded_and_the_last_answer_is_returned() -> None:
    client, seen = scripted(*(httpx.Response(502) for _ in range(4)))
    assert (await call(client, policy(attempts=4), Sleeps())).status_code == 502
    assert len(seen) == 4


async def test_transport_errors_become_a_retryable_provider_error() -> None:
    client, seen = scripted(*(httpx.ConnectError("refused") for _ in range(3)))
    with pytest.raises(ProviderError) as info:
        await call(client, policy(attempts=3), Sleeps())
    assert info.value.retryable and info.value.provider == "p" and len(seen) == 3
    assert isinstance(info.value.__cause__, httpx.ConnectError)


async def test_connect_only_policy_does_not_retry_a_read_timeout() -> None:
    client, seen = scripted(httpx.ReadTimeout("slow"), httpx.Response(200))
    with pytest.raises(ProviderError):
        await call(client, policy(transport="connect"), Sleeps())
    assert len(seen) == 1


async def test_a_create_is_not_resent_once_it_may_have_arrived() -> None:
    for lost in (
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("dropped"),
        httpx.WriteError("cut"),
    ):
        client, seen = scripted(lost, httpx.Response(200))
        with pytest.raises(ProviderOutcomeUnknownError) as info:
            await call(client, policy(attempts=3), Sleeps(), creates=True)
        assert len(seen) == 1 and not info.value.retryable, lost


async def test_a_create_is_resent_when_it_surely_did_not_arrive() -> None:
    client, seen = scripted(httpx.ConnectError("refused"), httpx.Response(503), httpx.Response(200))
    response = await call(client, policy(attempts=3), Sleeps(), creates=True)
    assert response.status_code == 200 and len(seen) == 3


async def test_each_attempt_builds_a_fresh_request() -> None:
    client, _ = scripted(httpx.Response(503), httpx.Response(200))
    built = []

    def build() -> httpx.Request:
        built.append(1)
        return client.build_request("GET", "http://p.test/x")

    await send(client, build, provider="p", policy=policy(), sleep=Sleeps())
    assert len(built) == 2


async def test_retry_if_retries_a_busy_body() -> None:
    client, seen = scripted(httpx.Response(200, json={"code": 50429}), httpx.Response(200, json={}))
    response = await send(
        client,
        lambda: client.build_request("GET", "http://p.test/x"),
        provider="p",
        policy=policy(),
        retry_if=lambda r: r.json().get("code") == 50429,
        sleep=Sleeps(),
    )
    assert response.json() == {} and len(seen) == 2


def test_retry_after_parses_seconds_and_http_dates() -> None:
    import datetime as dt

    now = dt.datetime(2025, 1, 1, 0, 0, 0, tzinfo=dt.UTC)
    date = httpx.Response(429, headers={"Retry-After": "Wed, 01 Jan 2025 00:00:05 GMT"})
    assert retry_after_s(date, now=now) == 5.0
    assert retry_after_s(httpx.Response(429, headers={"Retry-After": "1.5"})) == 1.5
    assert retry_after_s(httpx.Response(429, headers={"Retry-After": "soon"})) is None
    assert retry_after_s(httpx.Response(429)) is None


async def test_an_idle_connection_is_dropped_before_servers_close_theirs() -> None:
    """uvicorn, Node.js and many gateways close a connection idle for 5 s, and a create sent on
    it at that moment loses its answer. The providers' client never sends on a connection idle
    that long: one idle for 4.5 s is replaced, one idle for a moment is used again."""

    async def app(scope: dict[str, Any], receive: Any, answer: Any) -> None:
        if scope["type"] != "http":
            return
        port = str(scope["client"][1]).encode()
        await answer({"type": "http.response.start", "status": 200, "headers": []})
        await answer({"type": "http.response.body", "body": port})

    with serve_in_thread(app, timeout_keep_alive=5) as base:  # uvicorn's default
        async with provider_client(ssl.create_default_context()) as client:
            first = (await client.get(base)).text
            again = (await client.get(base)).text
            await anyio.sleep(4.5)
            later = (await client.get(base)).text

    assert again == first  # kept alive
    assert later != first  # a new connection: the old one was not trusted past KEEPALIVE_S
