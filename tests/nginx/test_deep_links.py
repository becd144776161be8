"""A page opened by its own URL (a bookmark, a shared link) through Nginx in a real headless
Chromium: it shows that page, nothing it asks for fails, and nothing leaves this machine."""

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Page, Request, Response, Route, expect, sync_playwright

from tests.e2e.conftest import CHROMIUM, CHROMIUM_ARGS

# (path, the page's own title in the sidebar's navigation): app.py's st.Page titles.
DEEP_LINKS = [("/classify", "Classify"), ("/search", "Search"), ("/gallery", "Gallery")]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Module scope: Playwright's sync API holds an event loop until it stops.
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Recorded:
    """Every request the page makes: failures (HTTP >= 400 or no answer) and other hosts."""

    def __init__(self, page: Page, local_host: str):
        self.local_host = local_host
        self.failed: list[str] = []
        self.external: list[str] = []
        page.route("**/*", self.route)
        page.on("response", self.response)
        page.on("requestfailed", self.request_failed)

    def route(self, route: Route) -> None:
        if urlsplit(route.request.url).hostname == self.local_host:
            route.continue_()
        else:  # refused here, so the test never depends on the internet being there or not
            self.external.append(route.request.url)
            route.abort()

    def response(self, response: Response) -> None:
        if response.status >= 400:
            self.failed.append(f"{response.status} {response.url}")

    def request_failed(self, request: Request) -> None:
        if request.url not in self.external:
            self.failed.append(f"{request.failure} {request.url}")


def open_deep_link(browser: Browser, url: str, title: str) -> Recorded:
    context = browser.new_context()
    context.set_default_timeout(60_000)
    page = context.new_page()
    recorded = Recorded(page, urlsplit(url).hostname)
    try:
        page.goto(url)
        # The page itself, not the home page: its link in the navigation is the current one.
        current = page.get_by_test_id("stSidebarNav").locator("a[aria-current='page']")
        expect(current).to_contain_text(title, timeout=60_000)
        expect(page.get_by_test_id("stStatusWidget")).to_have_count(0, timeout=60_000)
        page.wait_for_load_state("networkidle")
        assert urlsplit(page.url).path == urlsplit(url).path
    finally:
        context.close()
    return recorded


@pytest.mark.parametrize(("path", "title"), DEEP_LINKS)
def test_a_deep_link_loads_its_page_and_nothing_fails(browser, web_stack, path, title):
    recorded = open_deep_link(browser, web_stack.url + path, title)
    assert recorded.failed == []


def test_a_deep_link_asks_no_other_host(browser, web_stack):
    recorded = open_deep_link(browser, web_stack.url + "/classify", "Classify")
    assert recorded.external == []
