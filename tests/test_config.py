"""Settings: the seed's config.ini as written, env and flag overrides, loud failures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.config import ConfigError, load_settings

SEED_CONFIG = """\
[DEFAULT]
image_generation_url=https://relay.example.com/v1/images/generations # relay image API
audio_generation_url=http://127.0.0.1:8084/generate-audio/ # optional
[common]
video_output_path = {out} # local output
region = oss-cn-hangzhou # OSS region
secret_id = {secret_id}
secret_key = {secret_key}
bucket = my-videos
endpoint = https://oss-cn-beijing.aliyuncs.com # OSS endpoint
[auth]
valid_tokens = {tokens} # API tokens
[video_api]
cookie = {cookie}
sign = some-stale-sign
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.ini"
    path.write_text(text, encoding="utf-8")
    return path


def seed(tmp_path: Path, **values: str) -> Path:
    defaults = {
        "out": str(tmp_path / "out"),
        "secret_id": "LTAIexampleid",
        "secret_key": "examplesecretvalue",
        "tokens": '["token-one-123456", "token-two-654321"]',
        "cookie": "sessionid-abcdef",
    }
    return write(tmp_path, SEED_CONFIG.format(**{**defaults, **values}))


def test_the_seed_config_loads_as_written(tmp_path: Path) -> None:
    settings = load_settings(seed(tmp_path), environ={})
    assert [t.get_secret_value() for t in settings.auth.valid_tokens] == [
        "token-one-123456",
        "token-two-654321",
    ]
    assert settings.common.bucket == "my-videos"
    assert settings.common.endpoint == "https://oss-cn-beijing.aliyuncs.com"
    assert (
        settings.seed_default.image_generation_url
        == "https://relay.example.com/v1/images/generations"
    )
    assert settings.video_api.cookie is not None
    # [DEFAULT] stays its own section: its keys do not leak into the others.
    assert "image_generation_url" not in settings.common.model_dump()


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("tokens", '["your_valid_token1", "your_valid_token2"]', "[auth] valid_tokens"),
        ("secret_id", "your_secret_id", "[common] secret_id"),
        ("cookie", "your_cookie_string", "[video_api] cookie"),
    ],
)
def test_placeholders_from_the_seed_are_refused(
    tmp_path: Path, field: str, value: str, named: str
) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(seed(tmp_path, **{field: value}), environ={})
    assert named in str(info.value) and "placeholder" in str(info.value)
    assert value not in str(info.value)  # a secret-looking value is not echoed back


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("[server]\nprot = 8000\n", "[server] prot: unknown key"),
        ("[nonsense]\na = 1\n", "unknown section [nonsense]"),
        ("[server]\nport = eighty\n", "[server] port"),
        ("[server]\nport = 70000\n", "[server] port"),
        ("[storage]\nbackend = ftp\n", "[storage] backend"),
        ('[auth]\nvalid_tokens = ["short"]\n', "[auth] valid_tokens"),
        ('[auth]\nvalid_tokens = ["unterminated\n', "[auth] valid_tokens"),
    ],
)
def test_bad_config_fails_naming_the_key(tmp_path: Path, text: str, named: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), environ={})
    assert named in str(info.value)


def test_environment_overrides_file_and_flags_override_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 8001\nsync_wait_s = 30\n")
    env = {"VGW_SERVER__PORT": "8002", "VGW_AUTH__VALID_TOKENS": '["env-token-12345"]'}
    settings = load_settings(path, environ=env)
    assert settings.server.port == 8002 and settings.server.sync_wait_s == 30
    assert settings.auth.valid_tokens[0].get_secret_value() == "env-token-12345"
    flagged = load_settings(path, environ=env, overrides={"server": {"port": 8003}})
    assert flagged.server.port == 8003


def test_unknown_environment_variable_section_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="VGW_SERVR__PORT"):
        load_settings(None, environ={"VGW_SERVR__PORT": "1"})


def test_config_path_from_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 8111\n")
    assert load_settings(None, environ={"VGW_CONFIG": str(path)}).server.port == 8111
    with pytest.raises(ConfigError, match="not found"):
        load_settings(None, environ={"VGW_CONFIG": str(tmp_path / "missing.ini")})


def test_secrets_never_show_in_reprs(tmp_path: Path) -> None:
    settings = load_settings(seed(tmp_path), environ={})
    text = repr(settings) + str(settings.model_dump())
    for secret in ("examplesecretvalue", "token-one-123456", "sessionid-abcdef"):
        assert secret not in text


def test_serve_refuses_to_start_on_bad_config(tmp_path: Path) -> None:
    path = write(tmp_path, "[server]\nport = 8000\ncolour = blue\n")
    result = subprocess.run(
        [sys.executable, "-m", "app", "serve", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "[server] colour: unknown key" in result.stderr
