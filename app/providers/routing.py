"""Which provider serves a request, and which ones to fall back to.

Order: the request's ``provider``; else the first matching ``[providers] routes`` rule; else
``[providers] default``. ``[providers] fallback`` names the providers tried next when the chosen
one is down (connection errors, 5xx after retries, auth errors) — never after a rejection.

``routes`` is a JSON list of rules, tried in order; the first whose conditions all hold wins::

    routes = [
      {"if": {"has_image": true}, "provider": "seedance"},
      {"if": {"max_duration_ms": 10000}, "provider": "jimeng", "fallback": ["seedance"]},
      {"if": {"platform": ["douyin", "kuaishou"]}, "provider": "jimeng"},
      {"provider": "seedance"}
    ]

A provider whose circuit breaker is open (``app.providers.health``) is passed by while another
provider in the chain can take the request; the route reason says so.

Conditions (all optional; a rule without ``if`` always matches):

* ``min_duration_ms`` / ``max_duration_ms`` — inclusive bounds on the requested ``duration_ms``
* ``has_image`` / ``has_last_frame`` / ``has_reference_images`` — whether ``image_url`` /
  ``last_frame_url`` / ``reference_images`` are given
* ``platform``, ``style``, ``aspect_ratio`` — a value or a list of values (case-insensitive)

A rule may carry its own ``fallback`` list (replacing ``[providers] fallback``) and a ``name``
(shown in the task's route reason). Rules naming a provider that is not configured here, or one
that cannot take the request (an image to a text-only provider), are passed over. A request with
an image never lands on a provider without image input: if the default cannot take it, the first
capable provider in the fallback list is used. Unknown keys fail at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from app.errors import ValidationError
from app.providers.rules import rule_matches, validate_rules

if TYPE_CHECKING:
    from app.config import Settings
    from app.providers.base import GenerationRequest
    from app.providers.registry import ProviderRegistry

__all__ = ["RouteDecision", "choose_route", "rule_matches", "validate_rules"]


@dataclass(frozen=True)
class RouteDecision:
    chain: list[str]
    reason: str

    @property
    def primary(self) -> str:
        return self.chain[0]


def _capable(name: str, request: GenerationRequest, registry: ProviderRegistry) -> bool:
    if name not in registry:
        return False
    caps = registry.get(name).capabilities
    if request.image_url and not caps.image_input:
        return False
    if request.last_frame_url and not caps.last_frame:
        return False
    if len(request.reference_images) > caps.reference_images:
        return False
    return request.aspect_ratio in caps.aspect_ratios


def _describe(rule: dict[str, Any], index: int) -> str:
    label = rule.get("name") or f"#{index}"
    conditions = ", ".join(f"{k}={v}" for k, v in (rule.get("if") or {}).items()) or "always"
    return f"route rule {label} ({conditions})"


def choose_route(
    request: GenerationRequest,
    *,
    requested: str | None,
    registry: ProviderRegistry,
    settings: Settings,
) -> RouteDecision:
    if requested:
        registry.get(requested)  # raises ValidationError when not configured
        return RouteDecision([requested], f"requested provider {requested!r}")

    primary: str | None = None
    reason = ""
    fallback = list(settings.providers.fallback)
    skipped: list[str] = []
    for index, rule in enumerate(settings.providers.routes, start=1):
        if not rule_matches(rule, request):
            continue
        name = rule["provider"]
        if not _capable(name, request, registry):
            why = "not configured" if name not in registry else "cannot take this request"
            skipped.append(f"{_describe(rule, index)} -> {name} {why}")
            continue
        primary, reason = name, f"{_describe(rule, index)} matched"
        if "fallback" in rule:
            fallback = list(rule["fallback"])
        break

    if primary is None:
        default = registry.default
        if _capable(default, request, registry):
            primary, reason = default, "default provider"
        else:
            for name in fallback:
                if _capable(name, request, registry):
                    primary = name
                    reason = f"default provider {default!r} cannot take this request; fallback"
                    break
        if primary is None:
            if request.reference_images:
                needs = f"{len(request.reference_images)} reference_images"
            else:
                needs = "image input" if request.image_url else "this request"
            raise ValidationError(f"no configured provider supports {needs}")
    chain = [primary]
    for name in fallback:
        if name not in chain and _capable(name, request, registry):
            chain.append(name)
    # Providers whose circuit is open are passed by while another can take the task (when
    # none can, the chain stays: the pipeline fails fast or the half-open trial goes through).
    open_now = [name for name in chain if not registry.breaker(name).available()]
    if open_now and len(open_now) < len(chain):
        chain = [name for name in chain if name not in open_now]
        skipped += [f"{name} circuit open" for name in open_now]
        if primary in open_now:
            reason = f"{reason}; {primary} passed by"
    if skipped:
        reason += " (skipped: " + "; ".join(skipped) + ")"
    return RouteDecision(chain, reason)
