"""Gantry at 500 and 5,000 services with builds: page times, page sizes, query counts, resync cost and pace.

Run: .venv/bin/python bench/scale.py [--services 500 5000] [--branches 10] [--big-branches 500] [--requests 100]

Uses a fresh SQLite database in a temporary directory (or DATABASE_URL, which
must point at a throwaway PostgreSQL database), and the test suite's fake
GitHub and Jenkins servers on loopback. Every figure is printed next to the
same figure for the first size, measured first in the same process. One more
service has --big-branches branches, for the service page.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("GANTRY_VAR_DIR", tempfile.mkdtemp(prefix="gantry-bench-"))
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.utils import timezone  # noqa: E402

from deployer.catalog.load import catalog_apply, catalog_parse  # noqa: E402
from deployer.choices import BuildResult, DeployStatus, SyncSource  # noqa: E402
from deployer.models import Branch, Build, Deploy, Environment, Service, SyncState  # noqa: E402
from deployer.sources.branches import branch_sync  # noqa: E402
from deployer.sources.builds import build_sync  # noqa: E402
from deployer.sources.pacing import peak_per_minute, resync_round  # noqa: E402
from tests.fakes.github import FakeGitHub  # noqa: E402
from tests.fakes.jenkins import FakeJenkins  # noqa: E402


def configure(github: FakeGitHub, jenkins: FakeJenkins) -> None:
    settings.GITHUB_TOKEN, settings.GITHUB_API_URL, settings.GITHUB_WEB_URL = github.token, github.api_url, github.url
    settings.JENKINS_URL, settings.JENKINS_USER, settings.JENKINS_TOKEN = jenkins.url, jenkins.user, jenkins.token


def generate(first: int, count: int, branches: int, github: FakeGitHub, jenkins: FakeJenkins) -> None:
    """Services s<first>.., on the fake GitHub and Jenkins, with branches, builds and deploys in the database."""
    body = "".join(
        f"  s{n:04d}:\n    team: t{n % 20}\n    github: acme/s{n:04d}\n    jenkins_job: s{n:04d}\n    environments:\n"
        f"      test: {{deploy_path: /srv/s{n}, hosts: [{{address: 10.0.1.1}}]}}\n"
        f"      staging: {{deploy_path: /srv/s{n}, hosts: [{{address: 10.0.2.1}}]}}\n"
        f"      prod: {{deploy_path: /srv/s{n}, hosts: [{{address: 10.0.3.1}}]}}\n"
        for n in range(first, first + count)
    )
    teams = "".join(f"  t{n}: {{}}\n" for n in range(20))
    catalog_apply(catalog_parse(f"teams:\n{teams}services:\n{body}"))
    populate(branches, github, jenkins)


def populate(branches: int, github: FakeGitHub, jenkins: FakeJenkins) -> None:
    """Branches, builds and deploys for the services that have none yet."""
    now = timezone.now()
    branch_rows, build_rows = [], []
    for service in Service.objects.filter(branches__isnull=True):
        repo = github.add_repo(service.github_repo, branches=branches)
        jenkins.add_job(service.jenkins_job)
        for number, (name, sha) in enumerate(sorted(repo.branches.items()), start=1):
            commit = repo.commits[sha]
            branch_rows.append(
                Branch(
                    service=service,
                    name=name,
                    sha=sha,
                    author=commit.author,
                    message=commit.message,
                    committed_at=commit.date,
                )
            )
            jenkins.build(service.jenkins_job, name, sha)
            build_rows.append(
                Build(
                    service=service,
                    job=service.jenkins_job,
                    number=number,
                    branch=name,
                    sha=sha,
                    result=BuildResult.SUCCESS,
                    started_at=now,
                    duration_ms=42_000,
                    url="",
                )
            )
    Branch.objects.bulk_create(branch_rows, batch_size=2000)
    Build.objects.bulk_create(build_rows, batch_size=2000)
    deploys = []
    for environment in Environment.objects.filter(deploys__isnull=True).select_related("service"):
        sha = github.repos[environment.service.github_repo].branches["main"]
        deploys.append(
            Deploy(
                environment=environment,
                ref="main",
                sha=sha,
                status=DeployStatus.SUCCEEDED,
                started_at=now,
                finished_at=now,
            )
        )
    Deploy.objects.bulk_create(deploys, batch_size=2000)


ENVS = ("test", "staging", "prod")


def generate_big(branches: int, github: FakeGitHub, jenkins: FakeJenkins) -> None:
    """The service `big`, with `branches` branches and a build of each, running main in three environments."""
    catalog_apply(
        catalog_parse(
            "services:\n  big:\n    github: acme/big\n    jenkins_job: big\n    environments:\n"
            + "".join(f"      {e}: {{deploy_path: /srv/big-{e}, hosts: [{{address: 10.0.9.1}}]}}\n" for e in ENVS)
        )
    )
    populate(branches, github, jenkins)


def timings(client: Client, url: str, requests: int) -> tuple[float, float, int]:
    """p50 and p95 server time in ms over `requests` GETs, and the queries of one."""
    client.get(url)  # warm the template cache
    samples = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(url)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
    with CaptureQueriesContext(connection) as captured:
        client.get(url)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1], len(captured)


def resync(github: FakeGitHub, jenkins: FakeJenkins) -> dict[str, float]:
    services = list(Service.objects.all())
    github.reset_counters()
    jenkins.reset_counters()
    units = github.units_spent
    started = time.perf_counter()
    for service in services:
        branch_sync(service=service)
    github_seconds = time.perf_counter() - started
    started = time.perf_counter()
    for service in services:
        build_sync(service=service)
    return {
        "repos": len(services),
        "github requests": github.count(),
        "github units": github.units_spent - units,
        "github seconds": github_seconds,
        "jenkins requests": jenkins.count(),
        "jenkins seconds": time.perf_counter() - started,
    }


def measure_sync(github: FakeGitHub, jenkins: FakeJenkins) -> dict:
    # Prime: the first sync of each repo learns the ETags (and costs one unit per page).
    for service in Service.objects.filter(sync_states__isnull=True):
        branch_sync(service=service)
    return {
        "services": Service.objects.count(),
        "branches": Branch.objects.count(),
        "builds": Build.objects.count(),
        "resync": resync(github, jenkins),
    }


PAGES = {
    "list, uncached": "/",
    "list, cached": "/",
    "list ?show=all, uncached": "/?show=all",
    "API /api/v1/services/": "/api/v1/services/",
    "service page, big": "/services/big/",
}


def measure_pages(figures: dict, client: Client, requests: int) -> dict:
    for page, url in PAGES.items():
        settings.MATRIX_CACHE_SECONDS = 5 if "cached" in page and "uncached" not in page else 0
        count = max(10, requests // 10) if "show=all" in page else requests  # the whole matrix is slow on purpose
        figures[page] = timings(client, url, count)
        figures[page + " KB"] = len(client.get(url).content) / 1024
    print(f"measured {figures['services']} services, {figures['branches']} branches", file=sys.stderr)
    return figures


def report(small: dict, large: dict) -> None:
    print(f"\nGantry scale benchmark ({connection.vendor}, {os.cpu_count()} cores)")
    print(f"{'':40}{small['services']:>10} svc{large['services']:>10} svc{'ratio':>8}")
    for key in ("services", "branches", "builds"):
        print(f"{key:40}{small[key]:>14}{large[key]:>14}")
    for page in PAGES:
        for index, name in enumerate(("p50 ms", "p95 ms", "SQL queries")):
            a, b = small[page][index], large[page][index]
            print(f"{page + ' ' + name:40}{a:>14.1f}{b:>14.1f}{b / a if a else 0:>8.2f}")
        a, b = small[page + " KB"], large[page + " KB"]
        print(f"{page + ' KB':40}{a:>14.1f}{b:>14.1f}{b / a if a else 0:>8.2f}")
    for key in ("github requests", "github units", "github seconds", "jenkins requests", "jenkins seconds"):
        a, b = small["resync"][key], large["resync"][key]
        print(f"{'resync ' + key:40}{a:>14.1f}{b:>14.1f}{b / a if a else 0:>8.2f}")
    repos = large["resync"]["repos"]
    per_repo = large["resync"]["github requests"] / repos
    print(
        f"\nfull resync of {repos} unchanged repositories: {per_repo:.2f} GitHub requests and "
        f"{large['resync']['github units'] / repos:.2f} rate-limit units per repo; "
        f"{large['resync']['jenkins requests'] / repos:.2f} Jenkins requests per service"
    )
    print(
        f"paced resync (GANTRY_GITHUB_SYNC_REQUESTS_PER_MINUTE={settings.GITHUB_SYNC_PER_MINUTE}, a round every "
        f"{settings.BRANCH_SYNC_SECONDS} s): peak {large['peak per minute']:.0f} GitHub requests in any minute over "
        f"{ROUNDS} rounds (secondary limit 900), every repository checked every {large['cycle minutes']:.1f} min"
    )
    print(
        f"services list p95 at {large['services']} services: {large['list, uncached'][1]:.1f} ms uncached "
        f"(target <= 200), {large['list, cached'][1]:.1f} ms cached (target <= 30), "
        f"{large['list, uncached KB']:.0f} KB (target < 500); service page with --big-branches p95 "
        f"{large['service page, big'][1]:.1f} ms (target <= 50)"
    )


ROUNDS = 12


def measure_pace(figures: dict) -> dict:
    """Plan ROUNDS rounds of the periodic resync as the scheduler does (marking each planned repository
    attempted, as its sync would), and the peak requests in any minute at the measured requests per repo."""
    per_repo = figures["resync"]["github requests"] / figures["resync"]["repos"]
    starts, seen = [], set()
    every = settings.BRANCH_SYNC_SECONDS
    cycle = 0.0
    for number in range(ROUNDS):
        planned = resync_round(every_seconds=every, per_minute=settings.GITHUB_SYNC_PER_MINUTE)
        now = timezone.now()
        for pk, wait in planned.paced:
            starts.append(number * every + wait)
            seen.add(pk)
        SyncState.objects.filter(service__in=[pk for pk, _ in planned.paced], source=SyncSource.BRANCHES).update(
            attempted_at=now + timedelta(seconds=number * every)
        )
        if not cycle and len(seen) == Service.objects.exclude(github_repo="").count():
            cycle = (number + 1) * every / 60
    figures["peak per minute"] = peak_per_minute(starts, per_repo)
    figures["cycle minutes"] = cycle or float("inf")
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, nargs=2, default=[500, 5000], metavar=("SMALL", "LARGE"))
    parser.add_argument("--branches", type=int, default=10)
    parser.add_argument("--big-branches", type=int, default=500)
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args()
    small_count, large_count = args.services
    call_command("migrate", verbosity=0)
    settings.DEBUG = False
    client = Client()
    client.force_login(get_user_model().objects.create_user("bench", password="x"))
    github, jenkins = FakeGitHub(rate_limit=100_000).start(), FakeJenkins().start()
    configure(github, jenkins)
    generate_big(args.big_branches, github, jenkins)
    generate(0, small_count, args.branches, github, jenkins)
    small = measure_pages(measure_sync(github, jenkins), client, args.requests)
    generate(small_count, large_count - small_count, args.branches, github, jenkins)
    large = measure_pace(measure_sync(github, jenkins))
    # The fakes hold every commit in memory; a real web process does not, so they
    # are stopped and freed before the pages are timed (they would only add GC time).
    github.stop()
    jenkins.stop()
    del github, jenkins
    gc.collect()
    large = measure_pages(large, client, args.requests)
    report(small, large)


if __name__ == "__main__":
    main()
