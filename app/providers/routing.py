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

Conditions (all optional; a rule without ``if`` always matches):

* ``min_duration_ms`` / ``max_duration_ms`` — inclusive bounds on the requested ``duration_ms``
* ``has_image`` / ``has_last_frame`` — whether ``image_url`` / ``last_frame_url`` is given
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

if TYPE_CHECKING:
    from app.config import Settings
    from app.providers.base import GenerationRequest
    from app.providers.registry import ProviderRegistry

RULE_KEYS = frozenset({"if", "provider", "fallback", "name"})
BOOL_CONDITIONS = frozenset({"has_image", "has_last_frame"})
INT_CONDITIONS = frozenset({"min_duration_ms", "max_duration_ms"})
TEXT_CONDITIONS = frozenset({"platform", "style", "aspect_ratio"})
CONDITIONS = BOOL_CONDITIONS | INT_CONDITIONS | TEXT_CONDITIONS


@dataclass(frozen=True)
class RouteDecision:
    chain: list[str]
    reason: str

    @property
    def primary(self) -> str:
        return self.chain[0]


def validate_rules(rules: list[Any]) -> list[dict[str, Any]]:
    """Check ``[providers] routes``; raise ``ValueError`` naming the bad rule and key."""
    checked: list[dict[str, Any]] = []
    for index, rule in enumerate(rules, start=1):
        where = f"rule #{index}"
        if not isinstance(rule, dict):
            raise ValueError(f"{where}: must be an object like {{'if': {{...}}, 'provider': ...}}")
        unknown = set(rule) - RULE_KEYS
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; use {sorted(RULE_KEYS)}")
        if not isinstance(rule.get("provider"), str) or not rule["provider"]:
            raise ValueError(f"{where}: 'provider' (a provider name) is required")
        fallback = rule.get("fallback", [])
        if not isinstance(fallback, list) or not all(isinstance(n, str) for n in fallback):
            raise ValueError(f"{where}: 'fallback' must be a list of provider names")
        conditions = rule.get("if", {})
        if not isinstance(conditions, dict):
            raise ValueError(f"{where}: 'if' must be an object of conditions")
        for key, value in conditions.items():
            if key not in CONDITIONS:
                raise ValueError(f"{where}: unknown condition {key!r}; use {sorted(CONDITIONS)}")
            if key in BOOL_CONDITIONS and not isinstance(value, bool):
                raise ValueError(f"{where}: {key} must be true or false")
            if key in INT_CONDITIONS and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise ValueError(f"{where}: {key} must be a whole number of milliseconds")
            if key in TEXT_CONDITIONS and not (
                isinstance(value, str)
                or (isinstance(value, list) and all(isinstance(v, str) for v in value))
            ):
                raise ValueError(f"{where}: {key} must be a string or a list of strings")
        checked.append(rule)
    return checked


def _text(request: GenerationRequest, key: str) -> str | None:
    if key == "aspect_ratio":
        return request.aspect_ratio
    value = request.options.get(key)
    return str(value) if value is not None else None


def rule_matches(rule: dict[str, Any], request: GenerationRequest) -> bool:
    for key, expected in (rule.get("if") or {}).items():
        if key == "has_image" and bool(request.image_url) != expected:
            return False
        if key == "has_last_frame" and bool(request.last_frame_url) != expected:
            return False
        if key == "min_duration_ms" and request.duration_ms < expected:
            return False
        if key == "max_duration_ms" and request.duration_ms > expected:
            return False
        if key in TEXT_CONDITIONS:
            actual = _text(request, key)
            allowed = [expected] if isinstance(expected, str) else list(expected)
            if actual is None or actual.lower() not in {a.lower() for a in allowed}:
                return False
    return True


def _capable(name: str, request: GenerationRequest, registry: ProviderRegistry) -> bool:
    if name not in registry:
        return False
    caps = registry.get(name).capabilities
    if request.image_url and not caps.image_input:
        return False
    if request.last_frame_url and not caps.last_frame:
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
            needs = "image input" if request.image_url else "this request"
            raise ValidationError(f"no configured provider supports {needs}")
    if skipped:
        reason += " (skipped: " + "; ".join(skipped) + ")"
    chain = [primary]
    for name in fallback:
        if name not in chain and _capable(name, request, registry):
            chain.append(name)
    return RouteDecision(chain, reason)
