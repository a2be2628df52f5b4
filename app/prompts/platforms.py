"""Platform presets applied to a request, and what a provider cannot honour of them."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from app.prompts.catalog import PlatformPreset

if TYPE_CHECKING:
    from app.providers.base import Capabilities


def _ratio(value: str) -> float:
    width, _, height = value.partition(":")
    return float(width) / float(height)


def nearest_ratio(wanted: str, supported: Iterable[str]) -> str | None:
    """The supported aspect ratio closest in shape to ``wanted`` (``None`` if none)."""
    choices = sorted(supported)
    if not choices:
        return None
    target = math.log(_ratio(wanted))
    return min(choices, key=lambda r: abs(math.log(_ratio(r)) - target))


def platform_warnings(
    preset: PlatformPreset, capabilities: Capabilities, *, provider: str = "the provider"
) -> list[str]:
    """What ``provider`` cannot honour of ``preset`` (empty when it can make all of it)."""
    if preset.aspect_ratio in capabilities.aspect_ratios:
        return []
    closest = nearest_ratio(preset.aspect_ratio, capabilities.aspect_ratios)
    return [
        f"{provider} cannot make {preset.aspect_ratio} videos ({preset.name}'s format); "
        f"the closest it supports is {closest}"
    ]


def apply_platform(
    body: Mapping[str, Any],
    preset: PlatformPreset,
    *,
    explicit: Collection[str] | None = None,
    capabilities: Capabilities | None = None,
    provider: str = "the provider",
) -> tuple[dict[str, Any], list[str]]:
    """``body`` with the preset's aspect ratio, duration and resolution where the request left
    them unset, plus warnings.

    ``explicit`` names the fields the client set itself (pydantic's ``model_fields_set``);
    they are kept, with a warning when they differ from the preset. Without it, every field
    present in ``body`` counts as set. With ``capabilities``, a preset aspect ratio the
    provider cannot make is replaced by the closest one it can, with a warning.
    """
    chosen = set(body) if explicit is None else set(explicit)
    out = dict(body)
    warnings: list[str] = []
    for key, value in preset.fields().items():
        if key in chosen and out.get(key) is not None:
            if out[key] != value:
                warnings.append(
                    f"platform {preset.name} suggests {key} {value}; "
                    f"keeping the request's {out[key]}"
                )
            continue
        out[key] = value
    filled_ratio = not ("aspect_ratio" in chosen and body.get("aspect_ratio") is not None)
    if capabilities is not None and filled_ratio:
        missing = platform_warnings(preset, capabilities, provider=provider)
        closest = nearest_ratio(preset.aspect_ratio, capabilities.aspect_ratios)
        if missing and closest is not None:
            out["aspect_ratio"] = closest
            warnings.append(f"{missing[0]}; using {closest}")
    return out, warnings
