"""GitHub Actions (ci: github, build: github): a repository's workflow runs, the artifacts a run uploaded, and
downloading one. Through the same PyGithub requester, errors and rate-limit accounting as integrations/github.py.

An artifact's download answers 302 to a signed storage URL: that second request goes without GitHub's token
(it would hand the token to another host), and everything read is bounded (the zip, and the one file taken
out of it: a zip's own size fields can lie)."""

from __future__ import annotations

import fnmatch
import hashlib
import zipfile
import zlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings

from deployer.integrations.github import (
    PER_PAGE,
    GitHubRefused,
    GitHubUnavailable,
    _errors,
    _json,
    _raise_for,
    client,
)
from deployer.lib.guarded_http import deadline, guarded_session

CHUNK = 256 * 1024
DOWNLOAD_SECONDS = 900  # the whole download, however slowly the storage sends it


@dataclass(frozen=True)
class WorkflowRun:
    """A GitHub Actions workflow run, as the runs list and the workflow_run webhook give it."""

    id: int
    number: int
    path: str  # .github/workflows/ci.yml: which workflow (the "job" its builds are shown as)
    event: str
    branch: str
    sha: str
    status: str  # queued, in_progress, completed, ...
    conclusion: str  # success, failure, cancelled, ... ("" while it runs)
    started_at: datetime | None
    updated_at: datetime | None
    url: str
    suite_id: int | None = None  # the check suite its jobs' check runs belong to


def workflow_run_of(item: dict[str, Any]) -> WorkflowRun:
    """One run of GitHub's JSON; ValueError/KeyError/TypeError when it is not one."""
    return WorkflowRun(
        id=int(item["id"]),
        number=int(item["run_number"]),
        path=str(item["path"])[:400],
        event=str(item["event"]),
        branch=str(item.get("head_branch") or "")[:255],
        sha=str(item["head_sha"])[:40],
        status=str(item.get("status") or ""),
        conclusion=str(item.get("conclusion") or ""),
        started_at=_moment(item.get("run_started_at") or item.get("created_at")),
        updated_at=_moment(item.get("updated_at")),
        url=str(item.get("html_url") or "")[:1000],
        suite_id=int(item["check_suite_id"]) if isinstance(item.get("check_suite_id"), int) else None,
    )


def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def workflow_runs(repo: str, *, etag: str = "") -> tuple[str, list[WorkflowRun] | None]:
    """The newest 100 workflow runs of `repo`, conditional on `etag`: (new etag, runs), runs None on a 304."""
    # Reference: https://docs.github.com/en/rest/actions/workflow-runs#list-workflow-runs-for-a-repository
    headers = {"If-None-Match": etag} if etag else {}
    with _errors():
        status, response_headers, body = client().requester.requestJson(
            "GET", f"/repos/{repo}/actions/runs", {"per_page": PER_PAGE}, headers
        )
    if status == 304:
        return etag, None
    data = _json(body)
    if status != 200:
        _raise_for(status, response_headers, data)
    items = data.get("workflow_runs") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise GitHubUnavailable("GitHub's workflow runs answer has no workflow_runs list")
    runs = []
    for item in items:
        try:
            runs.append(workflow_run_of(item))
        except (KeyError, TypeError, ValueError):
            continue  # a run GitHub describes oddly is left out, not the list
    return response_headers.get("etag", ""), runs


@dataclass(frozen=True)
class RunArtifact:
    id: int
    name: str
    size: int
    digest: str  # "sha256:<hex>" (upload-artifact v4 and newer), or ""
    expired: bool


def run_artifacts(repo: str, run_id: int) -> list[RunArtifact]:
    """The artifacts workflow run `run_id` uploaded."""
    # Reference: https://docs.github.com/en/rest/actions/artifacts#list-workflow-run-artifacts
    with _errors():
        status, headers, body = client().requester.requestJson(
            "GET", f"/repos/{repo}/actions/runs/{int(run_id)}/artifacts", {"per_page": PER_PAGE}, {}
        )
    data = _json(body)
    if status != 200:
        _raise_for(status, headers, data)
    items = data.get("artifacts") if isinstance(data, dict) else None
    found = []
    for item in items if isinstance(items, list) else []:
        try:
            found.append(
                RunArtifact(
                    int(item["id"]),
                    str(item["name"]),
                    int(item["size_in_bytes"]),
                    str(item.get("digest") or ""),
                    bool(item["expired"]),
                )
            )
        except (KeyError, TypeError, ValueError):
            continue
    return found


def artifact_file(repo: str, artifact: RunArtifact, pattern: str, dest: Path, *, max_bytes: int) -> str:
    """The one file matching `pattern` in the artifact's zip, written to `dest`; its sha256. The zip's own
    sha256 must be the digest GitHub recorded (when it recorded one). GitHubRefused says what is wrong."""
    if artifact.expired:
        raise GitHubRefused(f"artifact {artifact.name!r} has expired on GitHub; run the workflow again")
    if artifact.size > max_bytes:
        raise GitHubRefused(f"artifact {artifact.name!r} is over {max_bytes // 1_000_000} MB; not downloaded")
    archive = dest.with_suffix(".zip")
    digest = _download(repo, artifact.id, archive, max_bytes=max_bytes)
    if artifact.digest and artifact.digest != f"sha256:{digest}":
        raise GitHubRefused(f"artifact {artifact.name!r} does not match its digest on GitHub ({artifact.digest})")
    try:
        with zipfile.ZipFile(archive) as zipped:
            members = [m for m in zipped.infolist() if not m.is_dir() and fnmatch.fnmatchcase(m.filename, pattern)]
            if len(members) != 1:
                names = ", ".join(m.filename for m in zipped.infolist()[:10]) or "nothing"
                raise GitHubRefused(
                    f"artifact {artifact.name!r} holds {names}; exactly one file must match {pattern!r}"
                )
            return _extracted(zipped, members[0], dest, max_bytes=max_bytes)
    except (zipfile.BadZipFile, zlib.error, EOFError, RuntimeError, NotImplementedError) as exc:
        # A damaged zip, or one Gantry cannot read (encrypted, an unknown compression): the run's output, not us.
        raise GitHubRefused(f"artifact {artifact.name!r} cannot be read as a zip: {exc}") from exc
    finally:
        archive.unlink(missing_ok=True)


def _extracted(zipped: zipfile.ZipFile, member: zipfile.ZipInfo, dest: Path, *, max_bytes: int) -> str:
    sha, size = hashlib.sha256(), 0
    with zipped.open(member) as source, dest.open("wb") as out:
        while chunk := source.read(CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise GitHubRefused(f"{member.filename} unpacks to over {max_bytes // 1_000_000} MB; not shipped")
            out.write(chunk)
            sha.update(chunk)
    return sha.hexdigest()


def _download(repo: str, artifact_id: int, dest: Path, *, max_bytes: int) -> str:
    """The artifact's zip (GitHub's 302 followed without the token); its sha256."""
    # Reference: https://docs.github.com/en/rest/actions/artifacts#download-an-artifact
    url = f"{settings.GITHUB_API_URL}/repos/{repo}/actions/artifacts/{int(artifact_id)}/zip"
    headers = {"Authorization": f"Bearer {settings.GITHUB_TOKEN}", "Accept": "application/vnd.github+json"}
    session = guarded_session()  # no proxies or ~/.netrc, no link-local or metadata address
    try:
        with deadline(session, DOWNLOAD_SECONDS) as cut_short:
            pointer = session.get(url, headers=headers, allow_redirects=False, timeout=settings.GITHUB_TIMEOUT)
            location = pointer.headers.get("Location", "")
            if pointer.status_code not in (301, 302, 303, 307, 308) or not location:
                data: Any = pointer.json() if pointer.content else {}
                _raise_for(pointer.status_code, dict(pointer.headers), data)
                raise GitHubUnavailable(f"GitHub answered HTTP {pointer.status_code} without the artifact's location")
            if urlsplit(location).scheme != urlsplit(settings.GITHUB_API_URL).scheme:
                raise GitHubRefused("GitHub sent the artifact's location on another scheme; not followed")
            sha = _stream(session, location, dest, max_bytes=max_bytes)
    except requests.RequestException as exc:
        if cut_short():
            raise GitHubUnavailable(f"the artifact did not arrive within {DOWNLOAD_SECONDS} s") from exc
        raise GitHubUnavailable(f"cannot download the artifact: {exc.__class__.__name__}") from exc
    except ValueError as exc:  # an error answer that is not JSON
        raise GitHubUnavailable(f"GitHub answered something that is not JSON for the artifact: {exc}") from exc
    return sha


def _stream(session: requests.Session, location: str, dest: Path, *, max_bytes: int) -> str:
    """GET `location` (GitHub's storage: without the token) into `dest`, at most `max_bytes`; its sha256."""
    sha, size = hashlib.sha256(), 0
    with session.get(location, stream=True, timeout=settings.GITHUB_TIMEOUT, allow_redirects=False) as answer:
        if answer.status_code != 200:
            raise GitHubUnavailable(f"the artifact's storage answered HTTP {answer.status_code}")
        with dest.open("wb") as out:
            for chunk in answer.iter_content(CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise GitHubRefused(f"the artifact is over {max_bytes // 1_000_000} MB; not downloaded")
                out.write(chunk)
                sha.update(chunk)
    return sha.hexdigest()
