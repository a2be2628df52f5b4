"""``GET /v1/providers``: what a client may put in ``provider``."""

from __future__ import annotations

import httpx

from tests.conftest import GatewayFactory
from tests.fakes import ControlledProvider


def test_lists_the_configured_providers_default_first(gateway_factory: GatewayFactory) -> None:
    with gateway_factory(extra_providers={"fake": ControlledProvider()}) as gateway:
        body = gateway.client.get("/v1/providers").json()
        assert body["default"] == "preview"
        assert [p["name"] for p in body["data"]] == ["preview", "fake"]
        preview, fake = body["data"]
        assert preview["default"] is True and fake["default"] is False
        assert fake["capabilities"]["negative_prompt"] is True
        assert preview["capabilities"]["aspect_ratios"][0] == "16:9"
        # Only configured ones: no credentials, no Seedance.
        assert "seedance" not in {p["name"] for p in body["data"]}
        assert httpx.get(f"{gateway.base_url}/v1/providers").status_code == 401
