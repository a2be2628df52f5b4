"""Through the real gateway: ``POST /v1/prompts/expand``, screening in the API, and that the
expanded prompt is exactly what the provider receives."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import GatewayFactory, LiveGateway
from tests.emulators.llm import Reply
from tests.fakes import ControlledProvider
from tests.prompts.conftest import LlmServer

DEFAULT_NEGATIVE = (
    "blurry, low quality, distorted, deformed, extra limbs, watermark, text artifacts"
)


@pytest.fixture
def fake() -> ControlledProvider:
    provider = ControlledProvider()
    provider.release()  # jobs finish at the first poll
    return provider


@pytest.fixture
def gateway(
    gateway_factory: GatewayFactory, llm: LlmServer, fake: ControlledProvider
) -> Iterator[LiveGateway]:
    with gateway_factory({"llm": llm.settings()}, extra_providers={"fake": fake}) as gateway:
        yield gateway


def expand(gateway: LiveGateway, **body: Any) -> Any:
    return gateway.client.post("/v1/prompts/expand", json=body)


def test_expand_needs_a_bearer_token(gateway: LiveGateway) -> None:
    import httpx

    bare = httpx.post(f"{gateway.base_url}/v1/prompts/expand", json={"prompt": "a cat"})
    assert bare.status_code == 401
    other = httpx.post(
        f"{gateway.base_url}/v1/prompts/expand",
        json={"prompt": "a cat"},
        headers={"Authorization": "Bearer not-a-known-token"},
    )
    assert other.status_code == 403


def test_expand_with_the_llm(gateway: LiveGateway, llm: LlmServer) -> None:
    llm.emulator.reply("Here is the prompt:\n“画面中心是一只橘猫趴在红瓦屋顶上，镜头缓缓推近。”")
    response = expand(gateway, prompt="屋顶上的猫", style="cinematic", provider="fake")
    assert response.status_code == 200
    body = response.json()
    assert body["expanded_prompt"] == "画面中心是一只橘猫趴在红瓦屋顶上，镜头缓缓推近。"
    assert body["expanded_by"] == "llm"
    assert body["negative_prompt"] == DEFAULT_NEGATIVE  # the fake provider takes one
    assert body["provider"] == "fake"
    assert body["warnings"] == []
    assert "电影感" in llm.emulator.requests()[0].body["messages"][1]["content"]


def test_expand_falls_back_and_says_why(gateway: LiveGateway, llm: LlmServer) -> None:
    llm.emulator.fail_next(500)
    body = expand(gateway, prompt="a cat", template="product").json()
    assert body["expanded_by"] == "template"
    assert body["expanded_prompt"].startswith("Professional product video showing a cat")
    assert any("HTTP 500" in warning for warning in body["warnings"])
    assert body["provider"] == "preview"  # the default provider's limit applies
    assert body["negative_prompt"] is None  # preview takes no negative prompt


def test_expand_reports_the_platform_fields(gateway: LiveGateway) -> None:
    body = expand(gateway, prompt="a cat", platform="小红书").json()
    assert body["platform"] == {
        "name": "xiaohongshu",
        "aspect_ratio": "3:4",
        "duration_ms": 5000,
        "resolution": "1080p",
    }


def test_expand_without_an_llm(gateway_factory: GatewayFactory) -> None:
    with gateway_factory() as gateway:
        plain = expand(gateway, prompt="a cat on a roof").json()
        assert plain["expanded_by"] == "template"
        assert plain["expanded_prompt"].startswith("a cat on a roof")
        assert plain["expanded_prompt"] != "a cat on a roof"
        # A task that asks for expansion gets the same deterministic expansion; one that
        # does not ask keeps the user's words.
        body = {"prompt": "a cat on a roof", "duration_ms": 500, "fps": 4}
        asked = gateway.client.post("/generate-video", json={**body, "expand_prompt": True}).json()
        assert asked["expanded_prompt"] == plain["expanded_prompt"]
        task = gateway.client.get(f"/v1/tasks/{asked['task_id']}").json()
        assert task["expanded_by"] == "template"
        as_is = gateway.client.post("/generate-video", json=body).json()
        as_is_task = gateway.client.get(f"/v1/tasks/{as_is['task_id']}").json()
        assert (as_is_task["expanded_by"], as_is_task["expanded_prompt"]) == ("none", None)
        styled = expand(gateway, prompt="a cat on a roof", style="minimalist").json()
        assert styled["expanded_by"] == "template"
        assert "minimalist style" in styled["expanded_prompt"]


@pytest.mark.parametrize(
    ("field", "value", "known"),
    [
        ("style", "steampunk", "cinematic"),
        ("template", "wedding", "food"),
        ("platform", "orkut", "douyin"),
    ],
)
def test_unknown_presets_are_422_naming_the_known_ones(
    gateway: LiveGateway, llm: LlmServer, field: str, value: str, known: str
) -> None:
    response = expand(gateway, prompt="a cat", **{field: value})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert value in error["message"] and known in error["message"]
    assert llm.emulator.requests() == []  # nothing spent


def test_unknown_provider_is_422(gateway: LiveGateway) -> None:
    response = expand(gateway, prompt="a cat", provider="sora")
    assert response.status_code == 422


def test_bad_body_is_422(gateway: LiveGateway) -> None:
    assert expand(gateway, prompt="   ").status_code == 422
    assert expand(gateway, prompt="a cat", colour="red").status_code == 422


def test_screening_rejects_the_prompt_before_the_llm(gateway: LiveGateway, llm: LlmServer) -> None:
    response = expand(gateway, prompt="a h e r o i n advert")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "content_rejected"
    assert "drugs" in error["message"]
    assert "heroin" not in error["message"]
    assert llm.emulator.requests() == []


def test_screening_rejects_an_llm_expansion(gateway: LiveGateway, llm: LlmServer) -> None:
    llm.emulator.reply("A night market where people buy 冰 毒 from a stall.")
    response = expand(gateway, prompt="a night market")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "content_rejected"
    assert "expanded prompt" in response.json()["error"]["message"]


def test_catalog_lists_the_presets(gateway: LiveGateway) -> None:
    body = gateway.client.get("/v1/prompts/catalog").json()
    assert "product_showcase" in {t["name"] for t in body["templates"]}
    assert "cinematic" in {s["name"] for s in body["styles"]}
    douyin = next(p for p in body["platforms"] if p["name"] == "douyin")
    assert douyin["aspect_ratio"] == "9:16"


# --- tasks ----------------------------------------------------------------------------------


def run_task(gateway: LiveGateway, **body: Any) -> dict[str, Any]:
    created = gateway.client.post("/v1/tasks", json=body)
    assert created.status_code == 202, created.text
    task_id = created.json()["id"]
    done: dict[str, Any] = gateway.client.get(f"/v1/tasks/{task_id}", params={"wait_s": 30}).json()
    return done


def test_the_expanded_prompt_is_what_the_provider_receives(
    gateway: LiveGateway, llm: LlmServer, fake: ControlledProvider
) -> None:
    answer = "A lighthouse on black rocks in a storm, waves exploding. The camera slowly pushes in."
    llm.emulator.reply(f"```\n{answer}\n```")
    task = run_task(gateway, prompt="lighthouse in a storm", provider="fake")
    assert task["status"] == "succeeded", task
    assert task["prompt"] == "lighthouse in a storm"
    assert task["expanded_by"] == "llm"
    assert task["expanded_prompt"] == answer
    [submitted] = fake.submits
    assert submitted.prompt == answer
    assert submitted.negative_prompt == DEFAULT_NEGATIVE
    [request] = llm.emulator.requests()
    assert "lighthouse in a storm" in request.body["messages"][1]["content"]


def test_a_task_falls_back_to_the_template_when_the_llm_is_down(
    gateway: LiveGateway, llm: LlmServer, fake: ControlledProvider
) -> None:
    llm.emulator.script(Reply(status=503, times=5))
    task = run_task(gateway, prompt="一碗牛肉面", template="food", provider="fake")
    assert task["status"] == "succeeded", task
    assert task["expanded_by"] == "template"
    assert task["expanded_prompt"].startswith("一碗牛肉面的美食视频")
    assert fake.submits[0].prompt == task["expanded_prompt"]


def test_a_task_with_a_required_llm_fails_clearly(
    gateway_factory: GatewayFactory, llm: LlmServer, fake: ControlledProvider
) -> None:
    llm.emulator.script(Reply(status=500, times=5))
    overrides = {"llm": llm.settings(required=True)}
    with gateway_factory(overrides, extra_providers={"fake": fake}) as gateway:
        task = run_task(gateway, prompt="a cat", provider="fake")
    assert task["status"] == "failed"
    assert task["error"]["code"] == "unavailable"
    assert "required" in task["error"]["message"]
    assert fake.submits == []  # nothing was spent


def test_a_task_whose_expansion_is_rejected_fails_before_the_provider(
    gateway: LiveGateway, llm: LlmServer, fake: ControlledProvider
) -> None:
    llm.emulator.reply("A casino ad for Online  Casino games.")
    task = run_task(gateway, prompt="a night in Macau", provider="fake")
    assert task["status"] == "failed"
    assert task["error"]["code"] == "content_rejected"
    assert "gambling" in task["error"]["message"]
    assert fake.submits == []


def test_creating_a_task_with_a_sensitive_prompt_is_400(
    gateway: LiveGateway, llm: LlmServer, fake: ControlledProvider
) -> None:
    for path in ("/v1/tasks", "/generate-video"):
        response = gateway.client.post(path, json={"prompt": "ｐｏｒｎ video", "provider": "fake"})
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "content_rejected"
        assert "adult" in response.json()["error"]["message"]
    assert fake.submits == []
    assert llm.emulator.requests() == []
