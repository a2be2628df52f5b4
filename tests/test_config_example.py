"""config.ini.example stays true: it loads, and it documents every key the gateway reads."""

from __future__ import annotations

import re
from pathlib import Path

from app.config import Settings, load_settings, read_ini

EXAMPLE = Path(__file__).resolve().parent.parent / "config.ini.example"


def documented_keys() -> dict[str, set[str]]:
    keys: dict[str, set[str]] = {}
    section = None
    for line in EXAMPLE.read_text(encoding="utf-8").splitlines():
        if header := re.match(r"^\[(\w+)\]", line):
            section = header.group(1).lower()
            keys[section] = set()
        elif section and (key := re.match(r"^;\s?(\w+) =", line)):
            keys[section].add(key.group(1))
    return keys


def test_the_example_loads_as_the_defaults(tmp_path: Path) -> None:
    assert read_ini(EXAMPLE)  # parses, sections and all
    assert load_settings(EXAMPLE, environ={}) == Settings()


def test_every_key_is_documented() -> None:
    documented = documented_keys()
    for name, field in Settings.model_fields.items():
        section = (field.alias or name).lower()
        model = field.annotation
        assert isinstance(model, type), name
        expected = set(model.model_fields)  # type: ignore[attr-defined]
        assert section in documented, f"[{section}] missing from config.ini.example"
        assert documented[section] == expected, f"[{section}]: {documented[section] ^ expected}"


def test_uncommented_example_values_are_valid(tmp_path: Path) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    # Uncomment every "key = value" line that has a value, as a user editing the file would.
    lines = []
    for line in text.splitlines():
        match = re.match(r"^;\s?(\w+ = )(.+)$", line)
        value = match.group(2).split(" ;")[0].strip() if match else ""
        if match and value and not value.startswith(("[{", "{")):
            lines.append(f"{match.group(1)}{value}")
        else:
            lines.append(line)
    path = tmp_path / "config.ini"
    path.write_text("\n".join(lines), encoding="utf-8")
    settings = load_settings(path, environ={})
    assert settings.server.public_base_url == "https://videos.example.com"
    assert settings.cogvideox.worker_urls == ["http://gpu-1:8100", "http://gpu-2:8100"]
