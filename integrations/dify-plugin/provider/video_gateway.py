"""The tool provider: its credentials are the gateway's base URL and a bearer token."""

from __future__ import annotations

from typing import Any

from dify_plugin import ToolProvider
from dify_plugin.errors.tool import ToolProviderCredentialValidationError
from tools.gateway_api import Gateway, GatewayError


class VideoGatewayProvider(ToolProvider):
    def _validate_credentials(self, credentials: dict[str, Any]) -> None:
        """Saved only if the gateway answers an authenticated call with this URL and token."""
        try:
            with Gateway(credentials) as gateway:
                gateway.check()
        except GatewayError as exc:
            raise ToolProviderCredentialValidationError(str(exc)) from exc
