"""Variations: ``n`` request bodies for one idea, each a separate task under one group id.

Variants differ by style (when a list of styles is given; it is cycled) and always by seed, so
two variants with the same style are still different videos. Seeds are deterministic: the
request's own seed plus the variant's index, or, without one, a number derived from the body,
so that a retried create (same body) yields the same variants.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from app.errors import ValidationError

MAX_VARIANTS = 8
_SEED_SPACE = 2**32 - 1  # seeds are 0 .. 2**32 - 2 (the request schema allows up to 2**32 - 1)


def _base_seed(body: Mapping[str, Any]) -> int:
    seed = body.get("seed")
    if isinstance(seed, int) and seed >= 0:
        return seed
    canonical = json.dumps({k: v for k, v in body.items() if k != "seed"}, sort_keys=True)
    return int.from_bytes(hashlib.sha256(canonical.encode()).digest()[:4], "big") % _SEED_SPACE


def make_variants(
    base_request_fields: Mapping[str, Any], n: int, *, styles: list[str] | None = None
) -> list[dict[str, Any]]:
    """``n`` copies of the request, variant ``i`` at index ``i``, each with its own seed and,
    when ``styles`` is given, the style ``styles[i % len(styles)]``.

    ``n == 1`` without styles returns the request unchanged (no seed is invented).
    """
    if not 1 <= n <= MAX_VARIANTS:
        raise ValidationError(f"n must be between 1 and {MAX_VARIANTS}, not {n}")
    if styles is not None and not styles:
        raise ValidationError("styles must name at least one style")
    base = dict(base_request_fields)
    if n == 1 and not styles:
        return [base]
    seed = _base_seed(base)
    variants = []
    for index in range(n):
        variant = dict(base)
        variant["seed"] = (seed + index) % _SEED_SPACE
        if styles:
            variant["style"] = styles[index % len(styles)]
        variants.append(variant)
    return variants
