"""Enqueueing work by task name. Services call this instead of importing the
task functions, so tasks (which call services) and services never import
each other; settings.CELERY_TASK_ROUTES puts each name on its queue."""

from __future__ import annotations

from django.db import transaction
from kombu.exceptions import OperationalError

from deployer.celery import app

RUN_DEPLOY = "gantry.run_deploy"
SYNC_BRANCHES = "gantry.sync_branches"
SYNC_BUILDS = "gantry.sync_builds"
SYNC_ALL_BRANCHES = "gantry.sync_all_branches"
SYNC_ALL_BUILDS = "gantry.sync_all_builds"
DELIVER = "gantry.deliver"
REFRESH_DRIFT = "gantry.refresh_drift"
PUBLISH_GITHUB_DEPLOYMENT = "gantry.publish_github_deployment"
PROCESS_WEBHOOK = "gantry.process_webhook"
SWEEP_WEBHOOKS = "gantry.sweep_webhooks"
REAP_DEPLOYS = "gantry.reap_deploys"
ADVANCE_LEASES = "gantry.advance_leases"
SEND_SLACK = "gantry.send_slack"
SEND_GRAFANA = "gantry.send_grafana"
SEND_HOOK = "gantry.send_hook"
READ_BUDGETS = "gantry.read_budgets"
RUN_API_TESTS = "gantry.run_api_tests"
MONITOR_API_TESTS = "gantry.monitor_api_tests"
CHATOPS = "gantry.chatops"
SLACK_RESPOND = "gantry.slack_respond"
COMPUTE_CHANGES = "gantry.compute_changes"
CHECK_MIGRATIONS = "gantry.check_migrations"
HOSTS_LEFT = "gantry.hosts_left"
HOSTS_JOINED = "gantry.hosts_joined"
SYNC_CATALOG = "gantry.sync_catalog"
LINK_SLACK = "gantry.link_slack"


class QueueUnavailable(Exception):
    """The broker cannot be reached; the work was not queued."""


def enqueue(name: str, *args: object, countdown: float | None = None) -> None:
    """Send the task `name`; `countdown`: seconds before a worker may start it."""
    try:
        # A bounded retry: a request must not hang on a dead broker.
        app.send_task(
            name, args=args, countdown=countdown, retry=True, retry_policy={"max_retries": 2, "interval_start": 0.2}
        )
    except OperationalError as exc:
        raise QueueUnavailable(f"the task queue is unreachable ({exc})") from exc


def enqueue_after_commit(name: str, *args: object) -> None:
    """Enqueue once the current transaction commits (the worker must see the rows).

    robust: the rows are the record; if the broker is down the work waits for
    a sweep instead of turning the caller's request into an error. (A named
    function, not a functools.partial: Django logs a robust callback's failure
    by its __qualname__, which a partial lacks, and that turned a dead broker
    into an HTTP 500.)
    """

    def send() -> None:
        enqueue(name, *args)

    send.__qualname__ = f"enqueue({name})"
    transaction.on_commit(send, robust=True)
