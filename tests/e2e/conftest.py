"""A real headless Chromium (Debian's, driven by Playwright) against the app through Nginx.

By default the app is the session's launched stack (tiny model). E2E_BASE_URL and E2E_API_KEY
point the same tests at an app already running, e.g. `make run` with the real checkpoint and
data, which is how the screenshots in docs/ are taken.
"""

import os
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.stack import (
    API_KEY,
    ROOT,
    web_stack,  # noqa: F401 - the session's one running app
)

ARTIFACTS = ROOT / "test-artifacts" / "e2e"
# Streamlit answers over a WebSocket after each rerun; on 2 cores shared with training that can
# take tens of seconds.
expect.set_options(timeout=60_000)
# Browser downloads are impossible here: Playwright drives the system's chromium, kept quiet
# (no GPU, no background network, no sandbox as root).
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def app(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(URL of Nginx, API key)."""
    if "E2E_BASE_URL" in os.environ:
        return os.environ["E2E_BASE_URL"].rstrip("/"), os.environ.get("E2E_API_KEY", "")
    return request.getfixturevalue("web_stack").url, API_KEY


# Package scope: Playwright's sync API holds an event loop until it stops, which would break
# asyncio in tests that run after these.
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1700})
    context.set_default_timeout(60_000)
    yield context.new_page()
    context.close()


@pytest.fixture
def screenshot(page: Page):
    """screenshot("search") saves the whole page to test-artifacts/e2e/search.png."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def save(name: str) -> None:
        # Streamlit shows its "running" widget until the page script has finished, and Vega
        # draws each chart (canvas or SVG, its choice) a moment after the chart element appears.
        expect(page.get_by_test_id("stStatusWidget")).to_have_count(0)
        expect(page.get_by_test_id("stSkeleton")).to_have_count(0)  # placeholders of elements not drawn yet
        charts = page.get_by_test_id("stVegaLiteChart")
        expect(charts.locator("canvas, svg.marks")).to_have_count(charts.count())
        page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)

    return save
