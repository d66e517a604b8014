"""The README's pictures, taken from the demo a newcomer sees (`make screenshots`, with `make run` going)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from deployer.demo import setup

CHROMIUM = "/usr/bin/chromium"


class Command(BaseCommand):
    help = (
        "Sign in to the running demo (make run) as its admin in headless Chromium, deploy a branch to test and "
        "save the services, service, plan, deploy, history and delivery pages as PNGs (default: docs/)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--url", default=settings.GANTRY_BASE_URL, help="the running Gantry (make run's)")
        parser.add_argument("--out", type=Path, default=settings.BASE_DIR / "docs", help="where the PNGs go")
        parser.add_argument("--chromium", default=CHROMIUM, help="the browser to drive")

    def handle(self, *args: Any, url: str, out: Path, chromium: str, **options: Any) -> None:
        try:
            from playwright.sync_api import sync_playwright  # a development requirement, not the server's
        except ImportError as exc:
            raise CommandError("this needs the development requirements: make .venv/.installed-dev") from exc
        password_file = setup.admin_password_file()
        if not password_file.exists():
            raise CommandError(f"no {password_file}: start the demo first (make run) and run this beside it")
        out.mkdir(parents=True, exist_ok=True)
        with sync_playwright() as playwright:
            sandbox = [] if os.geteuid() else ["--no-sandbox"]  # Chromium refuses its sandbox as root
            browser = playwright.chromium.launch(executable_path=chromium, args=sandbox)
            try:
                page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
                _tour(page, url.rstrip("/"), password_file.read_text().strip(), out, self.stdout.write)
            finally:
                browser.close()


def _tour(page: Any, url: str, password: str, out: Path, say: Any) -> None:
    from playwright.sync_api import expect

    def shot(name: str) -> None:
        page.screenshot(path=str(out / f"{name}.png"))
        say(f"saved {out / name}.png")

    page.goto(url + "/")
    page.fill("input[name=username]", setup.DEMO_ADMIN)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Services")
    page.goto(url + "/services/demo/")
    # The first release is never judged: ship main first, then a branch (as the README's tour does).
    running_main = page.locator("tr[data-branch='main'] .badge-green").count() > 0
    branch = "feature/shout" if running_main else "main"
    page.click(f"tr[data-branch='{branch}'] a:has-text('Deploy to test')")
    expect(page.locator("h1")).to_have_text(f"Deploy {branch} to test")
    expect(page.locator("#plan-changes.poll")).to_have_count(0, timeout=30_000)
    shot("plan")
    page.click("[data-deploy-now]")
    expect(page.locator("#log .line", has_text="staging").first).to_be_visible(timeout=30_000)
    shot("deploy-running")
    expect(page.locator("#deploy-status [data-status='succeeded']")).to_have_count(1, timeout=180_000)
    page.wait_for_timeout(2_000)  # the last lines (pruning) arrive after the end
    page.evaluate("window.scrollTo(0, 0)")
    shot("deploy")
    page.goto(url + "/services/demo/")
    shot("service")
    page.goto(url + "/")
    shot("services")
    page.goto(url + "/history/?outcome=succeeded")
    shot("history")
    page.goto(url + "/delivery/")
    shot("delivery")
