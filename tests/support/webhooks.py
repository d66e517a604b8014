"""A signed GitHub webhook, posted as GitHub would."""

from __future__ import annotations

import json
import uuid

from django.test import Client
from django.urls import reverse

from tests.fakes.github import sign
from tests.support.constants import WEBHOOK_SECRET


def post(client: Client, event: str, body: dict | bytes, *, secret: str = WEBHOOK_SECRET, delivery: str = "") -> object:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(
        reverse("hook-github"),
        raw,
        content_type="application/json",
        headers={
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
            "X-Hub-Signature-256": sign(raw, secret),
        },
    )
