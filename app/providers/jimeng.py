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

Both ways at once: when the mode serving ``jimeng`` is one and the other is configured too (a
relay session and official keys), the other is registered as a provider of its own,
``jimeng-official`` or ``jimeng-relay``, with its own circuit breaker, so that
``[providers] fallback = jimeng-official`` sends tasks to the official API while the relay is
refused by risk control.

The adapters import only ``jimeng_common``; this module imports them (no cycle).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.providers.jimeng_common import NAME, duration_s_for, frames_for
from app.providers.jimeng_official import JimengOfficialProvider
from app.providers.jimeng_relay import JimengRelayProvider

if TYPE_CHECKING:
    from app.config import Settings
    from app.providers.base import VideoProvider
    from app.providers.registry import ProviderDeps

__all__ = ["NAME", "duration_s_for", "frames_for", "relay_base_url", "resolve_mode"]

IMAGE_ENDPOINT_SUFFIX = "/v1/images/generations"
OFFICIAL_NAME = f"{NAME}-official"
RELAY_NAME = f"{NAME}-relay"


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


def official_ready(settings: Settings) -> bool:
    return settings.jimeng.access_key is not None and settings.jimeng.secret_key is not None


def relay_ready(settings: Settings) -> bool:
    return relay_session(settings) is not None and relay_base_url(settings) is not None


def resolve_mode(settings: Settings) -> str | None:
    """The mode ``jimeng`` runs in, or ``None`` when Jimeng is not configured."""
    mode = settings.jimeng.mode
    if mode == "official":
        return "official" if official_ready(settings) else None
    if mode == "relay":
        return "relay" if relay_ready(settings) else None
    if official_ready(settings):
        return "official"
    return "relay" if relay_ready(settings) else None


def build(settings: Settings, deps: ProviderDeps, mode: str, *, name: str) -> VideoProvider:
    if mode == "official":
        return JimengOfficialProvider(
            http=deps.http, settings=settings.jimeng, name=name, downloads=deps.downloads
        )
    base_url = relay_base_url(settings)
    session = relay_session(settings)
    assert base_url is not None and session is not None
    return JimengRelayProvider(
        http=deps.http,
        settings=settings.jimeng,
        base_url=base_url,
        session_id=session,
        name=name,
        downloads=deps.downloads,
    )


class JimengProvider:
    """Registry entry ``jimeng``: the official or the relay adapter, per ``resolve_mode``."""

    name = NAME

    @classmethod
    def from_settings(cls, settings: Settings, deps: ProviderDeps) -> VideoProvider | None:
        mode = resolve_mode(settings)
        return build(settings, deps, mode, name=NAME) if mode is not None else None


class JimengOfficialEntry:
    """Registry entry ``jimeng-official``: the official API when ``jimeng`` is the relay."""

    name = OFFICIAL_NAME

    @classmethod
    def from_settings(cls, settings: Settings, deps: ProviderDeps) -> VideoProvider | None:
        if resolve_mode(settings) == "relay" and official_ready(settings):
            return build(settings, deps, "official", name=OFFICIAL_NAME)
        return None


class JimengRelayEntry:
    """Registry entry ``jimeng-relay``: the relay when ``jimeng`` is the official API."""

    name = RELAY_NAME

    @classmethod
    def from_settings(cls, settings: Settings, deps: ProviderDeps) -> VideoProvider | None:
        if resolve_mode(settings) == "official" and relay_ready(settings):
            return build(settings, deps, "relay", name=RELAY_NAME)
        return None
