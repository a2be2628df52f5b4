"""The console's Operate and Tasks pages in a real browser: what an admin runs from there (tokens,
provider health, counts across tenants, batches, every tenant's tasks) and what a tenant sees.

Each test saves screenshots of the pages it visits into its own ``tmp_path``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, Page, expect

from app.errors import ProviderAuthError
from tests.conftest import GatewayFactory
from tests.console.conftest import open_page, sign_in, until
from tests.fakes import ControlledProvider

QUICK = {"duration_ms": 500, "fps": 4}


def finished(client: httpx.Client, task_id: str) -> dict[str, Any]:
    for _ in range(100):
        task: dict[str, Any] = client.get(f"/v1/tasks/{task_id}", params={"wait_s": 1}).json()
        if task["status"] in ("succeeded", "failed", "cancelled"):
            return task
    raise AssertionError(f"{task_id} never ended")


def has_event_stream(client: httpx.Client, task_id: str) -> bool:
    with client.stream("GET", f"/v1/tasks/{task_id}/events") as response:
        return response.status_code != 404


def issued_token(page: Page) -> str:
    shown = page.get_by_test_id("new-token-value")
    shown.wait_for()
    return str(shown.inner_text()).strip()


def token_row(page: Page, name: str) -> Any:
    return page.locator(f'[data-testid=operate-tokens] tr[data-token="{name}"]')


def test_operate_tokens_health_and_failures_as_admin_and_as_a_tenant(
    browser: Browser, gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    # "broken": the provider refuses our credentials, which opens its circuit at once.
    broken = ControlledProvider("broken")
    broken.submit_error = ProviderAuthError(
        "broken refused the credentials", provider="broken", open_circuit=True
    )
    with gateway_factory(extra_providers={"broken": broken}) as gateway:
        failed = gateway.client.post(
            "/v1/tasks", json={"prompt": "never made", "provider": "broken", **QUICK}
        ).json()["id"]
        made = gateway.client.post("/v1/tasks", json={"prompt": "made", **QUICK}).json()["id"]
        assert finished(gateway.client, failed)["status"] == "failed"
        assert finished(gateway.client, made)["status"] == "succeeded"

        page = open_page(browser)
        page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        sign_in(page, gateway.base_url, gateway.token)
        page.get_by_role("link", name="Operate").click()

        # Provider health: the circuit from /v1/providers, the breaker's detail from /readyz.
        health = page.locator('[data-testid=operate-providers] tr[data-provider="broken"]')
        expect(health.locator("[data-circuit]")).to_have_attribute("data-circuit", "open")
        expect(health).to_contain_text("open (skipped)")
        expect(health).to_contain_text("provider_auth × 1")
        expect(
            page.locator('[data-testid=operate-providers] tr[data-provider="preview"]')
        ).to_contain_text("healthy")

        # Counts and failures across tenants, from /v1/admin/stats.
        failures = page.locator('[data-testid=operate-failures] tr[data-code="provider_auth"]')
        expect(failures).to_contain_text("broken refused the credentials")
        expect(failures.locator("td").first).to_have_text("1")
        counts = page.get_by_test_id("operate-counts")
        by_provider = counts.locator('tr[data-provider="broken"]')
        by_provider.wait_for()
        # queued, running, succeeded, failed, cancelled
        assert by_provider.locator("td").all_inner_texts() == ["0", "0", "0", "1", "0"]
        preview = counts.locator('tr[data-provider="preview"] td').all_inner_texts()
        assert preview == ["0", "0", "1", "0", "0"]

        # Create a token from the page: shown once, with a copy button that copies it.
        tokens = page.get_by_test_id("operate-tokens")
        tokens.get_by_label("Name").fill("team-b")
        tokens.get_by_label("Tasks per day").fill("50")
        tokens.get_by_role("checkbox", name="preview").check()
        tokens.get_by_role("button", name="Create token").click()
        first = issued_token(page)
        assert first.startswith("vgw_")
        page.get_by_test_id("new-token").get_by_role("button", name="Copy").click()
        assert page.evaluate("navigator.clipboard.readText()") == first
        row = token_row(page, "team-b")
        expect(row).to_contain_text("50 tasks a day · providers: preview")
        expect(row.get_by_test_id("token-usage")).to_have_text("0 active · 0 today")
        expect(row).to_contain_text("never")

        # The token works, and what it does shows up in its row.
        with gateway.client_for(first) as team:
            me = team.get("/v1/me").json()
            assert me["name"] == "team-b" and me["admin"] is False
            theirs = team.post("/v1/tasks", json={"prompt": "team b's", **QUICK}).json()["id"]
            finished(team, theirs)
        page.get_by_role("button", name="Refresh").click()
        expect(row.get_by_test_id("token-usage")).to_have_text("0 active · 1 today")
        expect(row).not_to_contain_text("never")
        page.screenshot(path=tmp_path / "operate-admin.png", full_page=True)

        # Rotate, the old token stopping at once: a new one is shown; only it works.
        row.get_by_role("button", name="Rotate").click()
        page.get_by_label("The old token keeps working for").select_option("0")
        page.screenshot(path=tmp_path / "operate-rotate.png")
        page.get_by_test_id("dialog-confirm").click()
        expect(page.get_by_test_id("new-token")).to_contain_text("New token for team-b.")
        second = issued_token(page)
        assert second.startswith("vgw_") and second != first
        with gateway.client_for(first) as old, gateway.client_for(second) as new:
            assert old.get("/v1/me").status_code == 403
            assert new.get("/v1/me").json()["name"] == "team-b"

        # A tenant (not an admin) sees its own token and the providers, no admin section,
        # and the console never asks the admin endpoints for it.
        viewer = open_page(browser)
        asked: list[str] = []
        viewer.on("request", lambda r: asked.append(r.url))
        sign_in(viewer, gateway.base_url, second)
        # Create offers only the providers this token may use.
        choices = viewer.get_by_label("Provider", exact=True).locator("option")
        expect(choices).to_have_count(2)
        assert choices.all_inner_texts() == ["Automatic (routing rules)", "preview (default)"]
        viewer.get_by_role("link", name="Operate").click()
        expect(viewer.get_by_test_id("operate-me")).to_contain_text("team-b")
        expect(viewer.get_by_test_id("operate-me")).to_contain_text("1 today")
        expect(
            viewer.locator(
                '[data-testid=operate-providers] tr[data-provider="broken"] [data-circuit]'
            )
        ).to_have_attribute("data-circuit", "open")
        expect(viewer.get_by_test_id("operate-ready")).to_contain_text("ready")
        expect(viewer.get_by_test_id("admin-sections")).to_be_hidden()
        viewer.screenshot(path=tmp_path / "operate-tenant.png", full_page=True)
        viewer.get_by_role("link", name="Tasks", exact=True).click()
        viewer.get_by_test_id("task-row").first.wait_for()
        expect(viewer.get_by_test_id("all-tenants")).to_be_hidden()
        assert not [url for url in asked if "/v1/admin/" in url or url.endswith("/metrics")]
        assert viewer.errors == []  # type: ignore[attr-defined]

        # A name taken is the gateway's 409, shown as such.
        tokens.get_by_label("Name").fill("team-b")
        tokens.get_by_role("button", name="Create token").click()
        expect(tokens.get_by_test_id("error-message")).to_contain_text("409 conflict")

        # Revoke: Escape leaves the dialog without doing anything; confirmed, the row says so
        # and the token stops working.
        row.get_by_role("button", name="Revoke").click()
        page.keyboard.press("Escape")
        expect(page.locator("dialog")).to_have_count(0)
        assert gateway.client.get("/v1/admin/tokens/team-b").json()["status"] == "active"
        row.get_by_role("button", name="Revoke").click()
        page.get_by_test_id("dialog-confirm").click()
        expect(row.get_by_test_id("token-revoked")).to_be_visible()
        with gateway.client_for(second) as revoked:
            assert revoked.get("/v1/me").status_code == 403
        assert gateway.client.get("/v1/admin/tokens/team-b").json()["status"] == "revoked"
        page.screenshot(path=tmp_path / "operate-revoked.png", full_page=True)
        assert page.errors == []  # type: ignore[attr-defined]


def test_tasks_by_batch_reuse_and_every_tenant(
    browser: Browser, gateway_factory: GatewayFactory, tmp_path: Path
) -> None:
    with gateway_factory({"cache": {"ttl_h": 24}}) as gateway:
        sheet = "prompt,duration_ms,fps\nfirst row,500,4\nsecond row,500,4\n"
        batch = gateway.client.post(
            "/v1/batches", files={"file": ("ideas.csv", sheet.encode(), "text/csv")}
        ).json()
        original = gateway.client.post("/v1/tasks", json={"prompt": "once", **QUICK}).json()
        finished(gateway.client, original["id"])
        reused = gateway.client.post("/v1/tasks", json={"prompt": "once", **QUICK}).json()
        assert reused["cached_from"] == original["id"]  # the gateway reused the video
        for _ in range(100):
            state = gateway.client.get(f"/v1/batches/{batch['id']}", params={}).json()
            if state["status"] == "completed":
                break
            # Long-poll a row still under way (the preview renders two at a time: one waits).
            rows = gateway.client.get("/v1/tasks", params={"group_id": batch["id"]}).json()
            waiting = [t["id"] for t in rows["data"] if t["status"] in ("queued", "running")]
            if waiting:
                gateway.client.get(f"/v1/tasks/{waiting[0]}", params={"wait_s": 2})
        assert state["counts"]["succeeded"] == 2
        team_token = gateway.client.post("/v1/admin/tokens", json={"name": "team-c"}).json()
        with gateway.client_for(team_token["token"]) as team:
            theirs = team.post("/v1/tasks", json={"prompt": "someone else's", **QUICK}).json()

        page = open_page(browser)
        sign_in(page, gateway.base_url, gateway.token)
        page.get_by_role("link", name="Tasks", exact=True).click()
        rows = page.get_by_test_id("task-row")
        expect(rows).to_have_count(4)  # ours: two batch rows, the original, the reused one
        expect(page.locator(f'[data-task-id="{reused["id"]}"]')).to_contain_text("reused")

        # The batch filter is the batch's group: only its rows, with the batch's summary.
        page.get_by_label("Batch", exact=True).select_option(batch["id"])
        page.get_by_role("button", name="Filter").click()
        summary = page.get_by_test_id("batch-summary")
        expect(summary).to_contain_text("2 rows")
        expect(summary).to_contain_text("completed")
        expect(rows).to_have_count(2)
        prompts = page.locator("[data-testid=task-row] td.prompt a").all_inner_texts()
        assert sorted(prompts) == ["first row", "second row"]
        assert f"group_id={batch['id']}" in page.url
        with page.expect_download() as download:
            summary.get_by_role("button", name="Download results.csv").click()
        results = list(
            csv.DictReader(io.StringIO(Path(download.value.path()).read_text("utf-8-sig")))
        )
        assert [r["prompt"] for r in results] == ["first row", "second row"]
        assert all(r["status"] == "succeeded" and r["task_id"] for r in results)
        page.screenshot(path=tmp_path / "tasks-batch.png", full_page=True)

        # A reused video's page links to the task that made it.
        page.goto(f"{gateway.base_url}/#/tasks/{reused['id']}")
        page.get_by_test_id("cached-from").click()
        expect(page.locator("h1 code")).to_have_text(original["id"])
        # This tab never watched that task: its stage times come from the gateway's event
        # history where the gateway keeps one, else they are unknown (and the page says so).
        page.locator(".timeline[data-complete]").wait_for()
        generating = page.locator('.timeline [data-step="generating"] time').inner_text()
        if has_event_stream(gateway.client, original["id"]):
            assert generating.startswith("+") and generating.endswith(" s")
        else:
            assert generating == "—"
            expect(page.locator(".timeline .summary")).to_contain_text("24 hours")

        # Every tenant's tasks, for an admin: another tenant's task opens read-only.
        page.goto(f"{gateway.base_url}/#/tasks")
        expect(rows).to_have_count(4)
        expect(page.get_by_role("columnheader", name="Tenant")).to_have_count(0)
        page.get_by_test_id("all-tenants").check()
        page.get_by_role("button", name="Filter").click()
        other = page.locator(f'[data-task-id="{theirs["id"]}"]')
        expect(other).to_be_visible()
        assert "owner=all" in page.url
        # Each row says whose it is: the other tenant's name, and ours.
        expect(page.get_by_role("columnheader", name="Tenant")).to_be_visible()
        expect(other.get_by_test_id("task-owner")).to_have_text("team-c")
        me = gateway.client.get("/v1/me").json()["name"]
        ours = page.locator(f'[data-task-id="{original["id"]}"]')
        expect(ours.get_by_test_id("task-owner")).to_have_text(me)
        page.screenshot(path=tmp_path / "tasks-all-tenants.png", full_page=True)
        other.get_by_role("link").click()
        expect(page.get_by_test_id("foreign-task")).to_be_visible()
        expect(page.get_by_test_id("task-owner")).to_have_text("team-c")
        until(page, "document.querySelector('.timeline .end-succeeded') !== null")
        assert not page.get_by_role("button", name="Cancel").is_visible()
        page.screenshot(path=tmp_path / "task-foreign.png", full_page=True)
        assert page.errors == []  # type: ignore[attr-defined]
