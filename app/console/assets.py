"""Content-hashed console assets and the page that loads them.

There is no bundler, so the hashing happens here, once per process: each file under
``static/`` is served as ``console/assets/<dir>/<name>.<hash>.<ext>`` with a year-long,
immutable cache. The modules import each other by their plain names (``./api.js``); an import
map in the page maps those names to the hashed URLs, and a ``modulepreload`` link per module
lets the browser fetch them all in parallel. Everything is gzipped once in memory, so a first
visit costs a few tens of kilobytes. URLs in the page are relative, so the console also works
behind a proxy that serves the gateway under a path prefix.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import mimetypes
from dataclasses import dataclass
from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
INDEX_TEMPLATE = Path(__file__).parent / "index.html"
ASSETS_PREFIX = "console/assets/"
ENTRY_MODULE = "js/main.js"

_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


@dataclass(frozen=True)
class Asset:
    body: bytes
    gzipped: bytes
    media_type: str


@dataclass(frozen=True)
class ConsoleBundle:
    """The rendered page and its assets by hashed path (relative to ``console/assets/``)."""

    index_html: bytes
    script_hashes: tuple[str, ...]
    assets: dict[str, Asset]

    @classmethod
    def load(cls, static_dir: Path = STATIC_DIR, template: Path = INDEX_TEMPLATE) -> ConsoleBundle:
        assets: dict[str, Asset] = {}
        hashed: dict[str, str] = {}
        for path in sorted(p for p in static_dir.rglob("*") if p.is_file()):
            logical = path.relative_to(static_dir).as_posix()
            if path.suffix not in _TYPES:
                continue  # sources only; nothing else is served
            body = path.read_bytes()
            digest = hashlib.sha256(body).hexdigest()[:12]
            name = f"{logical.removesuffix(path.suffix)}.{digest}{path.suffix}"
            media_type = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or ""
            assets[name] = Asset(body, gzip.compress(body, 9, mtime=0), media_type)
            hashed[logical] = name
        modules = sorted(name for name in hashed if name.endswith(".js"))
        imports = {f"./{ASSETS_PREFIX}{m}": f"./{ASSETS_PREFIX}{hashed[m]}" for m in modules}
        import_map = json.dumps({"imports": imports}, separators=(",", ":"))
        preloads = "\n".join(
            f'<link rel="modulepreload" href="{ASSETS_PREFIX}{hashed[m]}">' for m in modules
        )
        page = (
            template.read_text(encoding="utf-8")
            .replace("{{ stylesheet }}", ASSETS_PREFIX + hashed["console.css"])
            .replace("{{ import_map }}", import_map)
            .replace("{{ preloads }}", preloads)
            .replace("{{ entry }}", ASSETS_PREFIX + hashed[ENTRY_MODULE])
        )
        # The inline import map is the page's only inline script; CSP allows it by its hash.
        script_hash = base64.b64encode(hashlib.sha256(import_map.encode()).digest()).decode()
        return cls(page.encode(), (f"sha256-{script_hash}",), assets)

    def content_security_policy(self) -> str:
        scripts = " ".join(f"'{h}'" for h in self.script_hashes)
        return "; ".join(
            (
                "default-src 'self'",
                f"script-src 'self' {scripts}",
                "style-src 'self'",
                # Videos, posters and subtitles may live in object storage on another origin.
                "img-src 'self' data: blob: https: http:",
                "media-src 'self' blob: https: http:",
                "connect-src 'self'",
                "frame-ancestors 'none'",
                "base-uri 'self'",
                "form-action 'self'",
            )
        )
