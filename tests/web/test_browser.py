"""In a real browser: sign in, press Deploy, watch the log grow live to success, find the deploy in the
history, filter it and export the CSV, and see the delivery charts. Every page passes axe-core's WCAG 2 A and
AA rules in the light and the dark theme, and works 390 px wide. Each page is saved as a screenshot in
the test's temporary folder (GANTRY_SCREENSHOTS names another): the suite never rewrites tracked files; the
README's pictures come from the demo (`make screenshots`)."""

from __future__ import annotations

import csv
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone
from playwright.sync_api import Browser, Page, expect

from deployer.models import Deploy, DeployLog
from tests.support.catalogs import MakeEnvironment
from tests.support.waiting import deploy_story
from tests.support.worker import Worker

pytestmark = [pytest.mark.slow, pytest.mark.one_backend]


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


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("GANTRY_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shot(page: Page, folder: Path, name: str) -> None:
    """Save what the browser shows as <folder>/<name>.png (a failing test's last pictures are there), after
    checking the page's accessibility in both themes."""
    page.screenshot(path=str(folder / f"{name}.png"))
    assert accessibility_problems(page) == [], name


WCAG_AA = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}


def accessibility_problems(page: Page) -> list[str]:
    """axe-core's WCAG 2.1 A/AA violations on the page, in the light and then the dark theme."""
    found = []
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        for violation in Axe().run(page, options=WCAG_AA).response["violations"]:
            targets = ", ".join(str(node["target"]) for node in violation["nodes"][:3])
            found.append(f"{scheme}: {violation['id']} ({violation['help']}): {targets}")
    page.emulate_media(color_scheme="light")
    return found


def sign_in(page: Page, base_url: str, user: AbstractBaseUser) -> None:
    page.goto(base_url + "/")
    page.fill("input[name=username]", user.get_username())
    page.fill("input[name=password]", "dana-password")
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Services")


def _settled_count(deploy: Deploy) -> int:
    """How many lines the deploy's log has once no new one came for 2 s (at most 20 s)."""
    deadline, last, since = time.monotonic() + 20, -1, time.monotonic()
    while time.monotonic() < deadline:
        count = deploy.log_lines.count()
        if count != last:
            last, since = count, time.monotonic()
        elif time.monotonic() - since >= 2:
            break
        time.sleep(0.2)
    return last


def test_deploy_watch_it_find_it_in_history_export_it_and_see_the_metrics(
    page: Page,
    live_server: object,
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    dana_deploys_to_prod: None,
    screenshots: Path,
) -> None:
    # A production environment, so the deploy counts in the delivery metrics.
    make_environment(options={"production": "true", "require_green_build": "false"})
    sign_in(page, str(live_server), deployer)
    shot(page, screenshots, "services")

    page.click("text=app")
    expect(page.locator("h1")).to_contain_text("app")
    shot(page, screenshots, "service")
    page.click("tr[data-branch='main'] a:has-text('Deploy to test')")
    # The pre-flight plan: batches, checks, the first deploy's note; then the button that starts it.
    expect(page.locator("h1")).to_have_text("Deploy main to test")
    expect(page.locator("[data-check='permission']")).to_contain_text("you may deploy here")
    expect(page.locator("ol.batches li")).to_have_count(3)
    shot(page, screenshots, "plan")
    page.click("[data-deploy-now]")
    expect(page.locator("h1")).to_contain_text("Deploy #")
    page.evaluate("window.gantryMarker = 'same page'")  # gone if the page reloads

    try:
        # Lines arrive while the deploy is still running, without a reload.
        expect(page.locator("#log .line", has_text="staging")).to_have_count(3, timeout=30_000)
        shot(page, screenshots, "deploy-running")
        expect(page.locator("#deploy-status [data-status]")).to_have_attribute(
            "data-status", "succeeded", timeout=60_000
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{deploy_story(celery_worker)}") from exc
    expect(page.locator("#log .line").last).to_contain_text("status: running → succeeded")
    assert page.evaluate("window.gantryMarker") == "same page"
    deploy = Deploy.objects.get()
    # Old releases are pruned after the end is recorded, and that is logged: the page keeps polling until the
    # log has every line.
    expect(page.locator("#log .line")).to_have_count(_settled_count(deploy), timeout=15_000)
    expect(page.locator(".hosts [data-status='live']")).to_have_count(3)
    shot(page, screenshots, "deploy")

    # History: the deploy's request and its end; filter to the end, then export exactly that.
    page.click("header >> text=History")
    rows = page.locator("table.history tbody tr")
    expect(rows).to_have_count(2)  # requested, ended
    page.select_option("select[name=outcome]", "succeeded")
    page.click("form.filters button[type=submit]")
    expect(page).to_have_url(re.compile(r"[?&]outcome=succeeded"))
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(f"#{deploy.pk}")
    expect(rows.first.locator("[data-status]")).to_have_attribute("data-status", "succeeded")
    shot(page, screenshots, "history")
    with page.expect_download() as download:
        page.click("text=Export CSV")
    exported = list(csv.DictReader(Path(download.value.path()).read_text().splitlines()))
    assert [(row["deploy"], row["outcome"], row["who"]) for row in exported] == [(str(deploy.pk), "succeeded", "dana")]

    # Delivery metrics: one production deploy today, drawn by Chart.js, with its numbers in a table.
    page.click("header >> text=Delivery")
    expect(page.locator("[data-figure='deploys'] td").nth(1)).to_have_text("1")
    for chart in ("per_day", "per_week", "by_weekday", "by_hour"):
        expect(page.locator(f"canvas[data-chart='{chart}']")).to_have_attribute("data-drawn", "true")
    shot(page, screenshots, "delivery")


def test_pages_work_390_pixels_wide(
    browser: Browser, live_server: object, make_environment: MakeEnvironment, deployer: AbstractBaseUser
) -> None:
    """A phone: nothing makes the page itself scroll sideways (wide tables scroll inside themselves), and the
    Deploy buttons are there."""
    environment = make_environment()
    deploy = Deploy.objects.create(environment=environment, ref="main", sha="a" * 40, status="succeeded")
    DeployLog.objects.create(deploy=deploy, at=timezone.now(), host="127.0.0.11", message="a long line " * 30)
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    sign_in(page, str(live_server), deployer)
    for path in ("/", "/services/app/", f"/deploys/{deploy.pk}/", "/history/", "/delivery/"):
        page.goto(str(live_server) + path)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} is {width} px wide"
        assert accessibility_problems(page) == [], path
    page.goto(str(live_server) + "/services/app/")
    expect(page.locator("tr[data-branch='main'] a:has-text('Deploy to test')")).to_be_visible()
    context.close()


def test_the_other_pages_pass_the_accessibility_rules_in_both_themes(
    page: Page, live_server: object, make_environment: MakeEnvironment, deployer: AbstractBaseUser
) -> None:
    """The pages the deploy story above does not pass through: sign-in, the catalog, the person's page, the
    integrations page (an admin's), and a deploy waiting for its approval (the approve button)."""
    environment = make_environment()
    Deploy.objects.create(environment=environment, ref="main", sha="a" * 40, status="awaiting_approval")
    waiting = Deploy.objects.get()
    deployer.is_superuser = deployer.is_staff = True  # type: ignore[attr-defined]
    deployer.save()
    page.goto(str(live_server) + "/accounts/login/")
    assert accessibility_problems(page) == [], "sign-in"
    sign_in(page, str(live_server), deployer)
    for path in ("/catalog/", "/me/", "/status/", f"/deploys/{waiting.pk}/"):
        page.goto(str(live_server) + path)
        expect(page.locator("h1")).to_be_visible()
        assert accessibility_problems(page) == [], path
