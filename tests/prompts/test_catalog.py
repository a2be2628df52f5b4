"""Business templates, style presets and platform presets (built-in and user-defined)."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.config import ConfigError
from app.errors import ValidationError
from app.prompts.catalog import Catalog
from app.prompts.platforms import apply_platform, nearest_ratio, platform_warnings
from app.prompts.service import PromptService
from app.providers.base import Capabilities
from tests.conftest import make_settings

pytestmark = pytest.mark.anyio

SEEDANCE_LIKE = Capabilities(max_prompt_chars=500, aspect_ratios=frozenset({"16:9", "4:3", "1:1"}))


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def test_the_seed_business_templates_are_built_in(catalog: Catalog) -> None:
    names = {t.name for t in catalog.templates.listing()}
    assert {"product_showcase", "real_estate_tour", "food", "education", "social_media"} <= names


def test_style_and_platform_presets_are_built_in(catalog: Catalog) -> None:
    assert {"cinematic", "animated", "realistic", "minimalist"} <= set(catalog.styles.names)
    platforms = {p.name: p for p in catalog.platforms.listing()}
    expected = {
        "douyin": "9:16",
        "tiktok": "9:16",
        "youtube": "16:9",
        "bilibili": "16:9",
        "instagram": "1:1",
        "xiaohongshu": "3:4",
    }
    for name, ratio in expected.items():
        assert platforms[name].aspect_ratio == ratio
        assert platforms[name].duration_ms > 0
        assert platforms[name].resolution in ("720p", "1080p")


@pytest.mark.parametrize(
    ("asked", "found"),
    [
        ("Product-Showcase", "product_showcase"),
        ("product", "product_showcase"),
        ("房产", "real_estate_tour"),
        ("real estate", "real_estate_tour"),
        ("美食", "food"),
        ("SOCIAL_MEDIA", "social_media"),
    ],
)
def test_templates_are_found_by_name_or_alias(catalog: Catalog, asked: str, found: str) -> None:
    assert catalog.templates.lookup(asked).name == found


def test_platform_aliases(catalog: Catalog) -> None:
    assert catalog.platforms.lookup("抖音").name == "douyin"
    assert catalog.platforms.lookup("小红书").name == "xiaohongshu"
    assert catalog.platforms.lookup("B站").name == "bilibili"
    assert catalog.styles.lookup("电影感").name == "cinematic"


@pytest.mark.parametrize(
    ("kind", "name", "known"),
    [
        ("template", "wedding", "product_showcase"),
        ("style", "steampunk", "cinematic"),
        ("platform", "myspace", "douyin"),
    ],
)
def test_unknown_names_are_a_validation_error_listing_the_known_ones(
    catalog: Catalog, kind: str, name: str, known: str
) -> None:
    registry = {
        "template": catalog.templates,
        "style": catalog.styles,
        "platform": catalog.platforms,
    }
    with pytest.raises(ValidationError) as info:
        registry[kind].lookup(name)
    assert info.value.status_code == 422
    assert name in info.value.message
    assert known in info.value.message


def test_templates_render_the_prompt_in_its_language(catalog: Catalog) -> None:
    food = catalog.templates.lookup("food")
    assert food.render("牛肉面", "zh").startswith("牛肉面的美食视频")
    assert food.render("beef noodles", "en").startswith("Appetizing food video of beef noodles")
    assert "{prompt}" not in food.render("x", "en")


async def test_template_expansion_is_deterministic_and_fits(tmp_path: Path) -> None:
    service = PromptService.from_settings(make_settings(tmp_path))
    first = await service.expand("一碗牛肉面", template="food", platform="douyin", max_chars=120)
    again = await service.expand("一碗牛肉面", template="food", platform="douyin", max_chars=120)
    assert first == again
    assert first.expanded_by == "template"
    assert first.expanded_prompt.startswith("一碗牛肉面的美食视频")
    assert len(first.expanded_prompt) <= 120
    assert first.expanded_prompt.endswith("。")


async def test_style_words_survive_a_tight_limit(tmp_path: Path) -> None:
    service = PromptService.from_settings(make_settings(tmp_path))
    long_idea = "一位老人在古老的石桥上慢慢走过，" * 20
    result = await service.expand(long_idea, style="minimalist", max_chars=120)
    assert len(result.expanded_prompt) <= 120
    assert "极简风格" in result.expanded_prompt


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_user_templates_from_a_directory(tmp_path: Path) -> None:
    write(
        tmp_path / "hotel.yaml",
        """
name: hotel_tour
aliases: [hotel, 酒店]
title: {en: Hotel tour, zh: 酒店展示}
text:
  en: "Luxury hotel video of {prompt}, golden hour light"
  zh: "{prompt}的酒店宣传视频，黄金时段光线"
hint: a hotel promo
style: cinematic
negative_prompt: crowds, clutter
""",
    )
    write(tmp_path / "unboxing.txt", "Unboxing video of {prompt}, hands opening the box\n")
    write(tmp_path / "food.yml", "text: 'My own food template for {prompt}'\n")
    write(tmp_path / "README.md", "not a template {prompt}")
    write(tmp_path / ".hidden.txt", "ignored {prompt}")
    catalog = Catalog.load(tmp_path)

    hotel = catalog.templates.lookup("酒店")
    assert hotel.name == "hotel_tour"
    assert hotel.render("the Grand", "en") == "Luxury hotel video of the Grand, golden hour light"
    assert hotel.render("大酒店", "zh") == "大酒店的酒店宣传视频，黄金时段光线"
    assert hotel.style == "cinematic"
    assert hotel.negative_prompt == "crowds, clutter"
    unboxing = catalog.templates.lookup("unboxing")
    assert unboxing.render("a phone", "zh") == "Unboxing video of a phone, hands opening the box"
    # A user template replaces the built-in one of the same name; the others stay.
    assert catalog.templates.lookup("food").render("x", "en") == "My own food template for x"
    assert catalog.templates.lookup("product").name == "product_showcase"
    assert {t.name for t in catalog.templates.listing()} >= {"hotel_tour", "unboxing", "food"}
    assert "README" not in catalog.templates.names
    assert ".hidden" not in catalog.templates.names


@pytest.mark.parametrize(
    ("file", "content", "complaint"),
    [
        ("bad.txt", "no placeholder here", "{prompt}"),
        ("bad.yaml", "text: 'x {prompt}'\ncolour: red\n", "colour"),
        ("bad.yaml", "name: 'x'\n", "'text' is required"),
        ("bad.yaml", "text: 'x {prompt}'\nstyle: steampunk\n", "steampunk"),
        ("bad.yaml", "text: {en: 'a {prompt}', fr: 'b {prompt}'}\n", "fr"),
        ("bad.yaml", "text: [unclosed\n", "cannot read"),
        ("bad.yaml", "- text: 'x {prompt}'\n- 42\n", "bad.yaml[1]"),
    ],
)
def test_broken_user_templates_fail_at_start_naming_the_file(
    tmp_path: Path, file: str, content: str, complaint: str
) -> None:
    write(tmp_path / file, content)
    with pytest.raises(ConfigError) as info:
        Catalog.load(tmp_path)
    assert file in str(info.value)
    assert complaint in str(info.value)


def test_duplicate_user_templates_are_refused(tmp_path: Path) -> None:
    write(tmp_path / "a.txt", "A {prompt}")
    write(tmp_path / "b.yaml", "name: A\ntext: 'B {prompt}'\n")
    with pytest.raises(ConfigError, match="already in"):
        Catalog.load(tmp_path)


def test_a_missing_templates_dir_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="templates_dir"):
        PromptService.from_settings(
            make_settings(tmp_path, {"prompts": {"templates_dir": str(tmp_path / "nope")}})
        )


# --- platform presets ---------------------------------------------------------------------------


def test_platform_fills_only_what_the_request_did_not_set(catalog: Catalog) -> None:
    douyin = catalog.platforms.lookup("douyin")
    body = {"prompt": "x", "aspect_ratio": "16:9", "duration_ms": 5000, "platform": "douyin"}
    filled, warnings = apply_platform(body, douyin, explicit={"prompt", "platform"})
    assert filled["aspect_ratio"] == "9:16"
    assert filled["duration_ms"] == douyin.duration_ms
    assert filled["resolution"] == douyin.resolution
    assert warnings == []

    kept, warnings = apply_platform(body, douyin, explicit={"prompt", "platform", "aspect_ratio"})
    assert kept["aspect_ratio"] == "16:9"
    assert len(warnings) == 1
    assert "9:16" in warnings[0] and "16:9" in warnings[0]


def test_without_explicit_fields_present_keys_count_as_set(catalog: Catalog) -> None:
    youtube = catalog.platforms.lookup("youtube")
    filled, _ = apply_platform({"prompt": "x", "duration_ms": 4000}, youtube)
    assert filled["duration_ms"] == 4000
    assert filled["aspect_ratio"] == "16:9"


def test_platform_warnings_when_a_provider_cannot_honour_the_preset(catalog: Catalog) -> None:
    douyin = catalog.platforms.lookup("douyin")
    warnings = platform_warnings(douyin, SEEDANCE_LIKE, provider="seedance")
    assert len(warnings) == 1
    assert "seedance" in warnings[0] and "9:16" in warnings[0] and "douyin" in warnings[0]
    assert platform_warnings(catalog.platforms.lookup("youtube"), SEEDANCE_LIKE) == []
    assert platform_warnings(douyin, Capabilities()) == []


def test_an_unsupported_preset_ratio_becomes_the_closest_supported_one(catalog: Catalog) -> None:
    douyin = catalog.platforms.lookup("douyin")
    filled, warnings = apply_platform(
        {"prompt": "x"},
        douyin,
        explicit={"prompt"},
        capabilities=SEEDANCE_LIKE,
        provider="seedance",
    )
    assert filled["aspect_ratio"] == "1:1"  # the tallest that provider has
    assert warnings and "using 1:1" in warnings[0]


def test_nearest_ratio() -> None:
    assert nearest_ratio("9:16", {"16:9", "3:4", "1:1"}) == "3:4"
    assert nearest_ratio("21:9", {"16:9", "1:1"}) == "16:9"
    assert nearest_ratio("1:1", set()) is None


async def test_service_apply_platform_and_validate(tmp_path: Path) -> None:
    service = PromptService.from_settings(make_settings(tmp_path))
    filled, _ = service.apply_platform(
        {"prompt": "x", "platform": "小红书"}, explicit={"prompt", "platform"}
    )
    assert filled["aspect_ratio"] == "3:4"
    unchanged, warnings = service.apply_platform({"prompt": "x"})
    assert unchanged == {"prompt": "x"} and warnings == []
    service.validate(style="cinematic", template="food", platform="tiktok")
    with pytest.raises(ValidationError, match="known platforms"):
        service.validate(platform="orkut")
    with pytest.raises(ValidationError, match="known styles"):
        await service.expand("x", style="steampunk")
