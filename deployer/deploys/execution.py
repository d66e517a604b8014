"""Running one deploy, top to bottom. Workers call `deploy_execute`."""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import connection
from django.utils import timezone

from deployer.apitests import runs as api_test_runs
from deployer.choices import DeployStatus, HostStatus
from deployer.deploys import rollout
from deployer.deploys.builder import artifact_for, artifacts_prune, jenkins_artifact
from deployer.deploys.ci_artifacts import github_artifact
from deployer.deploys.config import ConfigError, Rendered, SecretMissing, config_render
from deployer.deploys.endings import Ended, Ending
from deployer.deploys.error_budget import budget_blocks
from deployer.deploys.fleet import Fleet, newcomers
from deployer.deploys.lifecycle import deploy_claim, deploy_transition
from deployer.deploys.log import deploy_log_settle, deploy_logger, deploy_logging
from deployer.deploys.migration_check import check_refusal
from deployer.deploys.rules import deploy_duration, deploy_freeze
from deployer.deploys.schema_changes import migrations_record, schema_refusal
from deployer.deploys.shipped import shipped_record
from deployer.environments.freezes import freeze_refusal
from deployer.environments.secret_scope import deploy_secrets, environment_secrets
from deployer.errors import StepFailed
from deployer.integrations import git
from deployer.lib.logcontext import deploy_context
from deployer.lib.secrets import SecretSourceError, secrets_read
from deployer.models import Deploy
from deployer.notify import outbox


def deploy_execute(*, deploy_id: int, worker: str = "") -> None:
    """Claim the deploy (or stand down if another delivery has it), roll it out, record the outcome.
    `worker` names this worker (its node name and pid): the deploy page shows it, a missing secret names it."""
    with deploy_context(deploy_id):
        deploy = deploy_claim(deploy_id=deploy_id, worker=worker)
        if deploy is None:
            return
        _execute(deploy)


def _execute(deploy: Deploy) -> None:
    with deploy_logging(deploy) as hidden, _heartbeat(deploy.pk):
        status, reason, rollback_failed = _pipeline(deploy, hidden)  # (the row masks `hidden` in the reason)
        lock = ROLLBACK_FAILED_LOCK.format(pk=deploy.pk) if rollback_failed else ""
        shipped_record(deploy)  # (recorded before the rollout; again here only if that failed)
        deploy_log_settle(deploy.pk)
        if not deploy_transition(deploy, to=status, reason=reason, lock=lock):
            # Someone (an admin, the reaper) ended it meanwhile; keep this worker's view on record too.
            deploy.refresh_from_db(fields=["status"])
            deploy_logger(deploy.pk).warning(
                "the deploy was already %s; this worker ended with %s: %s", deploy.status, status, reason or "-"
            )
        elif status in DeployStatus.live():
            rollout.prune_all(deploy)  # after the end is recorded: it never delays "succeeded"
            if deploy.environment.build_mode == "builder":
                artifacts_prune(deploy)


@contextmanager
def _heartbeat(deploy_id: int) -> Iterator[None]:
    """Stamp the deploy every few seconds while this worker runs it.

    When the worker dies the stamps stop, and the reaper settles the deploy.
    """
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(settings.DEPLOY_HEARTBEAT_SECONDS):
                Deploy.objects.filter(pk=deploy_id, status=DeployStatus.RUNNING).update(heartbeat_at=timezone.now())
        finally:
            connection.close()

    Deploy.objects.filter(pk=deploy_id).update(heartbeat_at=timezone.now())
    thread = threading.Thread(target=beat, name=f"heartbeat-{deploy_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=5)


# A rollback that failed leaves hosts on different releases: nobody deploys there until a person has looked.
ROLLBACK_FAILED_LOCK = "deploy #{pk}: its rollback failed, so hosts may run different releases; check them, then unlock"


class Outcome(NamedTuple):
    status: DeployStatus
    reason: str
    rollback_failed: bool = False


def _pipeline(deploy: Deploy, hidden: list[str]) -> Outcome:
    """The steps; the one place that maps endings to a final state and reason. The deploy's secrets go
    into `hidden` as soon as they are known (the log masks them)."""
    log = deploy_logger(deploy.pk)
    try:
        log.info(
            "deploying %s (%s) of %s to %s",
            deploy.sha,
            deploy.ref,
            deploy.environment.service.name,
            deploy.environment.name,
        )
        if deploy.is_rollback:
            _hide_secrets(deploy, hidden)  # its restarts read the config and may print it
            log.info(
                "rolling back to release %s (%s), which the hosts still keep", deploy.release_name, deploy.sha[:12]
            )
            with Fleet.rolling_out(deploy).connected() as fleet:
                ended = rollout.rollout(fleet, None, on_batch=outbox.story_changed)
            reason = "; ".join(part for part in (deploy.rollback_confirmation, ended.reason) if part)
            return _after_tests(deploy, reason) if ended.live else _outcome(ended)
        if deploy.is_join and (refused := _join_refused(deploy)):
            return refused
        if not deploy.is_join and (refused := _gated(deploy)):
            return refused
        config = _config(deploy, hidden)
        with tempfile.TemporaryDirectory(prefix="gantry-release-") as tmp:
            ended_or_refused = _release(deploy, config, Path(tmp))
        if isinstance(ended_or_refused, str):
            return Outcome(DeployStatus.FAILED, ended_or_refused)
        if not ended_or_refused.live:
            return _outcome(ended_or_refused)
        return (
            _joined(deploy, ended_or_refused.reason)
            if deploy.is_join
            else _after_tests(deploy, ended_or_refused.reason)
        )
    except (SecretMissing, SecretSourceError) as exc:  # read on this worker: another may hold them
        return Outcome(DeployStatus.FAILED, f"{exc} (read on worker {deploy.worker or 'unknown'})")
    except (StepFailed, git.GitError, ConfigError) as exc:
        return Outcome(DeployStatus.FAILED, str(exc))
    except SoftTimeLimitExceeded:
        return Outcome(DeployStatus.FAILED, "took longer than the deploy time limit (GANTRY_DEPLOY_TIME_LIMIT)")
    except Exception as exc:
        log.exception("internal error")
        return Outcome(
            DeployStatus.FAILED, f"internal error in Gantry ({exc.__class__.__name__}: {exc}); see the worker log"
        )


def _gated(deploy: Deploy) -> Outcome | None:
    """Asked again as it starts: a deploy queued (or approved) before a freeze window opened, or before its
    service's error budget ran out, must not start. Emergency deploys go on (and, through a window, those an
    admin sent into that window with a reason); rollbacks never ask."""
    if deploy.emergency_reason:
        return None
    environment = deploy.environment
    if environment.production and (spent := budget_blocks(environment.service)):
        return Outcome(DeployStatus.CANCELLED, f"not started: {spent}")
    found = deploy_freeze(deploy.environment)
    if found is None or deploy.freeze_overridden.startswith(f"{found.summary}; "):
        return None  # (an override holds for the window it was given for, not for one days later)
    refusal = freeze_refusal(found, deploy_duration(environment), where=str(environment))
    return Outcome(DeployStatus.CANCELLED, f"not started: {refusal}")


def _release(deploy: Deploy, config: Rendered, tmp: Path) -> Ended | str:
    """The new release: its archive, the schema guard (a refusal, as text), then built on the hosts, or built
    once (the builder, Jenkins' file) while every host is being connected; then rolled out."""
    service = deploy.environment.service
    archive = git.archive(service.name, service.repo_url, deploy.sha, tmp / "release.tar.gz")
    if not deploy.is_join:  # (a join ships a release that runs there already: its schema and tests with it)
        shipped_migrations = migrations_record(deploy)  # the mirror has both commits: what ships is recorded
        if refusal := schema_refusal(deploy, shipped_migrations):
            return refusal
        shipped_record(deploy)
        api_test_runs.tests_file_record(deploy)  # whichever worker runs its tests reads it from here
    with Fleet.rolling_out(deploy).connected() as fleet:
        checksum = ""
        if deploy.environment.build_mode in {"builder", "jenkins", "github"}:
            failure = ""
            with fleet.connecting() as begun:  # the build says when its own work has begun: it goes first
                try:
                    archive, checksum = _built_once(deploy, archive, tmp, begun)
                except StepFailed as exc:
                    failure = str(exc)
            if failure:  # once every host the connecting opened is known
                return rollout.failed_before_rollout(fleet, failure)
        return rollout.rollout(fleet, archive, config=config.text, checksum=checksum, on_batch=outbox.story_changed)


def _outcome(ended: Ended) -> Outcome:
    status = {
        Ending.CANCELLED: DeployStatus.CANCELLED,
        Ending.ROLLED_BACK: DeployStatus.ROLLED_BACK,
    }.get(ended.ending, DeployStatus.FAILED)
    return Outcome(status, ended.reason, rollback_failed=ended.ending is Ending.ROLLBACK_FAILED)


def _built_once(deploy: Deploy, source: Path, workdir: Path, building: Callable[[], None]) -> tuple[Path, str]:
    """build: builder (built now, or reused) or build: jenkins (what it archived): the artifact, its
    checksum kept on the deploy. `building`: the hosts may be connected now."""
    if deploy.environment.build_mode in {"jenkins", "github"}:
        building()
        take = jenkins_artifact if deploy.environment.build_mode == "jenkins" else github_artifact
        path, sha256, where = take(deploy, workdir)
        Deploy.objects.filter(pk=deploy.pk).update(artifact_sha256=sha256, artifact_source=where)
        return path, sha256
    built = artifact_for(deploy, source, workdir, building=building)
    by = built.reused_from or deploy
    Deploy.objects.filter(pk=deploy.pk).update(artifact_sha256=built.sha256, artifact_built_by=by)
    if not deploy.is_join and (refusal := check_refusal(deploy)):  # before any host is staged
        raise StepFailed(refusal)
    return built.path, built.sha256


def _config(deploy: Deploy, hidden: list[str]) -> Rendered:
    """The release's config, its secrets from the environment's source; what each key was made from is kept on
    the deploy. Every secret the environment holds is masked from here on, used in the config or not."""
    held = deploy_secrets(deploy)
    hidden.extend(held.values.values())
    config = config_render(deploy.environment, held)
    Deploy.objects.filter(pk=deploy.pk).update(config_definitions=config.definitions)
    if config:
        deploy_logger(deploy.pk).info(
            "config: %s written to shared/%s on every %shost (0600)",
            ", ".join(config.definitions),
            deploy.environment.config_file,
            "new " if deploy.is_join else "",  # (one that runs the release already keeps its own)
        )
    return config


def _hide_secrets(deploy: Deploy, hidden: list[str]) -> None:
    """A rollback writes no config, but its commands may print the one on the hosts: mask what the
    environment's source holds (a source that cannot be read now is said, and the rollback goes on)."""
    try:
        hidden.extend(secrets_read(deploy.environment.secret_source).values.values())
    except SecretSourceError as exc:
        deploy_logger(deploy.pk).warning("cannot read the secrets to mask them in this rollback's log: %s", exc)


def _join_refused(deploy: Deploy) -> Outcome | None:
    """A join does not run when a deploy reached its hosts meanwhile (nothing left: cancelled), or when the
    catalog's config changed since the release went live (new hosts would run a config the others lack)."""
    if not newcomers(deploy.environment):
        return Outcome(DeployStatus.CANCELLED, "nothing left to join: a deploy reached the new hosts meanwhile")
    if dict(deploy.environment.config or {}) != dict(deploy.config_definitions or {}):
        return Outcome(
            DeployStatus.FAILED,
            f"the catalog's config changed since release {deploy.release_name} went live: new hosts would run a "
            "config the others lack; they join at the next deploy, which brings every host to the same config",
        )
    return None


def _joined(deploy: Deploy, note: str) -> Outcome:
    """A join ends joined: the new hosts run the release that ran there; no API tests (nothing new ships)."""
    hosts = ", ".join(deploy.hosts.filter(status=HostStatus.LIVE).values_list("address", flat=True))
    said = f"{hosts or 'no host'} joined release {deploy.release_name} ({deploy.ref}, {deploy.sha[:8]})"
    return Outcome(DeployStatus.JOINED, "; ".join(part for part in (said, note) if part))


def _after_tests(deploy: Deploy, note: str) -> Outcome:
    """The post-deploy API tests decide between succeeded and tests_failed (or a rollback)."""
    log = deploy_logger(deploy.pk)
    runs = api_test_runs.suites_run(deploy.environment, deploy=deploy, read=environment_secrets)
    if not runs:
        return Outcome(DeployStatus.SUCCEEDED, note)
    outbox.tests_reported(deploy)
    summary = api_test_runs.summary(runs)
    if all(run.ok for run in runs):
        log.info("%s", summary)
        return Outcome(DeployStatus.SUCCEEDED, "; ".join(part for part in (note, summary) if part))
    log.error("%s", summary)
    if not deploy.environment.rollback_on_tests_failed:
        return Outcome(DeployStatus.TESTS_FAILED, summary)
    log.warning("rolling every host back to its previous release (rollback_on_tests_failed)")
    ended = rollout.roll_back_all(deploy)
    if ended.ending is Ending.ROLLBACK_FAILED:
        return Outcome(
            DeployStatus.TESTS_FAILED, f"{summary}; and the rollback failed: {ended.reason}", rollback_failed=True
        )
    return Outcome(DeployStatus.ROLLED_BACK, f"{summary}; {ended.reason}")
