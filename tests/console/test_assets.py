"""The console page and its content-hashed assets, over HTTP (no browser)."""

from __future__ import annotations

import base64
import hashlib
import json
import re

import httpx

from app.console.assets import STATIC_DIR
from tests.conftest import LiveGateway


def page_parts(html: str) -> tuple[dict[str, str], list[str]]:
    """The import map and every asset URL the page references."""
    import_map = json.loads(re.search(r'<script type="importmap">(.*?)</script>', html, re.S)[1])
    urls = re.findall(r'(?:href|src)="(console/assets/[^"]+)"', html)
    imports = {k: v.removeprefix("./") for k, v in import_map["imports"].items()}
    return imports, urls


def test_page_is_public_revalidated_and_locked_down(live_gateway: LiveGateway) -> None:
    response = httpx.get(f"{live_gateway.base_url}/")  # no token
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-frame-options"] == "DENY"
    csp = response.headers["content-security-policy"]
    assert "connect-src 'self'" in csp and "unsafe-inline" not in csp
    # The one inline script (the import map) is allowed by its hash, nothing else inline.
    inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", response.text, re.S)
    assert len(inline) == 1
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert f"'sha256-{digest}'" in csp


def test_assets_are_content_addressed_and_cached_for_a_year(live_gateway: LiveGateway) -> None:
    html = httpx.get(f"{live_gateway.base_url}/").text
    imports, urls = page_parts(html)
    assert set(imports.values()) <= set(urls)  # every module is preloaded
    with httpx.Client(base_url=live_gateway.base_url) as plain:
        for url in sorted(set(urls) | set(imports.values())):
            response = plain.get(f"/{url}", headers={"Accept-Encoding": "gzip"})
            assert response.status_code == 200, url
            assert response.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert response.headers["content-encoding"] == "gzip"
            logical = re.sub(r"\.[0-9a-f]{12}(\.\w+)$", r"\1", url.removeprefix("console/assets/"))
            source = (STATIC_DIR / logical).read_bytes()
            assert response.content == source  # httpx decoded the gzip
            assert hashlib.sha256(source).hexdigest()[:12] in url
        identity = plain.get(f"/{urls[0]}", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in identity.headers
        missing = plain.get("/console/assets/js/main.000000000000.js")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_every_module_import_resolves_through_the_import_map(live_gateway: LiveGateway) -> None:
    """A typo in an import would only show as a 404 in a browser; catch it here."""
    imports, _ = page_parts(httpx.get(f"{live_gateway.base_url}/").text)
    sources = sorted(STATIC_DIR.rglob("*.js"))
    assert {f"./console/assets/{p.relative_to(STATIC_DIR).as_posix()}" for p in sources} == set(
        imports
    )
    for path in sources:
        module = f"console/assets/{path.relative_to(STATIC_DIR).as_posix()}"
        for spec in re.findall(r'^import .*? from "([^"]+)";', path.read_text(), re.M | re.S):
            resolved = httpx.URL(f"http://h/{module}").join(spec).path.lstrip("/")
            assert f"./{resolved}" in imports, f"{path.name} imports {spec}"


def test_first_load_is_small(live_gateway: LiveGateway) -> None:
    """The page and everything it preloads, as sent gzipped (the browser test measures it too)."""
    with httpx.Client(base_url=live_gateway.base_url) as client:
        page = client.get("/")
        _, urls = page_parts(page.text)
        sent = len(page.content)
        for url in set(urls):
            with client.stream("GET", f"/{url}", headers={"Accept-Encoding": "gzip"}) as response:
                sent += sum(len(chunk) for chunk in response.iter_raw())
    assert sent < 200_000
