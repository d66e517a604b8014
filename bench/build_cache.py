"""A redeploy that changes no dependency: how long with build_cache, and without?

Run: .venv/bin/python bench/build_cache.py [--runs 3]

A Django application with 30+ dependencies (Wagtail's, and gunicorn) deployed with `build: builder` to two
sshd hosts on loopback: the builder makes a virtualenv and pip-installs the requirements in its sandbox, both
hosts restart gunicorn and answer a health check. Each run commits a change that is not a dependency and
deploys it through Gantry's whole pipeline (deploy_execute, in this process):

- with build_cache    {key: [requirements.txt], dirs: [.venv]}: the venv is restored, pip finds it complete;
- without             the same build from scratch (a fresh sandbox has no pip cache either).

The first deploy with the cache (cold: it fills it) is shown apart. The target: a cached redeploy of two
hosts, health checks included, in at most 15 s. The median of --runs is printed, with the ratio.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("GANTRY_VAR_DIR", tempfile.mkdtemp(prefix="gantry-bench-"))
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from rollout import free_port, start_hosts, timed  # noqa: E402

from deployer.catalog.load import catalog_apply, catalog_parse  # noqa: E402
from deployer.choices import DeployStatus  # noqa: E402
from deployer.demo import setup  # noqa: E402
from deployer.demo.hosts import SshdHost  # noqa: E402
from deployer.deploys.execution import deploy_execute  # noqa: E402
from deployer.deploys.request import deploy_request  # noqa: E402
from deployer.models import Artifact, Environment  # noqa: E402
from deployer.sources.branches import branch_sync  # noqa: E402

REQUIREMENTS = "wagtail==8.0.1\ngunicorn==27.0.1\n"
FILES = {
    "requirements.txt": REQUIREMENTS,
    "manage.py": "import os, sys\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'site_app.settings')\n"
    "from django.core.management import execute_from_command_line\nexecute_from_command_line(sys.argv)\n",
    "site_app/__init__.py": "",
    "site_app/settings.py": "SECRET_KEY = 'bench-only'\nDEBUG = False\nALLOWED_HOSTS = ['*']\n"
    "ROOT_URLCONF = 'site_app.urls'\nINSTALLED_APPS = []\n"
    "DATABASES = {}\n",
    "site_app/urls.py": "from django.http import HttpResponse\nfrom django.urls import path\n"
    "import wagtail\nurlpatterns = [path('healthz', lambda r: HttpResponse('ok ' + wagtail.__version__))]\n",
    "site_app/wsgi.py": "import os\nos.environ.setdefault('DJANGO_SETTINGS_MODULE', 'site_app.settings')\n"
    "from django.core.wsgi import get_wsgi_application\napplication = get_wsgi_application()\n",
    "bin/restart": 'set -eu\nport=$1\npid="$GANTRY_DEPLOY_PATH/shared/gunicorn.pid"\n'
    '[ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null && sleep 0.3 || true\n'
    '.venv/bin/python -m gunicorn site_app.wsgi -b "$GANTRY_HOST:$port" -w 1 --daemon --pid "$pid"\n',
}
BUILD = (  # as the README suggests with a cache: make the venv only when it was not restored
    "test -d .venv || python3 -m venv .venv; "
    ".venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt"
)


def catalog(repo: Path, builder: SshdHost, hosts: list[SshdHost], root: Path, port: int, cache: bool) -> str:
    lines = "\n".join(
        f"          - {{address: {h.address}, port: {h.port}, user: {h.user}, deploy_path: {root / h.address}}}"
        for h in hosts
    )
    b = builder
    return f"""
services:
  shop:
    repo: {repo}
    environments:
      test:
        deploy_path: /srv/shop
        build: builder
        builder: {{address: {b.address}, port: {b.port}, user: {b.user}, path: {root / "builder"}}}
        build_command: {BUILD}
        {"build_cache: {key: [requirements.txt], dirs: [.venv]}" if cache else ""}
        restart_command: sh bin/restart {port}
        health_check_url: http://{{address}}:{port}/healthz
        health_check_timeout: 60
        command_timeout: 900
        batch_size: 2
        hosts:
{lines}
"""


def deployed(repo: Path, run: str) -> float:
    """Commit a change that is not a dependency, and deploy it; the seconds the deploy took."""
    setup.git(repo, "commit", "--quiet", "--allow-empty", "-m", f"not a dependency: {run}")
    environment = Environment.objects.get(service__name="shop", name="test")
    branch_sync(service=environment.service)
    user = get_user_model().objects.get_or_create(username="bench", defaults={"is_superuser": True})[0]
    deploy = deploy_request(environment=environment, ref="main", user=user)
    seconds = timed(lambda: deploy_execute(deploy_id=deploy.pk))
    deploy.refresh_from_db()
    if deploy.status != DeployStatus.SUCCEEDED:
        raise RuntimeError(f"deploy #{deploy.pk} {deploy.status}: {deploy.reason}")
    Artifact.objects.all().delete()  # each deploy builds (a new commit would anyway)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("gantry").setLevel(logging.WARNING)
    call_command("migrate", verbosity=0)
    work = Path(tempfile.mkdtemp(prefix="gantry-bench-cache-"))
    repo = work / "repo"
    repo.mkdir()
    setup.git(repo, "init", "--quiet", "--initial-branch=main")
    for name, text in FILES.items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    setup.git(repo, "add", "--all")
    setup.git(repo, "commit", "--quiet", "-m", "A Django application")
    hosts, processes = start_hosts(3, work / "hosts")
    builder, targets = hosts[0], hosts[1:]
    port = free_port(targets[0].address)
    results: dict[str, list[float]] = {"with build_cache": [], "without": []}
    try:
        catalog_apply(catalog_parse(catalog(repo, builder, targets, work / "srv", port, cache=True)))
        cold = deployed(repo, "cold")
        for run in range(args.runs):
            catalog_apply(catalog_parse(catalog(repo, builder, targets, work / "srv", port, cache=True)))
            results["with build_cache"].append(deployed(repo, f"cached {run}"))
            catalog_apply(catalog_parse(catalog(repo, builder, targets, work / "srv", port, cache=False)))
            results["without"].append(deployed(repo, f"uncached {run}"))
    finally:
        for process in processes:
            process.terminate()
    medians = {name: statistics.median(times) for name, times in results.items()}
    print(f"2 hosts, a Django app with Wagtail's dependencies, median of {args.runs}:")
    print(f"  first deploy (fills the cache) {cold:6.2f} s")
    for name, value in medians.items():
        print(f"  {name:<30} {value:6.2f} s")
    cached = medians["with build_cache"]
    print(f"  cached / uncached              {cached / medians['without']:.2f}x; target 15 s: {cached / 15:.2f}x of it")


if __name__ == "__main__":
    main()
