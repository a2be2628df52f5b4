"""deploy/compose.yaml and deploy/.env.example against the gateway's settings, without Docker.

The gateway refuses to start on an unknown key, so every ``VGW_`` variable the compose file
sets or the example file lists must be a real setting, and the configuration the stack hands
the gateways (example file, secrets filled in) must load.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from app.config import load_settings
from tests.deploy.conftest import ROOT

COMPOSE = ROOT / "deploy/compose.yaml"
ENV_EXAMPLE = ROOT / "deploy/.env.example"
SECRETS = {
    "VGW_AUTH__VALID_TOKENS": "token-one-0123456789,token-two-0123456789",
    "POSTGRES_PASSWORD": "0a1b2c3d4e5f",
    "REDIS_PASSWORD": "5f4e3d2c1b0a",
    "S3_ACCESS_KEY": "vgwaccess",
    "S3_SECRET_KEY": "a1b2c3d4e5f60718293a",
}
VARIABLE = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def example_values(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value
    return values


def interpolate(text: str, values: dict[str, str]) -> str:
    """Compose's ``${NAME}``, ``${NAME:-default}`` and ``${NAME:?error}``, enough for this file."""

    def one(match: re.Match[str]) -> str:
        name, operator, argument = match.group(1), match.group(2) or "", match.group(3) or ""
        value = values.get(name, "")
        if value:
            return value
        assert not operator.endswith("?"), f"${{{name}}} is required: {argument}"
        return argument if operator.endswith("-") else ""

    return VARIABLE.sub(one, text)


def gateway_environment(values: dict[str, str]) -> dict[str, str]:
    """What a gateway container gets: the env_file's lines, then the compose file's entries."""
    compose = yaml.safe_load(interpolate(COMPOSE.read_text(), values))
    gateway = compose["services"]["gateway-1"]
    assert gateway["env_file"] == ".env"
    assert compose["services"]["gateway-2"]["environment"] == gateway["environment"]
    return {**values, **{key: str(value) for key, value in gateway["environment"].items()}}


def test_the_example_configuration_loads_in_the_gateway() -> None:
    values = {**example_values(ENV_EXAMPLE), **SECRETS}
    environment = gateway_environment(values)
    vgw = {key: value for key, value in environment.items() if key.startswith("VGW_")}
    settings = load_settings(None, environ=vgw)  # an unknown key or a bad value raises
    assert settings.storage.backend == "s3"
    assert settings.s3.endpoint_url == "http://seaweedfs:8333"
    assert settings.s3.public_endpoint_url == values["PUBLIC_BASE_URL"]
    assert settings.database_url() == (
        f"postgresql://vgw:{SECRETS['POSTGRES_PASSWORD']}@postgres:5432/vgw"
    )
    assert [t.get_secret_value() for t in settings.auth.valid_tokens] == SECRETS[
        "VGW_AUTH__VALID_TOKENS"
    ].split(",")
    assert settings.server.public_base_url == values["PUBLIC_BASE_URL"]
    assert settings.limits.storage == f"redis://:{SECRETS['REDIS_PASSWORD']}@redis:6379/0"


def test_required_secrets_are_required() -> None:
    text = COMPOSE.read_text()
    for name in SECRETS:
        assert f"${{{name}:?" in text, f"{name} must be required (${{{name}:?…}})"
