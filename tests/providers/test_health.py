"""Circuit breakers: open after failures in a row, one half-open trial, closed by a success;
routing passes an open provider by; the relay's risk control trips its breaker."""

from __future__ import annotations

from typing import Any

import pytest

from app.config import load_settings
from app.errors import ContentRejectedError, ProviderAuthError, ProviderError, ValidationError
from app.providers.base import Capabilities
from app.providers.health import Breakers, BreakerState, CircuitBreaker, Verdict, verdict
from app.providers.jimeng_relay import is_risk_control, relay_error
from app.providers.registry import ProviderRegistry
from app.providers.routing import choose_route
from tests.providers.conftest import request


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, failures: int = 3, open_s: float = 30.0) -> CircuitBreaker:
    return CircuitBreaker("seedance", failures, open_s, clock)


def test_failures_in_a_row_open_it_and_a_success_in_between_resets_the_count() -> None:
    clock = Clock()
    cb = breaker(clock)
    for _ in range(2):
        assert cb.allow()
        cb.record(Verdict.FAILURE, error="provider_error")
    cb.record(Verdict.SUCCESS)
    for _ in range(2):
        cb.record(Verdict.FAILURE, error="provider_error")
    assert cb.current() is BreakerState.CLOSED and cb.available()
    cb.record(Verdict.FAILURE, error="provider_error")
    assert cb.current() is BreakerState.OPEN
    assert not cb.available() and not cb.allow()
    assert cb.open_error().retryable and cb.open_error().retry_after_s == pytest.approx(30.0)
    assert cb.snapshot()["state"] == "open" and cb.times_opened == 1


def test_half_open_lets_one_trial_through_and_its_outcome_decides() -> None:
    clock = Clock()
    cb = breaker(clock, failures=1)
    cb.record(Verdict.FAILURE)
    clock.now += 29.9
    assert not cb.available()
    clock.now += 0.2
    assert cb.current() is BreakerState.HALF_OPEN
    assert cb.available()  # a look takes nothing
    assert cb.available()
    assert cb.allow()  # the trial
    assert not cb.available() and not cb.allow()  # only one at a time
    cb.record(Verdict.FAILURE, error="provider_error")  # the trial failed: open again
    assert cb.current() is BreakerState.OPEN and cb.times_opened == 2
    clock.now += 30
    assert cb.allow()
    cb.record(Verdict.SUCCESS)  # the trial worked: closed
    assert cb.current() is BreakerState.CLOSED and cb.failures == 0
    assert cb.allow() and cb.allow()


def test_a_trial_that_says_nothing_frees_the_slot() -> None:
    clock = Clock()
    cb = breaker(clock, failures=1)
    cb.record(Verdict.FAILURE)
    clock.now += 31
    assert cb.allow() and not cb.allow()
    cb.release()  # e.g. the task was cancelled mid-submit
    assert cb.allow()


def test_risk_control_trips_at_once() -> None:
    cb = breaker(Clock(), failures=5)
    cb.record(Verdict.TRIP, error="provider_error")
    assert cb.current() is BreakerState.OPEN


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (None, Verdict.SUCCESS),
        (ProviderError("503", retryable=True), Verdict.FAILURE),
        (ProviderAuthError("bad key"), Verdict.FAILURE),
        (ProviderError("shark", open_circuit=True), Verdict.TRIP),
        (ContentRejectedError("moderation"), Verdict.SUCCESS),
        (ValidationError("bad parameter"), Verdict.SUCCESS),
        (RuntimeError("a bug"), Verdict.NONE),
    ],
)
def test_what_an_outcome_says_about_the_provider(exc: Any, expected: Verdict) -> None:
    assert verdict(exc) is expected


@pytest.mark.parametrize(
    ("message", "risk"),
    [
        ("[请求失败]: shark not pass (错误码: 1019)", True),
        ("[请求失败]: shark check reject (错误码: -4)", True),
        ("[请求失败]: 生成失败，疑似存在异常行为，请重新尝试 (错误码: 4013)", True),
        ("[请求失败]: region not allow (错误码: 3000)", False),
        ("视频生成失败", False),
    ],
)
def test_relay_risk_control_answers_are_recognised(message: str, risk: bool) -> None:
    assert is_risk_control(message) is risk
    error = relay_error(-2001, message)
    assert isinstance(error, ProviderError) and error.open_circuit is risk and error.retryable


class Stub:
    def __init__(self, name: str) -> None:
        self.name = name
        self.capabilities = Capabilities(image_input=True)


def test_routing_passes_an_open_provider_by_and_says_so() -> None:
    names = ["seedance", "jimeng", "preview"]
    breakers = Breakers(names, failures_to_open=1)
    registry = ProviderRegistry(
        {n: Stub(n) for n in names},  # type: ignore[misc]
        default="seedance",
        breakers=breakers,
    )
    settings = load_settings(
        None, environ={}, overrides={"providers": {"default": "seedance", "fallback": "jimeng"}}
    )
    decision = choose_route(request(), requested=None, registry=registry, settings=settings)
    assert decision.chain == ["seedance", "jimeng"]
    breakers["seedance"].record(Verdict.FAILURE)
    decision = choose_route(request(), requested=None, registry=registry, settings=settings)
    assert decision.chain == ["jimeng"]
    assert "seedance passed by" in decision.reason and "seedance circuit open" in decision.reason
    # Nothing else to try: the chain stays (the pipeline fails fast or tries the half-open one).
    breakers["jimeng"].record(Verdict.FAILURE)
    decision = choose_route(request(), requested=None, registry=registry, settings=settings)
    assert decision.chain == ["seedance", "jimeng"]
