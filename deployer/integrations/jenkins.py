"""Jenkins' JSON API, through python-jenkins: the one module that talks to Jenkins.

One request per job: a `tree=` query returns the recent builds of a plain job
or of every branch of a multibranch pipeline. Every call has a timeout
(python-jenkins has none by default).
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import jenkins
import requests
from django.conf import settings

from deployer.lib.redact import redacted

MULTIBRANCH = "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject"
_BUILD_FIELDS = (
    "number,url,result,building,timestamp,duration,"
    "actions[lastBuiltRevision[SHA1,branch[name]],revision[hash],remoteUrls,causes[_class]]"
)
# Plain jobs answer `builds`, multibranch pipelines `jobs`; Jenkins leaves out what a job lacks.
TREE = f"builds[{_BUILD_FIELDS}]{{0,30}},jobs[name,url,builds[{_BUILD_FIELDS}]{{0,10}}]"
RUNNING = "RUNNING"  # Jenkins has no result while a build runs: `building` is true, `result` null


class JenkinsError(Exception):
    """A Jenkins call failed; `retryable` says whether trying again later can help. (Credentials in a
    URL in the message are redacted: it is shown on pages.)"""

    retryable = False

    def __init__(self, message: str) -> None:
        super().__init__(redacted(message))


class JenkinsUnavailable(JenkinsError):
    retryable = True


class JenkinsRefused(JenkinsError):
    """Unknown job, bad credentials: a setting or the catalog needs fixing."""


@dataclass(frozen=True)
class BuildInfo:
    job: str
    number: int
    branch: str
    sha: str
    result: str  # Jenkins' own word: SUCCESS, FAILURE, UNSTABLE, ABORTED, NOT_BUILT, or RUNNING
    started_at: datetime | None
    duration_ms: int | None
    url: str
    replayed: bool = False  # a Pipeline replay: its script was edited in Jenkins, not taken from the repository
    run_id: int | None = None  # a GitHub Actions run recorded in this shape (sources/builds.py): its id
    suite_id: int | None = None  # and its check suite


def enabled() -> bool:
    return bool(settings.JENKINS_URL)


@functools.cache
def _client(url: str, user: str, token: str, timeout: int) -> jenkins.Jenkins:
    return jenkins.Jenkins(url, username=user or None, password=token or None, timeout=timeout, retries=1)


def client() -> jenkins.Jenkins:
    return _client(settings.JENKINS_URL, settings.JENKINS_USER, settings.JENKINS_TOKEN, settings.JENKINS_TIMEOUT)


def _web_url(value: object) -> str:
    """A build's link as pages may render it: http(s) only (Jenkins' JSON is not ours to trust)."""
    text = str(value or "")
    return text if urlsplit(text).scheme in {"http", "https"} and len(text) <= 500 else ""


def job_path(job: str) -> str:
    """`folder/name` → `job/folder/job/name/` (each part URL-encoded)."""
    return "".join(f"job/{quote(part, safe='')}/" for part in job.strip("/").split("/"))


def job_builds(job: str) -> list[BuildInfo]:
    """The recent builds of `job` (every branch of a multibranch pipeline), in one request."""
    # Reference: https://www.jenkins.io/doc/book/using/remote-access-api/ (tree parameter)
    url = f"{settings.JENKINS_URL}/{job_path(job)}api/json?tree={quote(TREE, safe='')}"
    server = client()
    try:
        text = server.jenkins_open(requests.Request("GET", url), add_crumb=False)
    except jenkins.NotFoundException as exc:
        raise JenkinsRefused(f"Jenkins has no job {job!r}; check jenkins_job in the catalog") from exc
    except jenkins.TimeoutException as exc:
        raise JenkinsUnavailable(f"Jenkins did not answer within {settings.JENKINS_TIMEOUT} s") from exc
    except jenkins.JenkinsException as exc:
        message = str(exc).splitlines()[0]
        kind = JenkinsRefused if "[401]" in message or "[403]" in message else JenkinsUnavailable
        raise kind(f"Jenkins: {message}") from exc
    except (requests.RequestException, OSError) as exc:
        raise JenkinsUnavailable(f"cannot reach Jenkins: {exc.__class__.__name__}") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise JenkinsUnavailable(f"Jenkins sent something that is not JSON: {text[:80]!r}") from exc
    return _parse_job(job, data)


def _parse_job(job: str, data: dict[str, Any]) -> list[BuildInfo]:
    if data.get("_class") == MULTIBRANCH or "jobs" in data:
        builds = []
        for child in data.get("jobs") or []:
            branch = unquote(child.get("name", ""))  # multibranch names arrive as feature%2Ffoo
            builds += [_build(f"{job}/{child.get('name', '')}", b, branch) for b in child.get("builds") or []]
        return builds
    return [_build(job, b, None) for b in data.get("builds") or []]


def _build(job: str, data: dict[str, Any], branch: str | None) -> BuildInfo:
    sha, git_branch = _revision(data.get("actions") or [])
    result = RUNNING if data.get("building") else str(data.get("result") or "NOT_BUILT")
    timestamp = data.get("timestamp")
    return BuildInfo(
        job=job,
        number=int(data["number"]),
        branch=branch if branch is not None else git_branch,
        sha=sha,
        result=result,
        started_at=datetime.fromtimestamp(timestamp / 1000, tz=UTC) if timestamp else None,
        duration_ms=None if data.get("building") else data.get("duration"),
        url=_web_url(data.get("url")),
        replayed=_replayed(data.get("actions") or []),
    )


REPLAY_CAUSE = "org.jenkinsci.plugins.workflow.cps.replay.ReplayCause"


def _replayed(actions: list[dict[str, Any]]) -> bool:
    return any(cause.get("_class") == REPLAY_CAUSE for action in actions for cause in action.get("causes") or [])


def _revision(actions: list[dict[str, Any]]) -> tuple[str, str]:
    """(sha, branch) from the build's git data: BuildData, else a multibranch SCMRevisionAction."""
    for action in actions:
        revision = action.get("lastBuiltRevision") or {}
        if revision.get("SHA1"):
            names = [b.get("name", "") for b in revision.get("branch") or []]
            return revision["SHA1"], _short_branch(names[0]) if names else ""
    for action in actions:
        if (action.get("revision") or {}).get("hash"):
            return action["revision"]["hash"], ""
    return "", ""


def _short_branch(name: str) -> str:
    for prefix in ("refs/remotes/origin/", "refs/heads/", "origin/"):
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


@dataclass(frozen=True)
class ArchivedFile:
    relative_path: str
    file_name: str


def build_artifacts(job: str, number: int) -> list[ArchivedFile]:
    """The files build `number` of `job` archived (archiveArtifacts), from its JSON."""
    url = (
        f"{settings.JENKINS_URL}/{job_path(job)}{int(number)}/api/json?tree={quote('artifacts[fileName,relativePath]')}"
    )
    try:
        text = client().jenkins_open(requests.Request("GET", url), add_crumb=False)
        data = json.loads(text)
    except jenkins.NotFoundException as exc:
        raise JenkinsRefused(f"Jenkins has no build #{number} of {job!r}") from exc
    except (jenkins.JenkinsException, requests.RequestException, OSError, ValueError) as exc:
        raise JenkinsUnavailable(
            f"cannot read build #{number} of {job!r} from Jenkins: {exc.__class__.__name__}"
        ) from exc
    return [
        ArchivedFile(str(item.get("relativePath") or ""), str(item.get("fileName") or ""))
        for item in data.get("artifacts") or []
        if item.get("relativePath")
    ]


def artifact_download(job: str, number: int, relative_path: str, dest: Path, *, max_bytes: int) -> str:
    """Download one archived file of a build to `dest`; return its sha256. JenkinsRefused beyond `max_bytes`."""
    url = f"{settings.JENKINS_URL}/{job_path(job)}{int(number)}/artifact/{quote(relative_path)}"
    auth = (settings.JENKINS_USER, settings.JENKINS_TOKEN) if settings.JENKINS_USER else None
    digest, size = hashlib.sha256(), 0
    try:
        with requests.get(url, auth=auth, stream=True, timeout=settings.JENKINS_TIMEOUT) as answer:
            if answer.status_code != 200:
                raise JenkinsRefused(
                    f"Jenkins answered HTTP {answer.status_code} for {relative_path} of build #{number}"
                )
            with dest.open("wb") as out:
                for chunk in answer.iter_content(256 * 1024):
                    size += len(chunk)
                    if size > max_bytes:
                        raise JenkinsRefused(f"{relative_path} is over {max_bytes // 1_000_000} MB; not downloaded")
                    out.write(chunk)
                    digest.update(chunk)
    except requests.RequestException as exc:
        raise JenkinsUnavailable(f"cannot download {relative_path} from Jenkins: {exc.__class__.__name__}") from exc
    return digest.hexdigest()
