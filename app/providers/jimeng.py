"""Jimeng (ByteDance) video: one provider name, two ways in.

* ``mode = official`` — the Volcengine visual API (``CVSync2AsyncSubmitTask`` /
  ``CVSync2AsyncGetResult``) signed with AK/SK (``app.providers.volc_sign``); see
  ``jimeng_official.py``.
* ``mode = relay`` — a jimeng-free-api-compatible server (``POST {base}/v1/videos/generations``,
  ``Authorization: Bearer <sessionid>``) that blocks until the video is done; see
  ``jimeng_relay.py``. The seed's ``[video_api] cookie`` is the session id and the seed's
  ``[DEFAULT] image_generation_url`` names the relay (``/v1/images/generations`` stripped).

With ``[jimeng] mode`` unset the gateway picks ``official`` when keys are set, else ``relay``
when a session id and a relay URL are known, else Jimeng is not configured.

Durations: both modes make 5 s or 10 s videos (121 / 241 frames); ``duration_ms`` ≤ 7500 gives
5 s, longer gives 10 s. The task's ``params`` show the choice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.config import Settings
    from app.providers.base import VideoProvider
    from app.providers.registry import ProviderDeps

NAME = "jimeng"
IMAGE_ENDPOINT_SUFFIX = "/v1/images/generations"


def duration_s_for(duration_ms: int) -> int:
    """Jimeng makes 5 s or 10 s videos: ≤ 7.5 s → 5, longer → 10."""
    return 5 if duration_ms <= 7500 else 10


def frames_for(duration_ms: int) -> int:
    """Official API frame counts: 121 frames = 5 s, 241 = 10 s (24 fps + 1)."""
    return 121 if duration_s_for(duration_ms) == 5 else 241


def relay_base_url(settings: Settings) -> str | None:
    """``[jimeng] relay_url``, else the seed's image endpoint with its path stripped."""
    if settings.jimeng.relay_url:
        return settings.jimeng.relay_url.rstrip("/")
    seed_url = settings.seed_default.image_generation_url
    if not seed_url:
        return None
    base = seed_url.strip().rstrip("/")
    base = base.removesuffix(IMAGE_ENDPOINT_SUFFIX)
    return base.rstrip("/") or None


def relay_session(settings: Settings) -> str | None:
    session = settings.jimeng.session_id or settings.video_api.cookie
    return session.get_secret_value() if session is not None else None


def resolve_mode(settings: Settings) -> str | None:
    """The mode to run in, or ``None`` when Jimeng is not configured."""
    jimeng = settings.jimeng
    official_ready = jimeng.access_key is not None and jimeng.secret_key is not None
    relay_ready = relay_session(settings) is not None and relay_base_url(settings) is not None
    if jimeng.mode == "official":
        return "official" if official_ready else None
    if jimeng.mode == "relay":
        return "relay" if relay_ready else None
    if official_ready:
        return "official"
    return "relay" if relay_ready else None


class JimengProvider:
    """Registry entry: builds the official or the relay adapter from settings."""

    name = NAME

    @classmethod
    def from_settings(cls, settings: Settings, deps: ProviderDeps) -> VideoProvider | None:
        mode = resolve_mode(settings)
        if mode == "official":
            from app.providers.jimeng_official import JimengOfficialProvider

            return JimengOfficialProvider(http=deps.http, settings=settings.jimeng)
        if mode == "relay":
            from app.providers.jimeng_relay import JimengRelayProvider

            base_url = relay_base_url(settings)
            session = relay_session(settings)
            assert base_url is not None and session is not None
            return JimengRelayProvider(
                http=deps.http, settings=settings.jimeng, base_url=base_url, session_id=session
            )
        return None
