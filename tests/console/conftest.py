"""The console's browser tests: Debian's Chromium driven by Playwright, and their helpers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"  # Debian's package; Playwright's own download is not reachable
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
WAIT_MS = 60_000  # an upper bound for slow shared machines, never a timing assertion


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()


def open_page(browser: Browser, *, locale: str = "en-US", width: int = 1280) -> Page:
    context = browser.new_context(viewport={"width": width, "height": 900}, locale=locale)
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors  # type: ignore[attr-defined]
    return page


def sign_in(page: Page, base_url: str, token: str) -> None:
    page.goto(f"{base_url}/")
    page.get_by_test_id("token-input").fill(token)
    page.get_by_test_id("token-submit").click()
    page.locator("header nav").wait_for()


def until(page: Page, expression: str, *, rounds: int = 600) -> None:
    """Poll ``expression`` in the page, 100 ms apart and bounded, until it is true.

    (``wait_for_function`` evaluates strings, which the console's CSP rightly forbids.)
    """
    for _ in range(rounds):
        if page.evaluate(expression):
            return
        page.wait_for_timeout(100)
    raise AssertionError(f"never true in the page: {expression}")
