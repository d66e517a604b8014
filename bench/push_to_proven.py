"""Push → a release proven on every host, with continuous delivery and a canary bake: what Gantry adds.

Run: .venv/bin/python bench/push_to_proven.py [--bake 60] [--runs 1]

Three sshd hosts on loopback run the demo app; a real Prometheus scrapes them while users send requests; a
real Celery worker does what a push webhook asks (sync the branch, then continuous delivery) and rolls the
new commit out in batches of one, the first batch a canary judged after `--bake` seconds by its error rate
against the other two. The clock starts at the push (the commit is made and its green build recorded, as
Jenkins' webhook would) and stops when the deploy has succeeded on every host. The baseline, in the same
process, is the same push with no analysis: the figure is what the analysis adds beyond its bake (target:
push → proven within bake + 15 s).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GANTRY_VAR_DIR", tempfile.mkdtemp(prefix="gantry-bench-"))
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
os.environ.pop("DATABASE_URL", None)
os.environ.pop("REDIS_URL", None)

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from bench.prometheus_run import free_port, prometheus_start  # noqa: E402
from deployer import queue  # noqa: E402
from deployer.catalog.load import catalog_apply, catalog_parse  # noqa: E402
from deployer.choices import BuildResult, DeployStatus, DeployTrigger  # noqa: E402
from deployer.demo import setup  # noqa: E402
from deployer.demo.hosts import SshdHost  # noqa: E402
from deployer.demo.watching import users  # noqa: E402
from deployer.models import Build, Deploy, Environment  # noqa: E402
from tests.support.worker import Worker  # noqa: E402

ADDRESSES = ["127.0.3.1", "127.0.3.2", "127.0.3.3"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bake", type=int, default=60)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    if shutil.which("prometheus") is None:
        sys.exit("Prometheus is not installed: apt-get install prometheus")
    call_command("migrate", verbosity=0)
    work = Path(tempfile.mkdtemp(prefix="gantry-bench-push-"))
    app_port, ssh_port, prom_port = free_port("127.0.0.1"), free_port("127.0.0.1"), free_port("127.0.0.1")
    hosts = [SshdHost(work / f"host{n}", address, ssh_port) for n, address in enumerate(ADDRESSES)]
    setup.hosts_trust(hosts)
    sshds = [host.start() for host in hosts]
    repo = work / "repo"
    setup.repo_create(repo)
    prometheus = prometheus_start(work, prom_port, [f"{a}:{app_port}" for a in ADDRESSES])
    worker = Worker(env={"GANTRY_PROMETHEUS": f"main=http://127.0.0.1:{prom_port}"})
    worker.start()
    try:
        environment = _catalog(repo, hosts, app_port, args.bake)
        analysis = environment.analysis
        _proven(environment, repo, "first release (not judged: nothing to compare with)")
        with users_everywhere(app_port):
            time.sleep(4)  # a few scrapes: every window has data
            timed: dict[str, list[float]] = {"baseline": [], "canary": []}
            for run in range(args.runs):
                Environment.objects.filter(pk=environment.pk).update(analysis={})
                timed["baseline"].append(_proven(environment, repo, f"push {run + 1}, no analysis"))
                Environment.objects.filter(pk=environment.pk).update(analysis=analysis)
                timed["canary"].append(_proven(environment, repo, f"push {run + 1}, canary with a {args.bake} s bake"))
    finally:
        worker.stop()
        prometheus.terminate()
        for sshd in sshds:
            sshd.terminate()
        for host in hosts:
            _stop_app(host.directory / "srv" / "shared" / "app.pid")
    base, canary = statistics.median(timed["baseline"]), statistics.median(timed["canary"])
    print(f"\npush → proven on 3 hosts (batches of 1), continuous delivery, a real worker; {args.runs} run(s)")
    print(f"  without analysis:                {base:.1f} s (baseline)")
    print(
        f"  with a {args.bake} s canary bake:       {canary:.1f} s ({canary / (base + args.bake):.2f}× baseline + bake)"
    )
    print(f"  beyond the bake:                 {canary - args.bake:.1f} s (target: under 15 s)")
    print(f"  the analysis itself added:       {canary - args.bake - base:.1f} s")


def users_everywhere(port: int) -> contextlib.ExitStack:
    stack = contextlib.ExitStack()
    for address in ADDRESSES:
        stack.enter_context(users(f"http://{address}:{port}/", per_second=20))
    return stack


def _catalog(repo: Path, hosts: list[SshdHost], port: int, bake: int) -> Environment:
    lines = "".join(
        f"          - {{address: {h.address}, port: {h.port}, user: {h.user}, deploy_path: {h.directory / 'srv'}}}\n"
        for h in hosts
    )
    window = "[10s]"
    ratio = (
        f'(sum(rate(demo_requests_total{{code=~"5..",instance=~"{{{{hosts}}}}"}}{window})) or vector(0)) / '
        f'sum(rate(demo_requests_total{{instance=~"{{{{hosts}}}}"}}{window}))'
    )
    metric = {"name": "error_rate", "query": ratio, "condition": "canary <= baseline * 2 + 0.01", "interval": 1}
    spec = {"prometheus": "main", "instance": f"{{address}}:{port}", "bake": bake, "metrics": [{**metric, "count": 1}]}
    catalog_apply(
        catalog_parse(
            f"services:\n  bench:\n    repo: {repo}\n    environments:\n      test:\n"
            f"        deploy_path: /srv/bench\n        follow: main\n        batch_size: 1\n"
            f"        build_command: sh build.sh\n        restart_command: sh bin/restart {port}\n"
            f"        health_check_url: http://{{address}}:{port}/healthz\n"
            f"        analysis: {json.dumps(spec)}\n        hosts:\n{lines}"
        )
    )
    return Environment.objects.select_related("service").get(service__name="bench")


def _proven(environment: Environment, repo: Path, what: str) -> float:
    """Push a commit to main, record its green build, ask for the sync a push webhook asks for; the seconds
    until continuous delivery's deploy of it succeeded on every host."""
    pushed = time.monotonic()
    sha = setup.repo_branch(repo, "main", {"PUSHED": f"{time.time()}\n"}, f"bench: {what}")
    Build.objects.create(
        service=environment.service,
        job="bench",
        number=Build.objects.count() + 1,
        sha=sha,
        branch="main",
        result=BuildResult.SUCCESS,
    )
    queue.enqueue(queue.SYNC_BRANCHES, environment.service_id)
    while True:
        deploy = Deploy.objects.filter(environment=environment, sha=sha, trigger=DeployTrigger.CONTINUOUS).first()
        if deploy is not None and deploy.status not in DeployStatus.active():
            break
        if time.monotonic() - pushed > 600:
            sys.exit(f"{what}: no deploy of {sha[:8]} finished within 10 min")
        time.sleep(0.1)
    took = time.monotonic() - pushed
    if deploy.status != DeployStatus.SUCCEEDED:
        sys.exit(f"{what}: deploy #{deploy.pk} {deploy.status}: {deploy.reason}")
    print(f"{what}: {took:.1f} s (deploy #{deploy.pk})")
    return took


def _stop_app(pidfile: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        os.kill(int(pidfile.read_text().strip()), 15)


if __name__ == "__main__":
    main()
