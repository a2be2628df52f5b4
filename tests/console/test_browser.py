"""The console in a real browser: Debian's Chromium driven by Playwright, against a live gateway.

Each test saves screenshots of the pages it visits into its own ``tmp_path``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import yaml
from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from PIL import Image
from playwright.sync_api import Browser, Page, expect

from app.api.deps import PrincipalDep, TasksDep
from tests.conftest import GatewayFactory, LiveGateway, eventually
from tests.console.conftest import open_page, sign_in, until
from tests.fakes import ControlledProvider


def create(page: Page, prompt: str, *, seconds: str = "2", fps: str = "8") -> str:
    """Fill the create form and submit it; returns the new task's id."""
    page.get_by_test_id("prompt-input").fill(prompt)
    page.get_by_label("Duration (seconds)").fill(seconds)
    page.get_by_text("More options").click()
    page.get_by_label("Frames per second").fill(fps)
    page.get_by_test_id("generate").click()
    link = page.locator(".result h2 a")
    link.wait_for()
    return str(link.get_attribute("href")).rsplit("/", 1)[1]


def has_event_stream(client: httpx.Client, task_id: str) -> bool:
    with client.stream("GET", f"/v1/tasks/{task_id}/events") as response:
        return response.status_code != 404


def test_sign_in_create_watch_and_play(
    browser: Browser, gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    # No tokens configured: the gateway makes a dev token, which is what a new user signs in with.
    with gateway_factory({"auth": {"valid_tokens": "[]"}}) as gateway:
        dev_token = (gateway.data_dir / "dev-token").read_text().strip()
        page = open_page(browser)
        requests: list[Any] = []
        page.on("requestfinished", lambda request: requests.append(request))
        page.goto(f"{gateway.base_url}/")
        page.get_by_test_id("token-input").wait_for()
        page.wait_for_load_state("networkidle")
        # The page weight budget: everything the browser fetched for the first view.
        sent = sum(
            r.sizes()["responseBodySize"] + r.sizes()["responseHeadersSize"] for r in requests
        )
        assert 0 < sent < 200_000
        assert any("/console/assets/js/main." in r.url for r in requests)
        page.screenshot(path=tmp_path / "signin.png")

        page.get_by_test_id("token-input").fill("not-a-valid-token")
        page.get_by_test_id("token-submit").click()
        error = page.get_by_test_id("error-message")
        error.wait_for()
        assert "invalid or expired token" in error.inner_text()
        page.screenshot(path=tmp_path / "signin-error.png")

        # Keyboard only: the token field has focus again; type, Enter.
        page.keyboard.press("Control+A")
        page.keyboard.type(dev_token)
        page.keyboard.press("Enter")
        prompt = page.get_by_test_id("prompt-input")
        prompt.wait_for()
        assert page.evaluate("sessionStorage.getItem('vgw.token')") == dev_token
        assert page.evaluate("document.cookie") == "" and dev_token not in page.url

        prompt.fill("a paper boat drifting down a rainy street")
        page.get_by_label("Duration (seconds)").fill("2")
        page.get_by_text("More options").click()
        page.get_by_label("Frames per second").fill("8")
        page.screenshot(path=tmp_path / "create.png", full_page=True)
        # Reach Generate with Tab and press it.
        for _ in range(40):
            if page.evaluate("document.activeElement.dataset.testid") == "generate":
                break
            page.keyboard.press("Tab")
        page.keyboard.press("Enter")

        progress = page.get_by_test_id("progress")
        progress.wait_for()
        until(page, "document.querySelector('[data-testid=progress]').value === 100")
        task_id = str(page.locator(".result h2 a").get_attribute("href")).rsplit("/", 1)[1]
        with gateway.client_for(dev_token) as api:
            expected_mode = "events" if has_event_stream(api, task_id) else "poll"
            task = api.get(f"/v1/tasks/{task_id}").json()
        assert progress.get_attribute("data-live-mode") == expected_mode

        video = page.get_by_test_id("video-player")
        assert task["status"] == "succeeded"
        assert video.evaluate("v => v.tagName") == "VIDEO"
        signed_path = task["video_url"].split("?")[0]  # each read signs the URL afresh
        assert str(video.get_attribute("src")).split("?")[0] == signed_path
        until(page, "document.querySelector('[data-testid=video-player]').readyState >= 2")
        video.evaluate("v => { v.muted = true; return v.play(); }")
        until(page, "document.querySelector('[data-testid=video-player]').currentTime > 0.2")
        download = page.get_by_role("link", name="Download")
        assert str(download.get_attribute("href")).split("?")[0] == signed_path
        page.screenshot(path=tmp_path / "done.png", full_page=True)

        page.get_by_role("link", name="Tasks", exact=True).click()
        row = page.locator(f'[data-testid=task-row][data-task-id="{task_id}"]')
        row.wait_for()
        assert "succeeded" in row.inner_text() and "preview" in row.inner_text()
        assert "2 s" in row.inner_text()
        page.screenshot(path=tmp_path / "tasks.png", full_page=True)

        row.get_by_role("link").click()
        page.locator(".timeline .end-succeeded").wait_for()
        assert "default provider" in page.locator("dl.kv").inner_text()  # the route reason
        page.screenshot(path=tmp_path / "task.png", full_page=True)
        assert page.errors == []  # type: ignore[attr-defined]


def add_event_stream(app: FastAPI) -> None:
    """Serve ``GET /v1/tasks/{id}/events`` as Server-Sent Events where the gateway has none.

    It speaks the stream the gateway's contract describes (progress events with the task, then
    one terminal event), so the console's stream reader runs over real HTTP. A gateway that has
    its own stream answers first and this one is never reached.
    """

    async def events(
        task_id: str, request: Request, principal: PrincipalDep, tasks: TasksDep
    ) -> StreamingResponse:
        task = await tasks.get(task_id, owner=principal.owner)

        async def stream() -> AsyncIterator[str]:
            nonlocal task
            while True:
                body = await tasks.present(task)
                kind = task.status.value if task.status.is_terminal else "progress"
                yield f"event: {kind}\ndata: {json.dumps(body)}\n\n"
                if task.status.is_terminal:
                    return
                task = await tasks.wait(task, 0.2)

        return StreamingResponse(stream(), media_type="text/event-stream")

    app.add_api_route("/v1/tasks/{task_id}/events", events, methods=["GET"])


def test_progress_comes_from_the_event_stream_when_there_is_one(
    browser: Browser, live_gateway: LiveGateway, tmp_path: Path
) -> None:
    add_event_stream(live_gateway.app)
    page = open_page(browser)
    polls: list[str] = []
    page.on("request", lambda r: polls.append(r.url) if "wait_s=" in r.url else None)
    sign_in(page, live_gateway.base_url, live_gateway.token)
    task_id = create(page, "a lighthouse at dusk")
    until(page, "document.querySelector('[data-testid=progress]').value === 100")
    assert page.get_by_test_id("progress").get_attribute("data-live-mode") == "events"
    page.get_by_test_id("video-player").wait_for()
    assert polls == []  # no long-poll fallback was needed
    assert live_gateway.client.get(f"/v1/tasks/{task_id}").json()["status"] == "succeeded"
    page.screenshot(path=tmp_path / "events.png")


def test_cancel_a_slow_task(
    browser: Browser, gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    slow = ControlledProvider("slow")  # runs until released: never, here
    with gateway_factory(extra_providers={"slow": slow}) as gateway:
        page = open_page(browser)
        sign_in(page, gateway.base_url, gateway.token)
        page.get_by_label("Provider", exact=True).select_option("slow")
        # An image for image-to-video, and the expansion previewed, then generated as shown.
        image = tmp_path / "first-frame.png"
        Image.new("RGB", (64, 36), (200, 80, 40)).save(image)
        page.get_by_text("Image to video").click()
        page.get_by_label("Upload an image").set_input_files(image)
        page.locator("img.thumb").wait_for()
        page.get_by_test_id("prompt-input").fill("a glacier calving, slowly")
        page.get_by_label("Template").select_option("product_showcase")
        page.get_by_role("button", name="Expand first").click()
        expanded = page.get_by_label("Expanded prompt (editable)")
        expanded.wait_for()
        preview = expanded.input_value()
        assert preview and preview != "a glacier calving, slowly"
        task_id = create(page, "a glacier calving, slowly")
        request = gateway.client.get(f"/v1/tasks/{task_id}").json()["request"]
        assert request["prompt"] == preview and request["expand_prompt"] is False
        assert request["metadata"] == {"idea": "a glacier calving, slowly"}
        assert "template" not in request  # applied once, in the preview
        assert request["image_url"].startswith("data:image/png;base64,")
        chip = page.locator(".result .chip")
        until(page, "document.querySelector('.result .chip').textContent === 'running'")
        page.get_by_role("button", name="Cancel").click()
        until(page, "document.querySelector('.result .chip').textContent === 'cancelled'")
        assert chip.inner_text() == "cancelled"
        assert not page.get_by_role("button", name="Cancel").is_visible()
        # What matters: the job was cancelled at the provider, not just hidden.
        assert slow.cancelled == [f"slow-{task_id}"]
        assert gateway.client.get(f"/v1/tasks/{task_id}").json()["status"] == "cancelled"
        page.screenshot(path=tmp_path / "cancelled.png", full_page=True)

        # An admin cancels another tenant's task from its page as well (with ?owner=all).
        issued = gateway.client.post("/v1/admin/tokens", json={"name": "team-slow"}).json()
        with gateway.client_for(issued["token"]) as team:
            body = {"prompt": "their glacier", "provider": "slow", "duration_ms": 500, "fps": 4}
            theirs = team.post("/v1/tasks", json=body).json()
            gateway.wait_task(theirs["id"], lambda t: t["provider_task_id"] is not None, team)
            page.goto(f"{gateway.base_url}/#/tasks/{theirs['id']}")
            expect(page.get_by_test_id("foreign-task")).to_be_visible()
            page.get_by_role("button", name="Cancel").click()
            gateway.wait_task(theirs["id"], lambda t: t["status"] == "cancelled", team)
        # The status is written first; the provider's cancel follows within the same request.
        eventually(lambda: len(slow.cancelled) == 2)
        assert slow.cancelled == [f"slow-{task_id}", f"slow-{theirs['id']}"]
        expect(page.get_by_role("button", name="Cancel")).to_be_hidden()
        page.screenshot(path=tmp_path / "cancelled-foreign.png", full_page=True)
    slow.release()


def snippet(page: Page, name: str) -> str:
    return str(page.locator(f'pre[data-snippet="{name}"]').text_content())


def test_snippets_run_as_written(
    browser: Browser, live_gateway: LiveGateway, tmp_path: Path
) -> None:
    page = open_page(browser)
    sign_in(page, live_gateway.base_url, live_gateway.token)
    page.get_by_role("link", name="Integrate").click()
    page.locator('pre[data-snippet="curl-sync"]').wait_for()
    assert live_gateway.token not in snippet(page, "curl-sync")  # masked until asked
    page.get_by_test_id("reveal-token").check()
    page.locator(".downloads a").first.wait_for()
    page.screenshot(path=tmp_path / "integrate.png", full_page=True)

    curl = snippet(page, "curl-sync")
    assert curl.startswith("curl ") and live_gateway.token in curl
    ran = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    assert result["status"] == "succeeded"
    assert httpx.get(result["video_url"]).content[4:8] == b"ftyp"

    python = subprocess.run(
        [sys.executable, "-c", snippet(page, "python-http")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert python.returncode == 0, python.stderr
    assert httpx.get(python.stdout.strip()).content[4:8] == b"ftyp"

    # The openai SDK snippet, against the gateway's /v1/videos: it saves the video it made.
    openai = subprocess.run(
        [sys.executable, "-c", snippet(page, "python-openai")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert openai.returncode == 0, openai.stderr
    assert openai.stdout.split() == ["completed", "100"]
    assert (tmp_path / "video.mp4").read_bytes()[4:8] == b"ftyp"

    # The Dify file links carry the URL typed into the page, never the token.
    page.get_by_test_id("dify-base-url").fill("http://host.docker.internal:8000")
    href = page.locator('a[data-workflow="dify_workflow.yml"]').get_attribute("href")
    dsl = httpx.get(str(href)).text
    variables = {v["name"]: v for v in yaml.safe_load(dsl)["workflow"]["environment_variables"]}
    assert variables["GATEWAY_BASE_URL"]["value"] == "http://host.docker.internal:8000"
    assert live_gateway.token not in dsl


def test_chinese_ui_at_phone_width(
    browser: Browser, live_gateway: LiveGateway, tmp_path: Path
) -> None:
    live_gateway.client.post(
        "/v1/tasks", json={"prompt": "一只在雨中奔跑的小狗", "duration_ms": 1000}
    )
    page = open_page(browser, locale="zh-CN", width=390)
    page.goto(f"{live_gateway.base_url}/")
    assert page.get_by_test_id("token-submit").inner_text() == "登录"
    assert page.evaluate("document.documentElement.lang") == "zh-CN"
    page.screenshot(path=tmp_path / "zh-signin.png")
    sign_in(page, live_gateway.base_url, live_gateway.token)
    assert page.get_by_role("link", name="创作").is_visible()
    assert page.get_by_test_id("generate").inner_text() == "生成"
    page.screenshot(path=tmp_path / "zh-create-phone.png", full_page=True)

    page.get_by_role("link", name="任务", exact=True).click()
    page.get_by_test_id("task-row").first.wait_for()
    fits: Any = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert fits is True  # nothing sticks out sideways on a phone
    page.screenshot(path=tmp_path / "zh-tasks-phone.png", full_page=True)

    page.get_by_role("link", name="运维").click()
    page.get_by_text("就绪", exact=True).wait_for()
    page.get_by_role("heading", name="托管令牌").wait_for()  # the admin parts: an admin token
    page.get_by_test_id("stat-queued").wait_for()  # the counts arrived
    fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert fits is True
    page.screenshot(path=tmp_path / "zh-operate-phone.png", full_page=True)

    page.get_by_test_id("lang-toggle").click()
    page.get_by_role("link", name="Create").wait_for()
    assert page.evaluate("document.documentElement.lang") == "en"
    assert page.errors == []  # type: ignore[attr-defined]
