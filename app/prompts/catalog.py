"""Business templates, style presets and platform presets: built-in ones and the operator's.

Built-ins live in ``app/prompts/builtin/{templates,styles,platforms}.yaml``. Operators add or
replace templates with a directory of files (``[prompts] templates_dir``), one template each:

* ``NAME.txt`` — the whole file is the template text; ``{prompt}`` marks where the user's idea
  goes. The file name (without ``.txt``) is the template's name.
* ``NAME.yaml`` / ``NAME.yml`` — a mapping (or a list of mappings, several templates)::

      name: hotel_tour              # optional, default: the file name
      aliases: [hotel, 酒店]         # optional, other names a request may use
      title: {en: Hotel tour, zh: 酒店展示}   # optional
      text:                         # required; a string, or en/zh variants
        en: "Luxury hotel video of {prompt}, golden hour light, slow gimbal walkthrough"
        zh: "{prompt}的酒店宣传视频，黄金时段光线，稳定器缓慢漫游"
      hint: "a hotel promo: rooms, pool, views"   # optional, guidance for the LLM
      style: cinematic              # optional default style (a known style name)
      negative_prompt: "people, crowds"          # optional, replaces the default one

  The variant matching the prompt's language is used (Chinese or English); a single string
  serves both. ``{prompt}`` is a plain placeholder (no other braces are interpreted).

Names are matched case-insensitively, with ``-`` and spaces read as ``_``. A user template
with a built-in's name replaces it. Files starting with ``.`` or with other extensions are
ignored. A broken file stops the gateway at start with a ``ConfigError`` naming the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

from app.config import ConfigError
from app.errors import ValidationError
from app.prompts.text import Lang

BUILTIN_DIR = Path(__file__).parent / "builtin"
PLACEHOLDER = "{prompt}"
_NAME = re.compile(r"^[\w\-. ]{1,64}$")
_TEMPLATE_KEYS = frozenset(
    {"name", "aliases", "title", "text", "hint", "style", "negative_prompt", "description"}
)


_CJK_GAP = re.compile(r"(?<=[\u3000-\u303f\uff00-\uffef\u4e00-\u9fff])\s+(?=[\u4e00-\u9fff])")


def _tidy(text: str) -> str:
    """Strip, and drop the spaces YAML folding leaves between Chinese characters."""
    return _CJK_GAP.sub("", text.strip())


def name_key(name: str) -> str:
    """The lookup form of a preset name: case-folded, ``-`` and spaces as ``_``."""
    return re.sub(r"[\s\-]+", "_", name.strip().casefold())


@dataclass(frozen=True)
class Localized:
    """A text in English and Chinese (the same text twice when only one was given)."""

    en: str
    zh: str

    def get(self, lang: Lang) -> str:
        return self.zh if lang == "zh" else self.en

    @classmethod
    def parse(cls, value: Any, *, where: str) -> Localized:
        if isinstance(value, str) and value.strip():
            return cls(en=_tidy(value), zh=_tidy(value))
        if isinstance(value, Mapping):
            unknown = set(value) - {"en", "zh"}
            if unknown:
                raise ConfigError(f"{where}: unknown language key(s) {sorted(unknown)}; use en/zh")
            en, zh = value.get("en"), value.get("zh")
            if all(v is None or isinstance(v, str) for v in (en, zh)) and (en or zh):
                return cls(en=_tidy(str(en or zh)), zh=_tidy(str(zh or en)))
        raise ConfigError(f"{where}: expected a text or a mapping with 'en' and/or 'zh'")


@dataclass(frozen=True, kw_only=True)
class Template:
    name: str
    text: Localized
    title: Localized
    hint: Localized | None = None
    style: str | None = None
    negative_prompt: str | None = None
    aliases: tuple[str, ...] = ()
    source: str = "built-in"

    def render(self, prompt: str, lang: Lang) -> str:
        return self.text.get(lang).replace(PLACEHOLDER, prompt.strip())


@dataclass(frozen=True, kw_only=True)
class StylePreset:
    name: str
    text: Localized
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class CaptionRules:
    """How a caption for a platform looks: its length (hashtags not counted), how many
    hashtags, and the tone to write in."""

    max_chars: int = 150
    hashtags: int = 5
    tone: Localized = Localized("natural and engaging", "自然、有吸引力")


@dataclass(frozen=True, kw_only=True)
class PlatformPreset:
    """Where the video will be published: the request fields it implies and how to frame it."""

    name: str
    aspect_ratio: str
    duration_ms: int
    resolution: str | None
    framing: Localized
    aliases: tuple[str, ...] = ()
    caption: CaptionRules = CaptionRules()

    def fields(self) -> dict[str, Any]:
        """The request fields this preset sets (when the request did not set them)."""
        found: dict[str, Any] = {"aspect_ratio": self.aspect_ratio, "duration_ms": self.duration_ms}
        if self.resolution:
            found["resolution"] = self.resolution
        return found


_P = TypeVar("_P", Template, StylePreset, PlatformPreset)


class Registry(dict[str, _P]):
    """Name/alias → preset, with an error that lists the known names."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.names: dict[str, _P] = {}

    def add(self, preset: _P) -> None:
        for key in (preset.name, *preset.aliases):
            self[name_key(key)] = preset
        self.names[preset.name] = preset

    def lookup(self, name: str) -> _P:
        found = self.get(name_key(name))
        if found is None:
            known = ", ".join(sorted(self.names))
            raise ValidationError(f"unknown {self.kind} {name!r}; known {self.kind}s: {known}")
        return found

    def listing(self) -> list[_P]:
        return [self.names[name] for name in sorted(self.names)]


def _strings(value: Any, *, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{where}: expected a list of names")
    return tuple(v.strip() for v in value)


def _name(value: Any, *, where: str) -> str:
    if not isinstance(value, str) or not _NAME.match(value.strip()):
        raise ConfigError(f"{where}: a name is 1-64 letters, digits, '_', '-', '.' or spaces")
    return value.strip()


def parse_template(data: Any, *, where: str, default_name: str | None = None) -> Template:
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: a template is a mapping with at least 'text'")
    unknown = set(data) - _TEMPLATE_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}")
    name = _name(data.get("name", default_name), where=f"{where}: name")
    if "text" not in data:
        raise ConfigError(f"{where}: 'text' is required")
    text = Localized.parse(data["text"], where=f"{where}: text")
    if PLACEHOLDER not in text.en or PLACEHOLDER not in text.zh:
        raise ConfigError(f"{where}: text must contain the {PLACEHOLDER} placeholder")
    hint = Localized.parse(data["hint"], where=f"{where}: hint") if data.get("hint") else None
    title = data.get("title")
    style = data.get("style")
    negative = data.get("negative_prompt")
    if style is not None and not isinstance(style, str):
        raise ConfigError(f"{where}: style must be a style name")
    if negative is not None and not isinstance(negative, str):
        raise ConfigError(f"{where}: negative_prompt must be a text")
    return Template(
        name=name,
        text=text,
        title=Localized.parse(title, where=f"{where}: title") if title else Localized(name, name),
        hint=hint,
        style=style.strip() if style else None,
        negative_prompt=negative.strip() if negative and negative.strip() else None,
        aliases=_strings(data.get("aliases"), where=f"{where}: aliases"),
        source=where,
    )


# libyaml's safe loader when PyYAML was built with it (its wheels are): the built-in catalog is
# read at every start, and the pure-Python loader takes ten times as long.
_SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load_yaml(path: Path) -> Any:
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=_SafeLoader)  # noqa: S506
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc


def load_template_dir(directory: Path) -> list[Template]:
    """User-defined templates (see the module docstring for the file format)."""
    where = f"[prompts] templates_dir = {directory}"
    if not directory.is_dir():
        raise ConfigError(f"{where}: not a directory")
    templates: list[Template] = []
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        suffix = path.suffix.lower()
        if suffix == ".txt":
            try:
                text = path.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{path}: cannot read: {exc}") from exc
            templates.append(
                parse_template({"text": text}, where=str(path), default_name=path.stem)
            )
        elif suffix in (".yaml", ".yml"):
            data = _load_yaml(path)
            items = data if isinstance(data, list) else [data]
            for index, item in enumerate(items):
                label = str(path) if len(items) == 1 else f"{path}[{index}]"
                templates.append(parse_template(item, where=label, default_name=path.stem))
    seen: dict[str, str] = {}
    for template in templates:
        key = name_key(template.name)
        if key in seen:
            raise ConfigError(
                f"{template.source}: template {template.name!r} already in {seen[key]}"
            )
        seen[key] = template.source
    return templates


def _caption_rules(data: Any, *, where: str) -> CaptionRules:
    if data is None:
        return CaptionRules()
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping with max_chars, hashtags, tone")
    return CaptionRules(
        max_chars=int(data.get("max_chars", CaptionRules.max_chars)),
        hashtags=int(data.get("hashtags", CaptionRules.hashtags)),
        tone=Localized.parse(data["tone"], where=f"{where}: tone")
        if data.get("tone")
        else CaptionRules.tone,
    )


def _builtin(file: str) -> list[Mapping[str, Any]]:
    data = _load_yaml(BUILTIN_DIR / file)
    assert isinstance(data, list)
    return data


@dataclass(frozen=True)
class Catalog:
    templates: Registry[Template]
    styles: Registry[StylePreset]
    platforms: Registry[PlatformPreset]

    @classmethod
    def load(cls, templates_dir: Path | None = None) -> Catalog:
        styles: Registry[StylePreset] = Registry("style")
        for item in _builtin("styles.yaml"):
            where = f"styles.yaml: {item.get('name')}"
            styles.add(
                StylePreset(
                    name=item["name"],
                    text=Localized.parse(item["text"], where=where),
                    aliases=_strings(item.get("aliases"), where=where),
                )
            )
        platforms: Registry[PlatformPreset] = Registry("platform")
        for item in _builtin("platforms.yaml"):
            where = f"platforms.yaml: {item.get('name')}"
            platforms.add(
                PlatformPreset(
                    name=item["name"],
                    aspect_ratio=str(item["aspect_ratio"]),
                    duration_ms=int(item["duration_ms"]),
                    resolution=item.get("resolution"),
                    framing=Localized.parse(item["framing"], where=where),
                    aliases=_strings(item.get("aliases"), where=where),
                    caption=_caption_rules(item.get("caption"), where=f"{where}: caption"),
                )
            )
        templates: Registry[Template] = Registry("template")
        found: Iterable[Template] = [
            parse_template(item, where="templates.yaml") for item in _builtin("templates.yaml")
        ]
        if templates_dir is not None:
            found = [*found, *load_template_dir(templates_dir)]
        for template in found:
            if template.style is not None and name_key(template.style) not in styles:
                raise ConfigError(
                    f"{template.source}: unknown style {template.style!r} "
                    f"(known: {', '.join(sorted(styles.names))})"
                )
            old = templates.get(name_key(template.name))
            if old is not None:  # a user template replaces a built-in one
                templates.names.pop(old.name, None)
                for key in (old.name, *old.aliases):
                    if templates.get(name_key(key)) is old:
                        del templates[name_key(key)]
            templates.add(template)
        return cls(templates=templates, styles=styles, platforms=platforms)
