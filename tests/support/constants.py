"""Secrets and tokens the session's worker and web are given (the tests sign or check with them)."""

from __future__ import annotations

DEMO_SECRET = "demo-key-for-the-tests"


SHOP_SECRET = "shop-secret-9876"


HOOK_SECRET = (
    "hook-secret-2468"  # GANTRY_WEBHOOK_WEB_TEST of the workers: signs the webhooks of tests/notify/test_hooks_out.py
)


WEBHOOK_SECRET = "webhook-secret"


JENKINS_HOOK_TOKEN = "jenkins-hook-token"
