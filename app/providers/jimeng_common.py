"""What the two ways into Jimeng share: the provider name and the duration rule.

Both the official visual API and jimeng-free-api relays make 5 s or 10 s videos (121 / 241
frames at 24 fps).
"""

from __future__ import annotations

NAME = "jimeng"
DURATION_RULE = "5 s when duration_ms <= 7500, else 10 s"


def duration_s_for(duration_ms: int) -> int:
    """Jimeng makes 5 s or 10 s videos: ≤ 7.5 s → 5, longer → 10."""
    return 5 if duration_ms <= 7500 else 10


def frames_for(duration_ms: int) -> int:
    """Official API frame counts: 121 frames = 5 s, 241 = 10 s (24 fps + 1)."""
    return 121 if duration_s_for(duration_ms) == 5 else 241
