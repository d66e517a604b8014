"""Click → a worker has claimed the deploy: how long a deploy waits in the queue, on Redis and on the
embedded (filesystem) broker.

Run: .venv/bin/python bench/claim.py [--deploys 40] [--broker both|redis|embedded]

Each broker is measured in a process of its own (settings are read at start): a
fresh SQLite database in a temporary directory, a real Celery worker (two pool
processes, as in the tests) and a deploy recorded as the Deploy button records
it (deploy_request: the row, then the message after commit). The claim is the
worker marking it running (Deploy.started_at); the deploy then fails at once (its
host refuses connections) and the next one is requested. Redis is the local one
on its default port (database 14, keys prefixed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REDIS = "redis://127.0.0.1:6379/14"


def measure(deploys: int) -> list[float]:
    """In a process whose settings name the broker: the claim delay of `deploys` deploys, in ms."""
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from deployer.catalog.load import catalog_apply, catalog_parse
    from deployer.models import Branch, Deploy, Environment, Grant
    from tests.support.worker import Worker

    call_command("migrate", verbosity=0)
    catalog_apply(
        catalog_parse(
            "services:\n  app:\n    repo: /nonexistent/app\n    environments:\n"
            "      test: {deploy_path: /srv/app, hosts: [{address: 127.0.0.1, port: 1}]}\n"
        )
    )
    environment = Environment.objects.get(service__name="app", name="test")
    Branch.objects.create(service=environment.service, name="main", sha="a" * 40)
    user = get_user_model().objects.create_user("bench", password="x")
    Grant.objects.create(principal="bench", role="deployer")
    worker = Worker()
    worker.start()
    from deployer.deploys.request import deploy_request

    samples = []
    try:
        for _ in range(deploys + 2):  # the first two warm the worker's pool processes
            clicked = time.time()
            deploy = deploy_request(environment=environment, ref="main", user=user)
            while (row := Deploy.objects.get(pk=deploy.pk)).finished_at is None:
                time.sleep(0.02)
            samples.append((row.started_at.timestamp() - clicked) * 1000 if row.started_at else float("nan"))
    finally:
        worker.stop()
    return samples[2:]


def child(broker: str, deploys: int) -> list[float]:
    env = {**os.environ, "GANTRY_VAR_DIR": tempfile.mkdtemp(prefix=f"gantry-claim-{broker}-")}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    if broker == "redis":
        env["REDIS_URL"] = REDIS
    answer = subprocess.run(
        [sys.executable, __file__, "--child", "--deploys", str(deploys)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return [float(value) for value in answer.stdout.split()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deploys", type=int, default=40)
    parser.add_argument("--broker", choices=["both", "redis", "embedded"], default="both")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(" ".join(f"{value:.1f}" for value in measure(args.deploys)))
        return
    brokers = ["redis", "embedded"] if args.broker == "both" else [args.broker]
    figures = {broker: sorted(child(broker, args.deploys)) for broker in brokers}
    print(f"\nclick → claimed by a worker, {args.deploys} deploys each ({os.cpu_count()} cores, SQLite)")
    print(f"{'broker':12}{'p50 ms':>10}{'p95 ms':>10}{'max ms':>10}")
    for broker, samples in figures.items():
        p95 = samples[max(0, int(len(samples) * 0.95) - 1)]
        print(f"{broker:12}{statistics.median(samples):>10.1f}{p95:>10.1f}{samples[-1]:>10.1f}")
    if "redis" in figures:
        redis = figures["redis"]
        print(f"Redis p95 {redis[max(0, int(len(redis) * 0.95) - 1)]:.1f} ms (target <= 300)")


if __name__ == "__main__":
    main()
