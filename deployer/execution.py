"""Running one deploy, top to bottom. Workers call `deploy_execute`."""

from __future__ import annotations

import tempfile
from pathlib import Path

from celery.exceptions import SoftTimeLimitExceeded

from deployer import gitrepo, rollout
from deployer.choices import DeployStatus
from deployer.deploylog import deploy_logger, deploy_logging
from deployer.errors import StepFailed
from deployer.lifecycle import deploy_claim, deploy_transition
from deployer.models import Deploy


def deploy_execute(*, deploy_id: int) -> None:
    """Claim the deploy (or stand down if another delivery has it), roll it out, record the outcome."""
    deploy = deploy_claim(deploy_id=deploy_id)
    if deploy is None:
        return
    with deploy_logging(deploy):
        status, reason = _pipeline(deploy)
        deploy_transition(deploy, to=status, reason=reason)


def _pipeline(deploy: Deploy) -> tuple[DeployStatus, str]:
    """The steps; the one place that maps failures to a final state and reason."""
    log = deploy_logger(deploy.pk)
    service = deploy.environment.service
    try:
        log.info("deploying %s (%s) of %s to %s", deploy.sha, deploy.ref, service.name, deploy.environment.name)
        with tempfile.TemporaryDirectory(prefix="gantry-release-") as tmp:
            archive = gitrepo.archive(service.name, service.repo_url, deploy.sha, Path(tmp) / "release.tar.gz")
            rollout.rollout(deploy, archive)
    except (StepFailed, gitrepo.GitError) as exc:
        return DeployStatus.FAILED, str(exc)
    except SoftTimeLimitExceeded:
        return DeployStatus.FAILED, "took longer than the deploy time limit (GANTRY_DEPLOY_TIME_LIMIT)"
    except Exception as exc:
        log.exception("internal error")
        return DeployStatus.FAILED, f"internal error in Gantry ({exc.__class__.__name__}: {exc}); see the worker log"
    return DeployStatus.SUCCEEDED, ""
