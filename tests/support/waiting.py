"""Waiting for what a worker does: a condition, a deploy's end (failing with the whole story)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from deployer.models import Deploy
from tests.support.worker import Worker


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"condition not met within {timeout} s")


def wait_for_deploy(deploy_id: int, worker: Worker, timeout: float = 60.0) -> Deploy:
    """Wait for a deploy to finish; fail with the whole story if it does not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        deploy = Deploy.objects.get(pk=deploy_id)
        if not deploy.is_active:
            return deploy
        time.sleep(0.2)
    pytest.fail(f"deploy #{deploy_id} did not finish in {timeout} s\n{deploy_story(worker)}")


def deploy_story(worker: Worker) -> str:
    """Every deploy's state and log, and the worker's log: what a failing test needs to explain itself."""
    parts = []
    for deploy in Deploy.objects.order_by("pk"):
        lines = "\n".join(str(line) for line in deploy.log_lines.all())
        parts.append(f"--- deploy #{deploy.pk}: {deploy.status} {deploy.reason}\n{lines}")
    return "\n".join(parts) + f"\n--- worker log (last 4000 characters)\n{worker.log()[-4000:]}"
