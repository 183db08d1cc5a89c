"""Browser-test fixtures: one Debian Chromium per session, a fresh context per test."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect, sync_playwright

from helpers import need

from .harness import CHROMIUM, CHROMIUM_ARGS, VIEWPORT, offsite_router

OFFSITE = re.compile(r"^(?!https?://127\.0\.0\.1[:/])(?!data:|blob:|about:)")
WAIT_MS = 30_000  # for an action or an expect(): htmx round trips, with suites running beside, can take seconds

expect.set_options(timeout=WAIT_MS)  # Playwright's own default for expect() is 5 s


@pytest.fixture(scope="session")
def browser():
    need(CHROMIUM, why="the browser tests drive Debian's Chromium (apt install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser):
    """A private browser profile with traffic kept on 127.0.0.1; tests open one or more tabs in it."""
    ctx = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    ctx.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    offsite: list[str] = []
    ctx.on("weberror", lambda error: errors.append(str(error.error)))
    ctx.route(OFFSITE, offsite_router(offsite))
    yield ctx
    ctx.close()
    assert not errors, f"JavaScript errors in the page: {errors}"
    assert not offsite, f"the page requested off-machine URLs (it must work offline): {offsite}"
