"""Settings: embedded defaults < ``config.ini`` < ``VGW_<SECTION>__<KEY>`` environment < CLI flags.

The seed's ``config.ini`` works as written: its ``[common]``, ``[auth]``, ``[video_api]`` and
``[DEFAULT]`` sections are ordinary sections here (``[DEFAULT]`` does not leak into the others).
Unknown sections or keys, invalid values and placeholder secrets (``your_valid_token1``) fail at
start-up with a ``ConfigError`` that names the key. Secrets are ``SecretStr`` and never printed.
"""

from __future__ import annotations

import configparser
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError

from app.providers.rules import validate_rules

_PLACEHOLDER = re.compile(
    r"^(your[_\-\s]|<.*>$|changeme|change[_-]me|xxx+$|placeholder|todo$)", re.I
)
ENV_PREFIX = "VGW_"


class ConfigError(Exception):
    """A configuration value is missing, unknown or invalid. The message names the key."""


def _split_list(value: Any) -> Any:
    """Lists in an ini file: a JSON list (``["a", "b"]``, the seed's form) or ``a, b``."""
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return []
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not a valid JSON list: {exc.msg}") from exc
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


def _json_value(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc.msg}") from exc
    return value


def _refuse_placeholder(value: SecretStr | None) -> SecretStr | None:
    if value is not None and _PLACEHOLDER.search(value.get_secret_value().strip()):
        raise ValueError("looks like a placeholder from an example file; set a real value")
    return value


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        # ``key =`` in an ini file means "not set", not "the empty string".
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (isinstance(v, str) and not v.strip())}
        return data


class ServerSettings(Section):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    public_base_url: str | None = None
    data_dir: Path = Path("data")
    sync_wait_s: float = Field(540.0, ge=0, le=3600)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    # A file uploaded with a form: the input_reference image of /v1/videos, a /v1/batches CSV.
    max_upload_bytes: int = Field(10 * 1_048_576, ge=1024)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # text: one readable line per record; json: one JSON object per line (log collectors).
    log_format: Literal["text", "json"] = "text"
    # Proxies (addresses or networks) whose X-Forwarded-Proto/-Host are believed when the
    # gateway derives its own URL from a request (only without public_base_url).
    trusted_proxies: list[str] = Field(default_factory=list)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _parse_proxies(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        import ipaddress

        for entry in value:
            ipaddress.ip_network(entry, strict=False)  # ValueError names the bad entry
        return value

    @property
    def binds_all(self) -> bool:
        """Bound to every interface: ``http://HOST:PORT`` is no address a client can use."""
        return self.host in ("0.0.0.0", "::", "")  # noqa: S104 - comparing, not binding

    def base_url(self) -> str:
        return (self.public_base_url or f"http://{self.host}:{self.port}").rstrip("/")


class AuthSettings(Section):
    valid_tokens: list[SecretStr] = Field(default_factory=list)
    # Key of the HMAC that managed tokens are stored under (the same on every replica). Unset:
    # a fixed label. Changing it invalidates every managed token.
    token_hash_key: SecretStr | None = None
    # How long a replica trusts what it read about a managed token (revoke/rotate take effect
    # within this time on every replica).
    cache_s: float = Field(5.0, ge=0, le=300)

    _check_key = field_validator("token_hash_key")(lambda cls, v: _refuse_placeholder(v))

    @field_validator("valid_tokens", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        return _split_list(value)

    @field_validator("valid_tokens")
    @classmethod
    def _no_placeholders(cls, value: list[SecretStr]) -> list[SecretStr]:
        for token in value:
            _refuse_placeholder(token)
            if len(token.get_secret_value()) < 8:
                raise ValueError("tokens must be at least 8 characters")
        return value


class StorageSettings(Section):
    backend: Literal["local", "oss", "s3"] | None = None
    url_expires_s: int = Field(86400, ge=1, le=7 * 86400)
    public: bool = False
    custom_domain: str | None = None
    local_dir: Path | None = None
    signing_key: SecretStr | None = None

    _check = field_validator("signing_key")(lambda cls, v: _refuse_placeholder(v))


class CommonSettings(Section):
    """The seed's ``[common]`` section (Aliyun OSS credentials and a local output path)."""

    video_output_path: Path | None = None
    endpoint: str | None = None
    region: str | None = None
    bucket: str | None = None
    secret_id: SecretStr | None = None
    secret_key: SecretStr | None = None

    _check = field_validator("secret_id", "secret_key")(lambda cls, v: _refuse_placeholder(v))


class OssSettings(Section):
    endpoint: str | None = None
    region: str | None = None
    bucket: str | None = None
    secret_id: SecretStr | None = None
    secret_key: SecretStr | None = None
    signature_version: Literal["v4", "v1"] = "v4"
    is_cname: bool = False
    part_size_mb: int = Field(8, ge=1, le=64)
    max_parts_in_flight: int = Field(3, ge=1, le=16)
    multipart_threshold_mb: int = Field(16, ge=1)
    connect_timeout_s: float = Field(10.0, gt=0)
    # Unset: "public-read" when [storage] public is on, else the bucket's ACL ("default").
    object_acl: Literal["default", "private", "public-read"] | None = None
    archive_storage_class: Literal["IA", "Archive", "ColdArchive", "DeepColdArchive"] = "Archive"

    _check = field_validator("secret_id", "secret_key")(lambda cls, v: _refuse_placeholder(v))


class S3Settings(Section):
    endpoint_url: str | None = None
    # Where clients reach the store when that differs from endpoint_url (a store inside a
    # Compose network behind a proxy): presigned URLs are signed for this origin.
    public_endpoint_url: str | None = None
    region: str | None = None
    bucket: str | None = None
    access_key: SecretStr | None = None
    secret_key: SecretStr | None = None
    addressing_style: Literal["auto", "path", "virtual"] = "auto"
    part_size_mb: int = Field(8, ge=5, le=64)
    max_concurrency: int = Field(3, ge=1, le=16)
    multipart_threshold_mb: int = Field(16, ge=5)
    checksum: Literal["when_required", "when_supported"] = "when_required"
    connect_timeout_s: float = Field(10.0, gt=0)
    read_timeout_s: float = Field(60.0, gt=0)
    # The lifecycle transition target: GLACIER (AWS), ARCHIVE (COS), COLD (OBS), none to skip.
    archive_storage_class: str = "GLACIER"

    _check = field_validator("access_key", "secret_key")(lambda cls, v: _refuse_placeholder(v))


class LlmSettings(Section):
    base_url: str | None = None
    api_key: SecretStr | None = None
    model: str | None = None
    timeout_s: float = Field(20.0, gt=0, le=600)
    system_prompt: str | None = None
    expand_by_default: bool = True
    required: bool = False
    max_retries: int = Field(1, ge=0, le=5)
    temperature: float = Field(0.7, ge=0, le=2)
    # Unset: about two tokens per allowed character (reasoning models may need more).
    max_tokens: int | None = Field(None, ge=16, le=32768)

    _check = field_validator("api_key")(lambda cls, v: _refuse_placeholder(v))

    @property
    def enabled(self) -> bool:
        return bool(self.base_url and self.model)


class PromptsSettings(Section):
    templates_dir: Path | None = None
    sensitive_words_file: Path | None = None
    moderation_url: str | None = None
    moderation_api_key: SecretStr | None = None
    moderation_model: str | None = None
    moderation_timeout_s: float = Field(10.0, gt=0, le=120)
    # When the moderation endpoint cannot answer: refuse with 503 (default) or let the prompt pass.
    moderation_fail_open: bool = False
    default_negative_prompt: str = (
        "blurry, low quality, distorted, deformed, extra limbs, watermark, text artifacts"
    )
    # Screen finished CogVideoX and preview videos (sampled frames) before publishing them.
    moderate_output: bool = False
    moderate_output_frames: int = Field(4, ge=1, le=32)

    _check = field_validator("moderation_api_key")(lambda cls, v: _refuse_placeholder(v))

    @field_validator("moderate_output")
    @classmethod
    def _output_needs_endpoint(cls, value: bool, info: ValidationInfo) -> bool:
        if value and not info.data.get("moderation_url"):
            raise ValueError("true needs [prompts] moderation_url")
        return value


class ProvidersSettings(Section):
    default: str = "preview"
    routes: list[dict[str, Any]] = Field(default_factory=list)
    fallback: list[str] = Field(default_factory=list)
    deadline_s: float = Field(3600.0, gt=0)
    # Circuit breakers: this many provider failures in a row open a provider's circuit (routing
    # and fallback pass it by) for breaker_open_s; then one task tries it again.
    breaker_failures: int = Field(5, ge=1, le=1000)
    breaker_open_s: float = Field(30.0, ge=0.1, le=86400)

    @field_validator("routes", mode="before")
    @classmethod
    def _parse_routes(cls, value: Any) -> Any:
        return _json_value(value) or []

    @field_validator("routes")
    @classmethod
    def _check_routes(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return validate_rules(value)

    @field_validator("fallback", mode="before")
    @classmethod
    def _parse_fallback(cls, value: Any) -> Any:
        return _split_list(value)


class PreviewSettings(Section):
    concurrency: int = Field(2, ge=1, le=64)
    height: int = Field(480, ge=64, le=2160)


class SeedanceSettings(Section):
    base_url: str = "https://ark.cn-beijing.volces.com/api/v3"
    api_key: SecretStr | None = None
    # A model per mode: text-to-video, first frame, first+last frame (unset: model_i2v),
    # reference images.
    model_t2v: str = "doubao-seedance-1-5-pro-251215"
    model_i2v: str = "doubao-seedance-1-5-pro-251215"
    model_first_last: str | None = None
    model_reference: str = "doubao-seedance-1-0-lite-i2v-250428"
    resolution: Literal["480p", "720p", "1080p"] | None = None
    # Unset: the model's default (Seedance 1.5 pro and 2.0 make sound unless told not to).
    generate_audio: bool | None = None
    watermark: bool = False
    camera_fixed: bool | None = None
    # Unset: no local cap (Ark queues jobs over the account's running limit itself). Set: at
    # most this many jobs generating at once across every replica (counted in the database).
    max_running: int | None = Field(None, ge=1, le=1000)
    # Status polling: every in-flight job is read about every poll_interval_s (every
    # callback_poll_interval_s when Ark calls back), up to poll_batch jobs per list request,
    # at most poll_qps requests a second.
    poll_interval_s: float = Field(1.0, ge=0.1, le=60)
    callback_poll_interval_s: float = Field(5.0, ge=0.1, le=600)
    poll_batch: int = Field(100, ge=1, le=500)
    poll_qps: float = Field(4.0, gt=0, le=100)
    durations: list[int] = Field(default_factory=lambda: list(range(2, 13)))
    service_tier: Literal["default", "flex"] | None = None
    timeout_s: float = Field(30.0, gt=0)
    deadline_s: float | None = Field(None, gt=0)
    callback: bool = True
    # After a create whose answer was lost, how long to look for the job (its callback, or an
    # unambiguous match in Ark's task list) before failing with provider_outcome_unknown.
    adopt_window_s: float = Field(120.0, ge=0, le=3600)
    # Retries of one call on 408/429/5xx/transport errors (after the first attempt).
    retries: int = Field(3, ge=0, le=10)
    backoff_base_s: float = Field(0.5, gt=0, le=60)
    backoff_max_s: float = Field(8.0, gt=0, le=300)
    # Key for the callback URL's HMAC; derived from api_key when unset.
    callback_secret: SecretStr | None = None

    _check = field_validator("api_key", "callback_secret")(lambda cls, v: _refuse_placeholder(v))

    @field_validator("durations", mode="before")
    @classmethod
    def _parse_durations(cls, value: Any) -> Any:
        return _split_list(value)


class JimengSettings(Section):
    # Unset: "official" when access_key/secret_key are set, else "relay" when a session id
    # ([jimeng] session_id or the seed's [video_api] cookie) and a relay URL are known.
    mode: Literal["official", "relay"] | None = None
    base_url: str = "https://visual.volcengineapi.com"
    access_key: SecretStr | None = None
    secret_key: SecretStr | None = None
    region: str = "cn-north-1"
    service: str = "cv"
    req_key_t2v: str = "jimeng_t2v_v30"
    req_key_i2v: str = "jimeng_i2v_first_v30"
    req_key_i2v_tail: str = "jimeng_i2v_first_tail_v30"
    relay_url: str | None = None
    session_id: SecretStr | None = None
    relay_model: str = "jimeng-video-3.0"
    max_running: int = Field(5, ge=1, le=100)
    # Status queries per second to the visual API, shared by every job in flight here.
    max_qps: float = Field(2.0, gt=0, le=100)
    timeout_s: float = Field(30.0, gt=0)
    relay_timeout_s: float = Field(1500.0, gt=0)
    # How long a relay submit waits for an early error answer (risk control, expired session)
    # so that the task can fall back to another provider.
    relay_answer_window_s: float = Field(2.0, ge=0, le=60)
    deadline_s: float | None = Field(None, gt=0)
    retries: int = Field(3, ge=0, le=10)
    backoff_base_s: float = Field(0.5, gt=0, le=60)
    backoff_max_s: float = Field(8.0, gt=0, le=300)

    _check = field_validator("access_key", "secret_key", "session_id")(
        lambda cls, v: _refuse_placeholder(v)
    )


class VideoApiSettings(Section):
    """The seed's ``[video_api]``: ``cookie`` is a jimeng relay session id; ``sign`` is ignored."""

    cookie: SecretStr | None = None
    sign: SecretStr | None = None

    _check = field_validator("cookie")(lambda cls, v: _refuse_placeholder(v))


class SeedDefaultSettings(Section):
    """The seed's ``[DEFAULT]``: ``image_generation_url`` names a jimeng relay deployment."""

    image_generation_url: str | None = None
    audio_generation_url: str | None = None


class CogVideoXSettings(Section):
    worker_urls: list[str] = Field(default_factory=list)
    token: SecretStr | None = None
    fps: int = Field(8, ge=1, le=60)
    num_inference_steps: int = Field(50, ge=1, le=100)
    guidance_scale: float = Field(6.0, ge=0, le=30)
    width: int = Field(720, ge=16)
    height: int = Field(480, ge=16)
    max_frames: int = Field(49, ge=9)
    timeout_s: float = Field(30.0, gt=0)
    deadline_s: float | None = Field(None, gt=0)

    _check = field_validator("token")(lambda cls, v: _refuse_placeholder(v))

    @field_validator("worker_urls", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        return _split_list(value)


class QueueSettings(Section):
    # Only the in-process runner exists so far (see README, "Running in production").
    backend: Literal["local"] = "local"
    concurrency: dict[str, int] = Field(default_factory=dict)
    max_attempts: int = Field(3, ge=1, le=20)
    # A task's lease: renewed every lease_s/3 while a process works on it; when a process dies,
    # another one sharing the store takes its tasks over once their leases run out.
    lease_s: float = Field(30.0, ge=0.5, le=3600)
    # How often each process looks for tasks whose process died (its instance lock is free).
    takeover_check_s: float = Field(1.0, ge=0.1, le=60)

    @field_validator("concurrency", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        return _json_value(value) or {}


class DatabaseSettings(Section):
    url: str | None = None
    # Run the schema migrations at start-up (under a lock; replicas take turns).
    migrate_on_start: bool = True


class BatchesSettings(Section):
    """CSV batches (``POST /v1/batches``)."""

    max_rows: int = Field(1000, ge=1, le=100_000)
    # How many of one batch's tasks run at a time (the token's own limits apply as well).
    concurrency: int = Field(3, ge=1, le=100)


class WebhooksSettings(Section):
    """Completion callbacks (``callback_url``), signed per Standard Webhooks."""

    # ``whsec_`` + base64 key. Unset: one is generated once and kept in the database.
    secret: SecretStr | None = None
    max_age_h: float = Field(24.0, gt=0, le=24 * 7)
    timeout_s: float = Field(10.0, gt=0, le=120)
    max_connections: int = Field(20, ge=1, le=500)

    @field_validator("secret")
    @classmethod
    def _whsec(cls, value: SecretStr | None) -> SecretStr | None:
        import base64
        import binascii

        if value is None:
            return None
        _refuse_placeholder(value)
        text = value.get_secret_value()
        if not text.startswith("whsec_"):
            raise ValueError("must be a Standard Webhooks secret: whsec_ followed by base64")
        try:
            key = base64.b64decode(text.removeprefix("whsec_") + "==", validate=False)
        except (binascii.Error, ValueError):
            raise ValueError("the part after whsec_ must be base64") from None
        if len(key) < 24:
            raise ValueError("the key must be at least 24 bytes (32 random bytes recommended)")
        return value


class LimitsSettings(Section):
    """Defaults for every token (a managed token may set its own). All off unless set."""

    requests_per_s: float | None = Field(None, gt=0, le=100_000)
    burst: int | None = Field(None, ge=1, le=1_000_000)
    max_active_tasks: int | None = Field(None, ge=1, le=1_000_000)
    tasks_per_day: int | None = Field(None, ge=1, le=100_000_000)
    # memory (this process) or redis://host:port/db (shared by every replica)
    storage: str = "memory"
    key_prefix: str = Field("vgw", min_length=1, max_length=64)

    @field_validator("storage")
    @classmethod
    def _check_storage(cls, value: str) -> str:
        if value != "memory" and not value.startswith(("redis://", "rediss://")):
            raise ValueError("must be memory or a redis:// / rediss:// URL")
        return value


class SecuritySettings(Section):
    # Networks (10.0.0.0/8) and host names (dify-api) that callers' URLs may reach although
    # they are private: a self-hosted Dify's callback endpoint, an internal image host.
    private_url_allowlist: list[str] = Field(default_factory=list)

    @field_validator("private_url_allowlist", mode="before")
    @classmethod
    def _parse(cls, value: Any) -> Any:
        return _split_list(value)


class CacheSettings(Section):
    # An identical request from the same tenant reuses a finished video for this long (0: off).
    ttl_h: float = Field(24.0, ge=0, le=24 * 365)


class LongSettings(Section):
    """Long videos: one request made of several shots (``shots``, or a ``duration_ms`` beyond
    the provider's longest clip), joined into one video."""

    # The longest video one request may ask for (the sum of its shots).
    max_duration_ms: int = Field(120_000, ge=1000, le=600_000)
    # How many shots of one video are made at once when they do not chain (independent).
    max_parallel_shots: int = Field(4, ge=1, le=20)
    # New attempts for a shot whose job failed in a way worth retrying (never after an
    # unknown submit outcome, a rejection or bad parameters).
    shot_retries: int = Field(1, ge=0, le=3)


class Settings(BaseModel):
    """All settings, one typed section per area. Build with :func:`load_settings`."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    server: ServerSettings = Field(default_factory=ServerSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    common: CommonSettings = Field(default_factory=CommonSettings)
    oss: OssSettings = Field(default_factory=OssSettings)
    s3: S3Settings = Field(default_factory=S3Settings)
    llm: LlmSettings = Field(default_factory=LlmSettings)
    prompts: PromptsSettings = Field(default_factory=PromptsSettings)
    providers: ProvidersSettings = Field(default_factory=ProvidersSettings)
    preview: PreviewSettings = Field(default_factory=PreviewSettings)
    seedance: SeedanceSettings = Field(default_factory=SeedanceSettings)
    jimeng: JimengSettings = Field(default_factory=JimengSettings)
    video_api: VideoApiSettings = Field(default_factory=VideoApiSettings)
    seed_default: SeedDefaultSettings = Field(default_factory=SeedDefaultSettings, alias="DEFAULT")
    cogvideox: CogVideoXSettings = Field(default_factory=CogVideoXSettings)
    queue: QueueSettings = Field(default_factory=QueueSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    webhooks: WebhooksSettings = Field(default_factory=WebhooksSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    batches: BatchesSettings = Field(default_factory=BatchesSettings)
    long: LongSettings = Field(default_factory=LongSettings)

    @property
    def data_dir(self) -> Path:
        return self.server.data_dir

    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.data_dir / 'gateway.db'}"


def _section_names() -> dict[str, str]:
    """Lower-case section name (as written in ini/env) -> the Settings field name."""
    names: dict[str, str] = {}
    for field_name, info in Settings.model_fields.items():
        names[(info.alias or field_name).lower()] = field_name
    return names


def read_ini(path: Path) -> dict[str, dict[str, str]]:
    parser = configparser.RawConfigParser(
        default_section="\0none",  # keep the seed's [DEFAULT] an ordinary section
        inline_comment_prefixes=("#", ";"),
        interpolation=None,
    )
    parser.optionxform = str.lower  # type: ignore[assignment,method-assign]
    try:
        with path.open(encoding="utf-8") as fh:
            parser.read_file(fh)
    except (configparser.Error, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot parse: {_parse_problem(exc)}") from None
    return {section: dict(parser.items(section)) for section in parser.sections()}


def _parse_problem(exc: Exception) -> str:
    """Where an ini file is broken, without the line itself: it may hold a secret."""
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return f"line {exc.lineno}: a key before any [section] header"
    if isinstance(exc, configparser.ParsingError):
        lines = ", ".join(str(lineno) for lineno, _ in exc.errors)
        return f"line(s) {lines}: not 'key = value', a [section] or a comment"
    if isinstance(exc, configparser.DuplicateOptionError):
        return f"line {exc.lineno}: [{exc.section}] {exc.option} is set twice"
    if isinstance(exc, configparser.DuplicateSectionError):
        return f"line {exc.lineno}: [{exc.section}] appears twice"
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 (byte {exc.start})"
    return type(exc).__name__


def load_settings(
    config_path: Path | str | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Build Settings from an ini file (optional), ``VGW_`` variables and explicit overrides."""
    env = os.environ if environ is None else environ
    sections = _section_names()
    raw: dict[str, dict[str, Any]] = {}

    def put(section: str, key: str, value: Any, origin: str) -> None:
        field = sections.get(section.lower())
        if field is None:
            raise ConfigError(f"{origin}: unknown section [{section}]")
        raw.setdefault(field, {})[key.lower()] = value

    path = Path(config_path) if config_path else None
    if path is None and env.get("VGW_CONFIG"):
        path = Path(env["VGW_CONFIG"])
    if path is None and Path("config.ini").is_file():
        path = Path("config.ini")
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        for section, ini_values in read_ini(path).items():
            for key, value in ini_values.items():
                put(section, key, value, str(path))
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX) :].partition("__")
        put(section, key, value, f"environment variable {name}")
    for section, values in (overrides or {}).items():
        for key, value in values.items():
            if value is not None:
                put(section, key, value, "command line")

    data = {field: values for field, values in raw.items()}
    try:
        return Settings.model_validate(data)
    except PydanticValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _describe(exc: PydanticValidationError) -> str:
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = [str(part) for part in err["loc"]]
        field = Settings.model_fields.get(loc[0]) if loc else None
        section = (field.alias or loc[0]) if field else (loc[0] if loc else "?")
        key = ".".join(loc[1:]) or "?"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"[{section}] {key}: {message}")
    return "invalid configuration: " + "; ".join(lines)
