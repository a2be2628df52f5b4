"""Routing: requested provider, [providers] routes rules, default, capability-aware fallback."""

from __future__ import annotations

from typing import Any

import pytest

from app.config import ConfigError, Settings, load_settings
from app.errors import ValidationError
from app.providers.base import Capabilities
from app.providers.registry import ProviderRegistry
from app.providers.routing import choose_route
from tests.providers.conftest import request


class Stub:
    def __init__(self, name: str, *, image: bool = False, last: bool = False) -> None:
        self.name = name
        self.capabilities = Capabilities(image_input=image, last_frame=last)


def registry(default: str = "preview", *names: str) -> ProviderRegistry:
    stubs: dict[str, Any] = {
        "preview": Stub("preview"),
        "seedance": Stub("seedance", image=True, last=True),
        "jimeng": Stub("jimeng", image=True),
        "cogvideox": Stub("cogvideox"),
    }
    chosen = {n: stubs[n] for n in (names or stubs)}
    return ProviderRegistry(chosen, default=default)


def settings(routes: str = "", fallback: str = "", default: str = "preview") -> Settings:
    values = {"default": default, "routes": routes, "fallback": fallback}
    return load_settings(None, environ={}, overrides={"providers": values})


RULES = """[
  {"if": {"has_image": true}, "provider": "seedance"},
  {"name": "short", "if": {"max_duration_ms": 10000}, "provider": "jimeng",
   "fallback": ["seedance"]},
  {"if": {"platform": ["douyin", "Kuaishou"]}, "provider": "cogvideox"}
]"""


def test_the_requested_provider_wins() -> None:
    decision = choose_route(
        request(duration_ms=3000),
        requested="seedance",
        registry=registry(),
        settings=settings(RULES),
    )
    assert decision.chain == ["seedance"] and "requested" in decision.reason


def test_a_requested_provider_must_be_configured() -> None:
    with pytest.raises(ValidationError):
        choose_route(
            request(),
            requested="jimeng",
            registry=registry("preview", "preview"),
            settings=settings(),
        )


def test_duration_rule_with_its_own_fallback() -> None:
    decision = choose_route(
        request(duration_ms=8000), requested=None, registry=registry(), settings=settings(RULES)
    )
    assert decision.chain == ["jimeng", "seedance"]
    assert "route rule short (max_duration_ms=10000) matched" in decision.reason


def test_image_rule_first() -> None:
    decision = choose_route(
        request(image_url="https://i/a.png"),
        requested=None,
        registry=registry(),
        settings=settings(RULES),
    )
    assert decision.primary == "seedance" and "#1" in decision.reason


def test_platform_rule_is_case_insensitive() -> None:
    decision = choose_route(
        request(duration_ms=20000, options={"platform": "kuaishou"}),
        requested=None,
        registry=registry(),
        settings=settings(RULES),
    )
    assert decision.primary == "cogvideox"


def test_no_rule_matches_means_the_default_with_the_global_fallback() -> None:
    decision = choose_route(
        request(duration_ms=20000),
        requested=None,
        registry=registry(),
        settings=settings(RULES, fallback="jimeng, preview, nope"),
    )
    assert decision.chain == ["preview", "jimeng"] and decision.reason == "default provider"


def test_a_rule_for_an_unconfigured_provider_is_passed_over() -> None:
    decision = choose_route(
        request(duration_ms=3000),
        requested=None,
        registry=registry("preview", "preview", "seedance"),
        settings=settings(RULES),
    )
    assert decision.primary == "preview" and "jimeng not configured" in decision.reason


def test_an_image_never_lands_on_a_text_only_provider() -> None:
    req = request(image_url="https://i/a.png", last_frame_url="https://i/b.png")
    decision = choose_route(
        req, requested=None, registry=registry(), settings=settings(fallback="jimeng, seedance")
    )
    # jimeng takes images but not a last frame here; seedance takes both
    assert decision.chain == ["seedance"]
    with pytest.raises(ValidationError, match="image input"):
        choose_route(
            req, requested=None, registry=registry("preview", "preview"), settings=settings()
        )


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        ('[{"if": {"max_seconds": 5}, "provider": "jimeng"}]', "unknown condition 'max_seconds'"),
        ('[{"if": {"has_image": "yes"}, "provider": "jimeng"}]', "has_image must be true or false"),
        ('[{"if": {"max_duration_ms": "10s"}, "provider": "jimeng"}]', "whole number"),
        ('[{"if": {}}]', "'provider'"),
        ('[{"provider": "jimeng", "then": 1}]', "unknown key"),
        ('{"provider": "jimeng"}', "routes"),
    ],
)
def test_bad_rules_fail_at_start_naming_the_problem(routes: str, message: str) -> None:
    with pytest.raises(ConfigError, match="routes") as info:
        settings(routes)
    assert message in str(info.value)
