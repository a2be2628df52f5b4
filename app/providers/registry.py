"""Provider registry: name -> class, imported lazily (fsspec style).

Each provider class offers ``from_settings(settings, deps) -> provider | None``; ``None`` means
"not configured here" (no credentials), so the gateway starts with whatever is usable and
``preview`` always. Adding a vendor is one module and one line in ``KNOWN_PROVIDERS``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from app.errors import ValidationError
from app.providers.health import Breakers, CircuitBreaker

if TYPE_CHECKING:
    from app.config import Settings
    from app.providers.base import VideoProvider

KNOWN_PROVIDERS: dict[str, str] = {
    "preview": "app.providers.preview:PreviewProvider",
    "seedance": "app.providers.seedance:SeedanceProvider",
    "jimeng": "app.providers.jimeng:JimengProvider",
    "jimeng-official": "app.providers.jimeng:JimengOfficialEntry",
    "jimeng-relay": "app.providers.jimeng:JimengRelayEntry",
    "cogvideox": "app.providers.cogvideox:CogVideoXProvider",
}


@dataclass(kw_only=True)
class ProviderDeps:
    """Shared resources handed to providers; the app's lifespan owns and closes them."""

    http: httpx.AsyncClient
    #: For result URLs (videos, frames): one GET each, on connections that are not kept
    #: (``app.providers.download.download_client``).
    downloads: httpx.AsyncClient
    data_dir: Path
    public_base_url: str
    extra: dict[str, Any] = field(default_factory=dict)


def load_provider_class(name: str) -> Any:
    try:
        target = KNOWN_PROVIDERS[name]
    except KeyError:
        raise ValidationError(
            f"unknown provider {name!r}; known: {', '.join(sorted(KNOWN_PROVIDERS))}"
        ) from None
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise RuntimeError(f"provider {name!r} is not installed ({exc.name} missing)") from exc
    return getattr(module, attr)


class ProviderRegistry:
    """The providers configured in this process, by name, each with its circuit breaker."""

    def __init__(
        self,
        providers: dict[str, VideoProvider],
        *,
        default: str,
        breakers: Breakers | None = None,
    ) -> None:
        self._providers = providers
        self.default = default
        self.breakers = breakers or Breakers(providers)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        deps: ProviderDeps,
        *,
        extra: Mapping[str, VideoProvider] | None = None,
    ) -> ProviderRegistry:
        providers: dict[str, VideoProvider] = dict(extra or {})
        for name in KNOWN_PROVIDERS:
            if name in providers:
                continue
            try:
                provider_cls = load_provider_class(name)
            except RuntimeError:
                continue
            provider = provider_cls.from_settings(settings, deps)
            if provider is not None:
                providers[name] = provider
        default = settings.providers.default
        if default not in providers:
            raise ValidationError(
                f"[providers] default = {default!r} is not configured "
                f"(configured: {', '.join(sorted(providers))})"
            )
        breakers = Breakers(
            providers,
            failures_to_open=settings.providers.breaker_failures,
            open_s=settings.providers.breaker_open_s,
        )
        return cls(providers, default=default, breakers=breakers)

    def wrapped(self, wrap: Callable[[VideoProvider], VideoProvider]) -> ProviderRegistry:
        """The same providers, each passed through ``wrap`` (e.g. to add metrics)."""
        providers = {name: wrap(provider) for name, provider in self._providers.items()}
        return ProviderRegistry(providers, default=self.default, breakers=self.breakers)

    def get(self, name: str) -> VideoProvider:
        try:
            return self._providers[name]
        except KeyError:
            known = ", ".join(sorted(self._providers))
            raise ValidationError(
                f"provider {name!r} is not configured on this gateway (configured: {known})"
            ) from None

    def breaker(self, name: str) -> CircuitBreaker:
        return self.breakers[name]

    def names(self) -> list[str]:
        return list(self._providers)

    def __contains__(self, name: object) -> bool:
        return name in self._providers

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()
