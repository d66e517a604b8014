"""build: github — ship what the trusted, successful GitHub Actions run of the deploy's sha uploaded (its
`github_artifact`, one file matching `jenkins_artifact` in that artifact's zip), checked against the digest
GitHub recorded, as build: jenkins ships what Jenkins archived (builder.py). Nothing from the branch runs on
the Gantry worker: the file is only read, bounded, and its sha256 travels with the deploy to the hosts."""

from __future__ import annotations

import fnmatch
from pathlib import Path

from django.conf import settings

from deployer.deploys.gates import shipped_build
from deployer.deploys.log import deploy_logger
from deployer.errors import StepFailed
from deployer.integrations import github, github_actions
from deployer.models import Deploy


def github_artifact(deploy: Deploy, workdir: Path) -> tuple[Path, str, str]:
    """(file, sha256, where from); StepFailed saying why when there is no such run, artifact or file."""
    environment = deploy.environment
    service = environment.service
    run = shipped_build(environment, deploy.sha, what="build: github", runs_only=True)
    if run is None or run.run_id is None:
        raise StepFailed(
            f"build: github ships what GitHub Actions built, and {service.github_repo} has no successful run of "
            f"{deploy.sha[:12]} yet: wait for it (Refresh), or deploy with build: hosts"
        )
    wanted = environment.github_artifact or "release"
    try:
        uploaded = github_actions.run_artifacts(service.github_repo, run.run_id)
        named = [a for a in uploaded if fnmatch.fnmatchcase(a.name, wanted)]
        if len(named) != 1:
            listed = ", ".join(a.name for a in uploaded) or "nothing"
            raise StepFailed(
                f"run #{run.number} of {run.job} uploaded {listed}; github_artifact {wanted!r} must name one "
                "(upload the release as a .tar.gz with actions/upload-artifact)"
            )
        dest = workdir / "artifact.tar.gz"
        sha256 = github_actions.artifact_file(
            service.github_repo,
            named[0],
            environment.jenkins_artifact or "*.tar.gz",
            dest,
            max_bytes=settings.ARTIFACT_MAX_BYTES,
        )
    except github.GitHubError as exc:
        raise StepFailed(f"cannot get the artifact of run #{run.number} of {run.job}: {exc}") from exc
    source = f"GitHub Actions {run.job} #{run.number}: {named[0].name}"
    deploy_logger(deploy.pk).info("artifact from %s: sha256 %s (%d bytes)", source, sha256, dest.stat().st_size)
    return dest, sha256, source
