"""Pages as a browser ends up showing them."""

from __future__ import annotations

import re
import time

import pytest
from django.test import Client
from django.urls import reverse


def plan_page(client: Client, service: str, environment: str, ref: str, timeout: float = 20.0) -> str:
    """The plan page as a browser ends up showing it: its commits and migration files come from a worker,
    which the page polls for (hx-get) until they are there."""
    page = client.get(reverse("deploy-plan", args=[service, environment]), {"ref": ref}).content.decode()
    deadline = time.monotonic() + timeout
    while (poll := re.search(r'<div id="plan-changes" class="poll" hx-get="([^"]+)"', page)) is not None:
        if time.monotonic() > deadline:
            pytest.fail(f"the plan's changes did not arrive within {timeout} s")
        time.sleep(0.1)
        fragment = client.get(poll.group(1)).content.decode()
        start = page.index('<div id="plan-changes"')
        end = page.index("</div>", start) + len("</div>")
        page = page[:start] + fragment + page[end:]
    return page
