"""Celery tasks: thin wrappers that fetch by id, call a service function, decide retry.

Names are in deployer/queue.py; settings.CELERY_TASK_ROUTES puts each on its
queue: `deploys` (long, its own worker with prefetch 1) or `sync` (syncs,
webhooks, publishing). Periodic tasks are declared in settings.CELERY_BEAT_SCHEDULE.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from typing import Any

from celery import Task, shared_task
from celery.signals import worker_ready
from django.conf import settings

from deployer import queue
from deployer.apitests.runs import environment_test, monitors_due
from deployer.chatops import ChatRequest, request_answer
from deployer.delivery.continuous import continuous_delivery, drift_refresh
from deployer.deploys.check_ahead import check_ahead
from deployer.deploys.error_budget import budgets_read
from deployer.deploys.execution import deploy_execute
from deployer.deploys.fleet import leavers_out_of_rotation
from deployer.deploys.lease_queue import leases_advance
from deployer.deploys.reaper import deploys_reap
from deployer.deploys.request import deploy_join
from deployer.environments.secret_scope import environment_secrets
from deployer.errors import SyncFailed
from deployer.integrations import slack
from deployer.integrations.github import GitHubRateLimited, GitHubUnavailable
from deployer.lib.logcontext import deploy_context
from deployer.models import ApiTestRun, Environment, Service
from deployer.notify.github_deployments import PublishLater, deployment_publish
from deployer.notify.grafana_outbox import annotation_send, annotations_sweep
from deployer.notify.hooks_out import BACKOFF, hook_send, hooks_sweep
from deployer.notify.identity import slack_link
from deployer.notify.outbox import SendLater, message_send
from deployer.ops.catalog_follow import catalog_follow
from deployer.ops.rounds import round_claim
from deployer.sources.branches import branch_sync
from deployer.sources.builds import build_sync
from deployer.sources.changes import change_set_compute
from deployer.sources.pacing import resync_round
from deployer.sources.webhooks import deliveries_sweep, delivery_process

logger = logging.getLogger(__name__)


@shared_task(
    bind=True,
    name=queue.RUN_DEPLOY,
    acks_late=True,
    soft_time_limit=settings.DEPLOY_TIME_LIMIT,
    time_limit=settings.DEPLOY_TIME_LIMIT + 60,
)
def run_deploy(self: Task, deploy_id: int) -> None:
    deploy_execute(deploy_id=deploy_id, worker=f"{self.request.hostname or socket.gethostname()}, pid {os.getpid()}")


def _service(service_id: int) -> Service | None:
    return Service.objects.filter(pk=service_id).first()


@shared_task(name=queue.SYNC_BRANCHES)
def sync_branches(service_id: int) -> None:
    if service := _service(service_id):
        # A failure is recorded on the service and shown on its page; the next run tries again.
        with contextlib.suppress(SyncFailed):
            branch_sync(service=service)
            continuous_delivery(service=service)


@shared_task(name=queue.COMPUTE_CHANGES)
def compute_changes(change_set_id: int) -> None:
    change_set_compute(change_set_id=change_set_id)


@shared_task(name=queue.CHECK_MIGRATIONS)
def check_migrations(check_id: int, environment_id: int) -> None:
    check_ahead(check_id, environment_id)


@shared_task(name=queue.SYNC_BUILDS)
def sync_builds(service_id: int) -> None:
    if service := _service(service_id):
        with contextlib.suppress(SyncFailed):
            build_sync(service=service)
            continuous_delivery(service=service)


def _round(name: str) -> bool:
    """Whether this scheduler's round of the periodic task `name` runs (its interval is the beat schedule's):
    not when another scheduler began one within it."""
    every = next(float(entry["schedule"]) for entry in settings.CELERY_BEAT_SCHEDULE.values() if entry["task"] == name)
    return round_claim(name, every_seconds=every)


@shared_task(name=queue.SYNC_ALL_BRANCHES)
def sync_all_branches() -> None:
    if not _round(queue.SYNC_ALL_BRANCHES):
        return
    planned = resync_round(every_seconds=settings.BRANCH_SYNC_SECONDS, per_minute=settings.GITHUB_SYNC_PER_MINUTE)
    for service_id in planned.unpaced:
        queue.enqueue(queue.SYNC_BRANCHES, service_id)
    for service_id, wait in planned.paced:
        queue.enqueue(queue.SYNC_BRANCHES, service_id, countdown=wait)


@shared_task(name=queue.SYNC_ALL_BUILDS)
def sync_all_builds() -> None:
    if not _round(queue.SYNC_ALL_BUILDS):
        return
    with_ci = Service.objects.exclude(jenkins_job="", ci="jenkins")  # a Jenkins job, or GitHub Actions
    for service_id in with_ci.values_list("pk", flat=True):
        queue.enqueue(queue.SYNC_BUILDS, service_id)


@shared_task(name=queue.DELIVER)
def deliver(service_id: int) -> None:
    if service := _service(service_id):
        continuous_delivery(service=service)


@shared_task(name=queue.REFRESH_DRIFT)
def refresh_drift(service_id: int) -> None:
    if service := _service(service_id):
        drift_refresh(service=service)


@shared_task(
    name=queue.PUBLISH_GITHUB_DEPLOYMENT,
    autoretry_for=(GitHubUnavailable, GitHubRateLimited, PublishLater),
    retry_backoff=2,
    retry_backoff_max=300,
    max_retries=10,
)
def publish_github_deployment(deploy_id: int) -> None:
    with deploy_context(deploy_id):
        deployment_publish(deploy_id=deploy_id)


@shared_task(name=queue.PROCESS_WEBHOOK, autoretry_for=(GitHubUnavailable,), retry_backoff=2, max_retries=5)
def process_webhook(delivery_id: int) -> None:
    delivery_process(delivery_id=delivery_id)


@shared_task(name=queue.SWEEP_WEBHOOKS)
def sweep_webhooks() -> None:
    if _round(queue.SWEEP_WEBHOOKS):
        deliveries_sweep()
        annotations_sweep()  # (the same minute: Grafana annotations whose send was lost or gave up)
        hooks_sweep()  # and outgoing webhooks due again


@shared_task(name=queue.SEND_SLACK, bind=True, max_retries=30)
def send_slack(self: Task, message_id: int) -> None:
    try:
        message_send(message_id)
    except SendLater as exc:
        raise self.retry(countdown=max(exc.delay, 0.2), exc=exc) from exc


@shared_task(name=queue.SEND_GRAFANA, bind=True, max_retries=30)
def send_grafana(self: Task, annotation_id: int) -> None:
    try:
        annotation_send(annotation_id)
    except SendLater as exc:
        raise self.retry(countdown=max(exc.delay, 0.2), exc=exc) from exc


@shared_task(name=queue.SEND_HOOK, bind=True, max_retries=len(BACKOFF))
def send_hook(self: Task, delivery_id: int) -> None:
    try:
        hook_send(delivery_id)
    except SendLater as exc:
        raise self.retry(countdown=max(exc.delay, 0.2), exc=exc) from exc


# Acknowledged on receipt: a worker dying mid-request loses it (the person saw "On it" and no answer)
# rather than doing it twice (a second lock, a second deploy request).
@shared_task(name=queue.CHATOPS, acks_late=False)
def chatops(request: dict[str, Any]) -> None:
    """Do what a person asked in Slack, then answer them (the answer is retried on its own: never the work)."""
    chat = ChatRequest(**request)
    answer = request_answer(chat)
    try:
        slack.respond(chat.response_url, text=answer)
    except (slack.SlackUnavailable, slack.SlackRateLimited):
        queue.enqueue(queue.SLACK_RESPOND, chat.response_url, answer)
    except slack.SlackRefused as exc:
        logger.warning("Slack refused the answer (%s); it said: %s", exc.code, answer)


@shared_task(
    name=queue.SLACK_RESPOND,
    autoretry_for=(slack.SlackUnavailable, slack.SlackRateLimited),
    retry_backoff=1,
    retry_backoff_max=60,
    max_retries=8,  # a response_url lives 30 minutes
)
def slack_respond(response_url: str, text: str) -> None:
    try:
        slack.respond(response_url, text=text)
    except slack.SlackRefused as exc:
        logger.warning("Slack refused the answer (%s); it said: %s", exc.code, text)


@shared_task(name=queue.RUN_API_TESTS)
def run_api_tests(environment_id: int, trigger: str) -> None:
    environment_test(environment_id, trigger, read=environment_secrets)  # a test env never gets prod's values


@shared_task(name=queue.MONITOR_API_TESTS)
def monitor_api_tests() -> None:
    if not _round(queue.MONITOR_API_TESTS):
        return
    for environment_id in monitors_due():  # each one claimed: it runs once per interval whatever happens
        queue.enqueue(queue.RUN_API_TESTS, environment_id, ApiTestRun.Trigger.SCHEDULE)


@shared_task(name=queue.ADVANCE_LEASES)
def advance_leases(asked: bool = False) -> None:
    """Every round (beat), and at once when a person ends a lease (`asked`)."""
    if asked or _round(queue.ADVANCE_LEASES):
        leases_advance()


@shared_task(name=queue.HOSTS_LEFT)
def hosts_left(environment_id: int) -> None:
    leavers_out_of_rotation(environment_id)


@shared_task(name=queue.HOSTS_JOINED)
def hosts_joined(environment_id: int) -> None:
    """The catalog added hosts (or a deploy that ran meanwhile ended): they get the release that runs there."""
    if environment := Environment.objects.filter(pk=environment_id).first():
        deploy_join(environment)


@shared_task(name=queue.SYNC_CATALOG, soft_time_limit=300, time_limit=330)  # a catalog is read in seconds
def sync_catalog() -> None:
    """The catalog's repository, once (beat's poll, or a push webhook); nothing when it is not in git."""
    followed = catalog_follow()
    if followed.outcome in {"refused", "unreadable"}:
        logger.warning("catalog %s %s: %s", followed.sha[:12] or "-", followed.outcome, followed.said[:500])


@shared_task(name=queue.LINK_SLACK)
def link_slack(user_id: int) -> None:
    logger.info("linking the Slack user of user %s: %s", user_id, slack_link(user_id))


@shared_task(name=queue.REAP_DEPLOYS)
def reap_deploys() -> None:
    if _round(queue.REAP_DEPLOYS):
        deploys_reap()


@shared_task(name=queue.READ_BUDGETS)
def read_budgets() -> None:
    if _round(queue.READ_BUDGETS):
        budgets_read()


@worker_ready.connect
def _reap_at_start(**kwargs: object) -> None:
    """A worker that starts may be replacing one that died: settle its deploys now."""
    deploys_reap()
