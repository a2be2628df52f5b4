"""Storage registry: ``[storage] backend`` name -> class, imported lazily."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.config import ConfigError

if TYPE_CHECKING:
    from app.config import Settings
    from app.storage.base import Storage

KNOWN_STORAGE: dict[str, str] = {
    "local": "app.storage.local:LocalStorage",
    "oss": "app.storage.oss:OssStorage",
    "s3": "app.storage.s3:S3Storage",
}


@dataclass(frozen=True, kw_only=True)
class StorageDeps:
    data_dir: Path
    public_base_url: str


def backend_name(settings: Settings) -> str:
    """``[storage] backend``; unset means OSS when the seed's ``[common] bucket`` is set."""
    if settings.storage.backend:
        return settings.storage.backend
    return "oss" if settings.common.bucket else "local"


def build_storage(settings: Settings, deps: StorageDeps) -> Storage:
    name = backend_name(settings)
    module_name, _, attr = KNOWN_STORAGE[name].partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(
            f"[storage] backend = {name}: the module {exc.name!r} is not installed"
        ) from exc
    cls: Any = getattr(module, attr)
    storage: Storage = cls.from_settings(settings, deps)
    return storage
