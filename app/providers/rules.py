"""The format of ``[providers] routes`` rules: checked when the settings load, matched per request.

This module depends on nothing of the gateway's own (the settings import it to check the rules
at start-up; ``app.providers.routing`` uses it to choose), so settings and routing never import
each other. The format is documented in ``app.providers.routing``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.providers.base import GenerationRequest

RULE_KEYS = frozenset({"if", "provider", "fallback", "name"})
BOOL_CONDITIONS = frozenset({"has_image", "has_last_frame", "has_reference_images"})
INT_CONDITIONS = frozenset({"min_duration_ms", "max_duration_ms"})
TEXT_CONDITIONS = frozenset({"platform", "style", "aspect_ratio"})
CONDITIONS = BOOL_CONDITIONS | INT_CONDITIONS | TEXT_CONDITIONS


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
        if key == "has_reference_images" and bool(request.reference_images) != expected:
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
