"""A fake Jenkins JSON API for tests.

Answers as Jenkins' remote access API does: `/api/json` on every object, with
`tree=` selecting fields (ranges like `{0,20}` included), `_class` on every
object, builds with `result` null while `building`, git data in a
`hudson.plugins.git.util.BuildData` action, and multibranch pipelines whose
child jobs are named with `/` encoded as `%2F`.
"""

from __future__ import annotations

import base64
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

from tests.fakes.server import FakeServer, Request, Response

FREESTYLE = "hudson.model.FreeStyleProject"
PIPELINE = "org.jenkinsci.plugins.workflow.job.WorkflowJob"
MULTIBRANCH = "org.jenkinsci.plugins.workflow.multibranch.WorkflowMultiBranchProject"
BUILD_CLASS = {FREESTYLE: "hudson.model.FreeStyleBuild", PIPELINE: "org.jenkinsci.plugins.workflow.job.WorkflowRun"}


@dataclass
class FakeJob:
    name: str
    kind: str
    url: str
    builds: list[dict[str, Any]] = field(default_factory=list)  # newest first
    children: dict[str, FakeJob] = field(default_factory=dict)  # multibranch: encoded name -> job


class FakeJenkins(FakeServer):
    def __init__(self, user: str = "gantry", token: str = "jenkins-token") -> None:
        super().__init__()
        self.user, self.token = user, token
        self.jobs: dict[str, FakeJob] = {}
        self.files: dict[tuple[str, int], dict[str, bytes]] = {}  # (job url, build number): archived files
        self._clock = itertools.count(1)
        self.data_lock = threading.RLock()
        self.route("GET", r"/api/json", self._root)
        self.route("GET", r"/crumbIssuer/api/json", self._crumb)
        self.route("GET", r"((?:/job/[^/]+)+)/(\d+)/api/json", self._build_by_number)
        self.route("GET", r"((?:/job/[^/]+)+)/(\d+)/artifact/(.+)", self._artifact)
        self.route("GET", r"((?:/job/[^/]+)+)/api/json", self._job_json)

    # --- arranging the world --------------------------------------------------------

    def add_job(self, name: str, kind: str = FREESTYLE) -> FakeJob:
        path = "".join(f"job/{quote(part, safe='')}/" for part in name.split("/"))
        job = FakeJob(name, kind, f"{self.url}/{path}")
        self.jobs[name] = job
        return job

    def build(
        self,
        job_name: str,
        branch: str,
        sha: str,
        result: str | None = "SUCCESS",
        artifacts: dict[str, bytes] | None = None,
        replayed: bool = False,
    ) -> int:
        """Record a build of `sha` on `branch`; result None means still running. `artifacts` are the files it
        archived (relative path: bytes), listed in its JSON and served under <build>/artifact/<path>."""
        with self.data_lock:
            job = self.jobs[job_name]
            if job.kind == MULTIBRANCH:
                encoded = quote(branch, safe="")
                if encoded not in job.children:
                    job.children[encoded] = FakeJob(encoded, PIPELINE, f"{job.url}job/{quote(encoded, safe='')}/")
                job = job.children[encoded]
            number = (job.builds[0]["number"] + 1) if job.builds else 1
            build = self._build_json(job, number, branch, sha, result)
            if replayed:  # Pipeline's Replay: Jenkins records a ReplayCause next to the user who asked
                build["actions"][0]["causes"] = [
                    {
                        "_class": "org.jenkinsci.plugins.workflow.cps.replay.ReplayCause",
                        "shortDescription": "Replayed #1",
                    },
                    {"_class": "hudson.model.Cause$UserIdCause", "shortDescription": "Started by user dana"},
                ]
            build["artifacts"] = [
                {"displayPath": path.rsplit("/", 1)[-1], "fileName": path.rsplit("/", 1)[-1], "relativePath": path}
                for path in artifacts or {}
            ]
            job.builds.insert(0, build)
            self.files[(job.url, number)] = dict(artifacts or {})
            return number

    def reset(self) -> None:
        with self.data_lock:
            self.jobs.clear()
            self.files.clear()
            self.heal()
            self.reset_counters()

    def finish(self, job_name: str, branch: str, number: int, result: str) -> None:
        with self.data_lock:
            job = self.jobs[job_name]
            if job.kind == MULTIBRANCH:
                job = job.children[quote(branch, safe="")]
            build = next(b for b in job.builds if b["number"] == number)
            build.update(result=result, building=False, duration=61_000)

    def _build_json(self, job: FakeJob, number: int, branch: str, sha: str, result: str | None) -> dict[str, Any]:
        git_branch = {"SHA1": sha, "name": f"refs/remotes/origin/{branch}"}
        return {
            "_class": BUILD_CLASS[job.kind],
            "number": number,
            "url": f"{job.url}{number}/",
            "result": result,
            "building": result is None,
            "timestamp": int(time.time() * 1000) - 100_000 + next(self._clock),
            "duration": 0 if result is None else 42_000,
            "actions": [
                {"_class": "hudson.model.CauseAction", "causes": [{"shortDescription": "Started by an SCM change"}]},
                {
                    "_class": "hudson.plugins.git.util.BuildData",
                    "lastBuiltRevision": {"SHA1": sha, "branch": [git_branch]},
                    "remoteUrls": ["https://git.example.com/app.git"],
                },
                {"_class": "hudson.plugins.git.GitTagAction"},
            ],
        }

    # --- plumbing -----------------------------------------------------------------------

    def dispatch(self, request: Request) -> Response:
        expected = "Basic " + base64.b64encode(f"{self.user}:{self.token}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return Response(401, "<html><body>Authentication required</body></html>")
        response = super().dispatch(request)
        response.headers.setdefault("X-Jenkins", "2.479.1")
        return response

    def not_found(self, request: Request) -> Response:
        return Response(404, "<html><body><h2>HTTP ERROR 404 Not Found</h2></body></html>")

    def _root(self, request: Request) -> Response:
        jobs = [{"_class": j.kind, "name": j.name, "url": j.url} for j in self.jobs.values()]
        body = {"_class": "hudson.model.Hudson", "mode": "NORMAL", "nodeDescription": "fake", "jobs": jobs}
        return Response(200, apply_tree(body, request.query.get("tree")))

    def _crumb(self, request: Request) -> Response:
        body = {
            "_class": "hudson.security.csrf.DefaultCrumbIssuer",
            "crumb": "c0ffee",
            "crumbRequestField": "Jenkins-Crumb",
        }
        return Response(200, body)

    def _job_json(self, request: Request, path: str) -> Response:
        parts = [unquote(p) for p in path.strip("/").split("/")[1::2]]
        with self.data_lock:
            job = self._find(parts)
            if job is None:
                return self.not_found(request)
            return Response(200, apply_tree(self._job_body(job), request.query.get("tree")))

    def _build_by_number(self, request: Request, path: str, number: str) -> Response:
        with self.data_lock:
            job = self._find([unquote(p) for p in path.strip("/").split("/")[1::2]])
            build = next((b for b in job.builds if b["number"] == int(number)), None) if job else None
            if build is None:
                return self.not_found(request)
            return Response(200, apply_tree(build, request.query.get("tree")))

    def _artifact(self, request: Request, path: str, number: str, relative: str) -> Response:
        with self.data_lock:
            job = self._find([unquote(p) for p in path.strip("/").split("/")[1::2]])
            data = self.files.get((job.url, int(number)), {}).get(unquote(relative)) if job else None
        return self.not_found(request) if data is None else Response(200, data)

    def _find(self, parts: list[str]) -> FakeJob | None:
        for split in range(len(parts), 0, -1):
            job = self.jobs.get("/".join(parts[:split]))
            if job is None:
                continue
            rest = parts[split:]
            if not rest:
                return job
            if len(rest) == 1 and rest[0] in job.children:
                return job.children[rest[0]]
        return None

    def _job_body(self, job: FakeJob) -> dict[str, Any]:
        body: dict[str, Any] = {"_class": job.kind, "name": job.name, "fullName": job.name, "url": job.url}
        if job.kind == MULTIBRANCH:
            body["jobs"] = [self._job_body(child) for child in job.children.values()]
        else:
            body["builds"] = job.builds
            body["lastBuild"] = job.builds[0] if job.builds else None
        return body


# --- Jenkins' tree= filter ------------------------------------------------------------------


def apply_tree(data: Any, tree: str | None) -> Any:
    return data if not tree else _select(data, _parse(tree))


Spec = list[tuple[str, "Spec | None", tuple[int | None, int | None] | None]]


def _parse(text: str) -> Spec:
    spec, _ = _parse_at(text, 0)
    return spec


def _parse_at(text: str, i: int) -> tuple[Spec, int]:
    spec: Spec = []
    while i < len(text) and text[i] != "]":
        j = i
        while j < len(text) and text[j] not in ",[]{":
            j += 1
        name, sub, window = text[i:j], None, None
        if j < len(text) and text[j] == "[":
            sub, j = _parse_at(text, j + 1)
            j += 1  # past "]"
        if j < len(text) and text[j] == "{":
            end = text.index("}", j)
            window = _window(text[j + 1 : end])
            j = end + 1
        spec.append((name, sub, window))
        i = j + 1 if j < len(text) and text[j] == "," else j
    return spec, i


def _window(text: str) -> tuple[int | None, int | None]:
    if "," not in text:
        return int(text), int(text) + 1
    low, high = text.split(",", 1)
    return (int(low) if low else None, int(high) if high else None)


def _select(data: Any, spec: Spec) -> Any:
    if isinstance(data, list):
        return [_select(item, spec) for item in data]
    if not isinstance(data, dict):
        return data
    out: dict[str, Any] = {"_class": data["_class"]} if "_class" in data else {}
    for name, sub, window in spec:
        if name not in data:
            continue
        value = data[name]
        if isinstance(value, list) and window:
            value = value[window[0] : window[1]]
        out[name] = _select(value, sub) if sub is not None and value is not None else value
    return out
