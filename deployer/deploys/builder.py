"""Build once (build: builder): the release is built on one SSH host, packed as an artifact named by its
sha256 and kept there; the worker copies it once and streams it to every host, which checks the checksum
before unpacking. Nothing from a branch runs on the Gantry worker. With build: jenkins the artifact is the
file the successful Jenkins build of the exact sha archived.

An artifact is found again by its inputs (the commit and the build command): a promotion of the same sha
to the next environment, or a redeploy, ships the identical bytes without rebuilding. The builder gets
Gantry's variables but not an environment's config (the artifact serves every environment).
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import logging
import re
import secrets
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError
from fabric import Connection

from deployer.deploys.build_cache import CACHE_MARK, cache_key, cache_plan
from deployer.deploys.fleet import connect
from deployer.deploys.gates import shipped_build
from deployer.deploys.host_steps import last_lines
from deployer.deploys.lint_run import Checked, LintOutput, lint_step
from deployer.deploys.log import deploy_logger
from deployer.deploys.migration_check import Lint, check_recorded, lint_for, new_files
from deployer.deploys.sandbox import NO_SANDBOX_MARK, SANDBOX_PROBE, sandbox_dir, sandboxed
from deployer.deploys.schema_changes import migrations_described
from deployer.errors import StepFailed
from deployer.integrations import jenkins, ssh
from deployer.models import Artifact, Deploy, Environment

ARTIFACT_MARK = "GANTRY-ARTIFACT "
BUILDING_MARK = "GANTRY-BUILDING"
REPLACED_SRC = "the build replaced its src directory with something else: nothing was packed"


@dataclass(frozen=True)
class BuildJob:
    """One build on the builder: a deploy's, or a migration check's ahead of any deploy (`name` tells them
    apart in the work directory and GANTRY_DEPLOY_ID)."""

    environment: Environment
    name: str
    ref: str
    sha: str
    previous_sha: str = ""

    @classmethod
    def of(cls, deploy: Deploy) -> BuildJob:
        return cls(deploy.environment, str(deploy.pk), deploy.ref, deploy.sha, deploy.previous_sha)


@dataclass(frozen=True)
class BuildOutput:
    sha256: str  # "" when nothing was packed (a check only)
    size: int
    checked: Checked | None  # the migration check, when the build ran one


@dataclass(frozen=True)
class Built:
    path: Path  # the artifact, on this worker, for the rollout to stream
    sha256: str
    size: int
    reused_from: Deploy | None  # the deploy that built it, when this one did not


def builder_target(environment: Environment) -> ssh.Target:
    return ssh.Target(environment.builder_address, environment.builder_port, environment.builder_user or "deploy")


def build_inputs(environment: Environment, sha: str) -> str:
    """What the artifact depends on: the commit, how it is built and how it was isolated (an artifact from
    before builds were isolated is never reused)."""
    text = "\0".join(
        [sha, environment.build_command, str(environment.strict_commands), f"isolation={environment.builder_isolation}"]
    )
    return hashlib.sha256(text.encode()).hexdigest()


def artifact_for(deploy: Deploy, source: Path, workdir: Path, *, building: Callable[[], None] = lambda: None) -> Built:
    """The deploy's artifact on this worker: an earlier one with the same inputs copied back from the builder
    (and checked), else built now from `source` (the commit's tree as .tar.gz). `building` is called once
    the builder has the source and runs the build (or when an earlier artifact is reused)."""
    environment = deploy.environment
    target = builder_target(environment)
    where = f"{target}{environment.builder_path}"
    log = deploy_logger(deploy.pk, f"builder {target.address}")
    inputs = build_inputs(environment, deploy.sha)
    earlier = Artifact.objects.filter(service=environment.service, inputs=inputs, builder=where).first()
    dest = workdir / "artifact.tar.gz"
    job = BuildJob.of(deploy)
    # The check runs when the deploy ships migration files (a redeploy without any pays nothing for it).
    ships = bool(new_files(migrations_described(environment, list(deploy.migrations or []))))
    lint = lint_for(environment, deploy.sha) if ships and environment.builder_isolation != "account" else None
    conn = connect(target)
    try:
        if earlier is not None:
            building()
            try:
                _copy(conn, f"{environment.builder_path}/artifacts/{earlier.sha256}.tar.gz", dest, earlier.sha256)
            except StepFailed as exc:
                why = f"the artifact of deploy #{earlier.built_by_id} cannot be reused ({exc}): building it again"
                log.warning("%s", why)
            else:
                log.info("reusing the artifact built by deploy #%s: sha256 %s", earlier.built_by_id, earlier.sha256)
                if lint is not None:  # built before this check was asked for: a build that only checks
                    try:
                        _record(job, lint, build_run(conn, job, source, log, lambda: None, lint=lint, pack=False))
                    except StepFailed as exc:  # the artifact is fine: the check is what could not run
                        check_recorded(environment, deploy.sha, lint, [], f"could not build to check: {exc}")
                return Built(dest, earlier.sha256, earlier.size, earlier.built_by)
        output = build_run(conn, job, source, log, building, lint=lint)
        if lint is not None:
            _record(job, lint, output)
        sha256, size = output.sha256, output.size
        _copy(conn, f"{environment.builder_path}/artifacts/{sha256}.tar.gz", dest, sha256)
    finally:
        conn.close()
    # The newest build of these inputs is the one to reuse (a damaged earlier one is replaced).
    with contextlib.suppress(IntegrityError):  # two deploys built it at once: either is as good
        Artifact.objects.update_or_create(
            service=environment.service,
            inputs=inputs,
            builder=where,
            defaults={"sha": deploy.sha, "sha256": sha256, "size": size, "built_by": deploy},
        )
    return Built(dest, sha256, size, None)


def _record(job: BuildJob, lint: Lint, output: BuildOutput) -> None:
    checked = output.checked or Checked([], "the check did not run")
    check_recorded(job.environment, job.sha, lint, checked.findings, checked.error)


def _copy(conn: Connection, path: str, dest: Path, sha256: str) -> None:
    got = ssh.fetch(conn, path, dest, timeout=settings.SSH_COMMAND_TIMEOUT, max_bytes=settings.ARTIFACT_MAX_BYTES)
    if got != sha256:
        raise StepFailed(f"the artifact copied from the builder has sha256 {got}, not {sha256}")


def build_run(
    conn: Connection,
    job: BuildJob,
    source: Path,
    log: logging.LoggerAdapter[logging.Logger],
    building: Callable[[], None],
    *,
    lint: Lint | None = None,
    pack: bool = True,
) -> BuildOutput:
    """One session: unpack the source in a fresh directory, run build_command, pack the result; `building`
    is called when the build command starts. With isolation: sandbox the unpacking and the build run in a
    sandbox of their own (a branch's tar and its build touch nothing else); the packing and the checksum
    are Gantry's, after every process of the build has ended. `lint` then runs in a sandbox of its own over
    the built tree, read-only (it cannot change what is packed)."""
    environment = job.environment
    base = environment.builder_path
    work = f"{base}/work/{environment.service.name}-{job.name}"
    isolated = environment.builder_isolation != "account"
    inside = sandbox_dir(base) if isolated else work
    key = cache_key(environment, job.sha) if isolated else None
    cache = cache_plan(environment, key, base=base, work=work) if key else None
    variables = {
        "GANTRY_DEPLOY_ID": job.name,
        "GANTRY_SERVICE": environment.service.name,
        "GANTRY_ENVIRONMENT": environment.name,
        "GANTRY_REF": job.ref,
        "GANTRY_SHA": job.sha,
        "GANTRY_PREVIOUS_SHA": job.previous_sha,
        "GANTRY_BUILD_DIR": f"{inside}/src",
    }
    exports = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in variables.items())
    strict = "set -eu\n" if environment.strict_commands else ""
    build = environment.build_command.strip() or "true"
    q = shlex.quote
    token = secrets.token_hex(8)  # the check's marks: never in any sandboxed text
    inner = (
        f"set -e\ntar -xzf - -C {q(inside)}/src\nprintf '%s\\n' {q(job.sha)} > {q(inside)}/src/REVISION\n"
        f"cd -- {q(inside)}/src\n{cache.inner if cache else ''}echo {BUILDING_MARK}\n{exports}{strict}{build}\n"
    )
    script = (
        f"set -e\n{SANDBOX_PROBE if isolated else ''}"
        f"rm -rf -- {q(work)}\nmkdir -p -- {q(work)}/src {q(work)}/home {q(base)}/artifacts\n"
        + (sandboxed(inner, base=base, work=work, binds=cache.binds if cache else "") if isolated else f"( {inner} )")
        # From here on the build's processes are gone, but what it left in `work` is its own: a symlink there
        # would steer a write anywhere this account may write (another artifact, a production cache entry).
        # So Gantry reads `src` only as a real directory and writes only files it has just made, outside it.
        + f"\nif [ ! -d {q(work)}/src ] || [ -L {q(work)}/src ]; then echo {q(REPLACED_SRC)} >&2; exit 1; fi\n"
        # A build that only checks saves no cache: only what a deploy's build made, past its gates, is kept.
        f"{cache.outer if cache and pack else ''}"
        + (lint_step(lint, base=base, work=work, token=token) if lint else "")
        + (_PACK.format(artifacts=q(f"{base}/artifacts"), src=q(f"{work}/src"), mark=ARTIFACT_MARK) if pack else "")
        + f"rm -rf -- {q(work)}\n"
    )
    marks: list[str] = []
    printed: list[str] = []
    refused: list[str] = []
    checking = LintOutput(lint, token) if lint else None

    def line(text: str) -> None:
        if checking is not None and checking.line(text):
            if checking.shown(text):
                log.info("migration check: %s", text)
        elif text == BUILDING_MARK and not printed and not marks:  # Gantry's: printed before the build's own lines
            building()
        elif text.startswith(CACHE_MARK):  # restored or missing (before the build), saved (after it)
            log.info("build cache: %s", text.removeprefix(CACHE_MARK))
        elif text.startswith(NO_SANDBOX_MARK) and not printed and not marks:
            refused.append(text.removeprefix(NO_SANDBOX_MARK))
        elif text.startswith(ARTIFACT_MARK):
            marks.append(text.removeprefix(ARTIFACT_MARK))  # the last one is Gantry's (it is printed last)
        else:
            printed.append(text)
            log.info("%s", text)

    how = "in a sandbox of its own" if isolated else f"as {environment.builder_user or 'deploy'}, without a sandbox"
    log.info("building %s once, on the builder, in %s (%s)", job.sha[:12], work, how)
    timeout = environment.command_timeout or settings.SSH_COMMAND_TIMEOUT
    try:
        ssh.run(conn, script, timeout=timeout, output=line, stdin=[source])
    except StepFailed as exc:
        if not refused:
            raise StepFailed(f"the build on the builder {conn.host} failed: {exc}{last_lines(printed)}") from exc
    if refused:
        raise StepFailed(
            f"the builder {conn.host} cannot isolate builds ({refused[0]}), and Gantry never builds there "
            "without a sandbox unless the catalog says so: install bubblewrap on the builder (apt-get install "
            "bubblewrap; unprivileged user namespaces on), or give this trust level a builder account of its "
            "own with builder: {user: ..., isolation: account}"
        )
    checked = checking.result() if checking else None
    for said in checking.summary() if checking else []:
        log.info("migration check: %s", said)
    if not pack:
        return BuildOutput("", 0, checked)
    sha256, _, size = (marks[-1] if marks else "").partition(" ")
    if len(sha256) != 64 or not size.strip().isdigit():
        raise StepFailed(f"the builder {conn.host} did not say what it built")
    log.info("built: artifact sha256 %s (%s bytes)", sha256, size.strip())
    return BuildOutput(sha256, int(size), checked)


# Gantry's, after every process of the build has ended: pack src, name the file by its sha256.
_PACK = (
    "part=$(mktemp -p {artifacts} .part.XXXXXX)\n"
    # gzip -1: a third of -6's time on a virtualenv for 15 % more bytes (measured: 2.7 s vs 7.1 s on 200 MB)
    'tar -I "gzip -1" -cf - -C {src} . > "$part"\n'
    'sum=$(sha256sum -- "$part" | cut -c1-64)\n'
    'size=$(wc -c < "$part")\n'
    'mv -f -- "$part" {artifacts}/"$sum".tar.gz\n'
    'echo "{mark}$sum $size"\n'
)


def jenkins_artifact(deploy: Deploy, workdir: Path) -> tuple[Path, str, str]:
    """build: jenkins: (file, sha256, where from) of what the successful Jenkins build of the deploy's sha
    archived; StepFailed saying why when there is no such build or file."""
    environment = deploy.environment
    service = environment.service
    log = deploy_logger(deploy.pk)
    build = shipped_build(environment, deploy.sha, what="build: jenkins")
    if build is None:
        raise StepFailed(
            f"build: jenkins ships what Jenkins built, and {service.jenkins_job} has no successful build of "
            f"{deploy.sha[:12]} yet: wait for it (Refresh), or deploy with build: hosts"
        )
    pattern = environment.jenkins_artifact or "*.tar.gz"
    try:
        files = jenkins.build_artifacts(build.job, build.number)
        matching = [f for f in files if fnmatch.fnmatchcase(f.relative_path, pattern)]
        if len(matching) != 1:
            archived = ", ".join(f.relative_path for f in files) or "nothing"
            how = "none matches" if not matching else f"{len(matching)} match; make jenkins_artifact name one"
            raise StepFailed(
                f"Jenkins build #{build.number} of {deploy.sha[:12]} archived {archived}; {how} jenkins_artifact "
                f"{pattern!r} (archive the release as a .tar.gz with archiveArtifacts)"
            )
        chosen = matching[0]
        dest = workdir / "artifact.tar.gz"
        sha256 = jenkins.artifact_download(
            build.job, build.number, chosen.relative_path, dest, max_bytes=settings.ARTIFACT_MAX_BYTES
        )
    except jenkins.JenkinsError as exc:
        raise StepFailed(f"cannot get the artifact of Jenkins build #{build.number}: {exc}") from exc
    source = f"Jenkins {build.job} #{build.number}: {chosen.relative_path}"
    log.info("artifact from %s: sha256 %s (%d bytes)", source, sha256, dest.stat().st_size)
    return dest, sha256, source


def artifacts_prune(deploy: Deploy) -> None:
    """After the deploy's end is recorded (build: builder): the service's artifacts on its builder beyond the
    newest GANTRY_BUILDER_ARTIFACTS_KEPT are removed there, with their rows; a file another kept row (of any
    service) names stays. A failure only warns: the deploy is fine, the next one tries again."""
    environment = deploy.environment
    where = f"{builder_target(environment)}{environment.builder_path}"
    rows = Artifact.objects.filter(service=environment.service, builder=where).order_by("-id")
    old = list(rows[settings.BUILDER_ARTIFACTS_KEPT :])
    if not old:
        return
    kept = set(
        Artifact.objects.filter(builder=where).exclude(pk__in=[a.pk for a in old]).values_list("sha256", flat=True)
    )
    # Only names Gantry itself wrote: 64 hex digits (a build's output never chooses what is removed).
    doomed = sorted({a.sha256 for a in old if re.fullmatch(r"[0-9a-f]{64}", a.sha256)} - kept)
    log = deploy_logger(deploy.pk, f"builder {environment.builder_address}")
    try:
        if doomed:
            conn = connect(builder_target(environment))
            try:
                files = " ".join(shlex.quote(f"{sha256}.tar.gz") for sha256 in doomed)
                script = f"cd -- {shlex.quote(environment.builder_path)}/artifacts || exit 0\nrm -f -- {files}\n"
                ssh.run(conn, script, timeout=settings.SSH_COMMAND_TIMEOUT, output=log.info)
            finally:
                conn.close()
    except StepFailed as exc:
        log.warning("could not remove old artifacts on the builder (the deploy is fine): %s", exc)
        return
    Artifact.objects.filter(pk__in=[a.pk for a in old]).delete()
    log.info("removed %d old artifact(s) from the builder", len(doomed))
