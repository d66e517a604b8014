"""In a real browser: sign in, press Deploy, watch the log grow live to success."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from django.contrib.auth.models import AbstractBaseUser
from playwright.sync_api import Browser, Page, expect, sync_playwright

from deployer.models import Deploy
from tests.conftest import MakeEnvironment, deploy_story
from tests.support.worker import Worker

pytestmark = pytest.mark.slow
CHROMIUM = "/usr/bin/chromium"
# Headless Chromium on a machine without outside network: no background traffic.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (make test does this as root)")
    # Playwright's sync API runs an event loop in this thread; the test's own
    # database reads are still synchronous, so tell Django that is intended.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page; what it logged and every failed request are printed (pytest shows them on failure)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.on("console", lambda message: print(f"browser console {message.type}: {message.text}"))
    page.on("response", lambda r: print(f"browser got {r.status} for {r.url}") if r.status >= 400 else None)
    page.on("requestfailed", lambda r: print(f"browser request failed: {r.url} {r.failure}"))
    yield page
    context.close()


def sign_in(page: Page, base_url: str, user: AbstractBaseUser) -> None:
    page.goto(base_url + "/")
    page.fill("input[name=username]", user.get_username())
    page.fill("input[name=password]", "dana-password")
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Services")


def test_a_deploy_streams_its_log_live_to_success(
    page: Page,
    live_server: object,
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
) -> None:
    make_environment()
    sign_in(page, str(live_server), deployer)

    page.click("text=app")
    page.click("tr[data-branch='main'] a:has-text('Deploy to test')")
    # The pre-flight plan: batches, checks, the first deploy's note; then the button that starts it.
    expect(page.locator("h1")).to_have_text("Deploy main to test")
    expect(page.locator("[data-check='permission']")).to_contain_text("you may deploy here")
    expect(page.locator("ol.batches li")).to_have_count(3)
    page.click("[data-deploy-now]")
    expect(page.locator("h1")).to_contain_text("Deploy #")
    page.evaluate("window.gantryMarker = 'same page'")  # gone if the page reloads

    try:
        # Lines arrive while the deploy is still running, without a reload.
        expect(page.locator("#log .line", has_text="staging")).to_have_count(3, timeout=30_000)
        expect(page.locator("#deploy-status [data-status]")).to_have_attribute(
            "data-status", "succeeded", timeout=60_000
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{deploy_story(celery_worker)}") from exc
    expect(page.locator("#log .line").last).to_contain_text("status: running → succeeded")
    assert page.evaluate("window.gantryMarker") == "same page"
    assert page.locator("#log .line").count() == Deploy.objects.get().log_lines.count()
    expect(page.locator(".hosts [data-status='live']")).to_have_count(3)

    page.click("text=History")
    expect(page.locator("table.history tbody tr")).to_have_count(2)  # requested, ended
    expect(page.locator("table.history tr[data-action='deploy_ended']")).to_contain_text("succeeded")
