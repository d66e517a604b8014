"""What a canary analysis adds to a batch beyond its configured waiting, and how many queries it sends.

Run: .venv/bin/python bench/canary.py [--metrics 2] [--count 5] [--interval 1] [--runs 3]

A real Prometheus (Debian's) scrapes three copies of the demo app on loopback, under load; Gantry's analysis
(deployer.deploys.analysis.analysis_run, in this process, storing every measurement) judges one of them
against the other two with --metrics metrics (each a ratio against the baseline, with a sample query),
--count measurements --interval seconds apart. Its configured time is count × interval; the figure is what
it takes beyond that (target: under 1 s per batch), and the Prometheus queries it sent. The baseline run in
the same process is the same schedule with nothing measured (the waiting alone).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GANTRY_VAR_DIR", tempfile.mkdtemp(prefix="gantry-bench-"))
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

from bench.prometheus_run import free_port, prometheus_start  # noqa: E402
from deployer.catalog.analysis_spec import AnalysisSpec  # noqa: E402
from deployer.catalog.load import catalog_apply, catalog_parse  # noqa: E402
from deployer.deploys import analysis  # noqa: E402
from deployer.integrations import prometheus_api  # noqa: E402
from deployer.models import Deploy, Environment  # noqa: E402

ADDRESSES = ["127.0.2.1", "127.0.2.2", "127.0.2.3"]
APP = ROOT / "deployer" / "demo" / "app" / "app.py"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--metrics", type=int, default=2)
    parser.add_argument("--count", type=int, default=5)
    parser.add_argument("--interval", type=int, default=1)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("prometheus") is None:
        sys.exit("Prometheus is not installed: apt-get install prometheus")
    call_command("migrate", verbosity=0)
    work = Path(tempfile.mkdtemp(prefix="gantry-bench-canary-"))
    port = free_port("127.0.0.1")
    apps = [subprocess.Popen([sys.executable, str(APP), "--host", a, "--port", str(port)]) for a in ADDRESSES]
    prom_port = free_port("127.0.0.1")
    prometheus = prometheus_start(work, prom_port, [f"{a}:{port}" for a in ADDRESSES])
    settings.PROMETHEUS_SERVERS = {"main": f"http://127.0.0.1:{prom_port}"}
    stop = threading.Event()
    load = [threading.Thread(target=_traffic, args=(f"http://{a}:{port}/", stop), daemon=True) for a in ADDRESSES]
    for thread in load:
        thread.start()
    try:
        time.sleep(6)  # a few scrapes, so every window has data
        spec = _spec(args, port)
        fleet, canary, baseline = _fleet(spec)
        waited = [_run(fleet, spec, canary, baseline, measure=False)[0] for _ in range(args.runs)]
        measured = [_run(fleet, spec, canary, baseline, measure=True) for _ in range(args.runs)]
    finally:
        stop.set()
        prometheus.terminate()
        for app in apps:
            app.terminate()
    configured = args.count * args.interval
    wait, took = statistics.median(waited), statistics.median(m[0] for m in measured)
    queries = measured[0][1]
    print(f"\ncanary analysis: {args.metrics} metric(s) × {args.count} measurements, {args.interval} s apart")
    print(f"  configured waiting:        {configured:.2f} s")
    print(f"  the schedule alone:        {wait:.2f} s (baseline)")
    print(f"  with every measurement:    {took:.2f} s ({took / wait:.2f}× the baseline)")
    print(f"  added beyond the waiting:  {took - configured:.2f} s per batch (target: under 1 s)")
    print(
        f"  Prometheus queries:        {queries} per batch ({queries / (args.metrics * args.count):.0f} a measurement)"
    )


def _spec(args: argparse.Namespace, port: int) -> AnalysisSpec:
    window = "[5s]"
    ratio = (
        f'(sum(rate(demo_requests_total{{code=~"5..",instance=~"{{{{hosts}}}}"}}{window})) or vector(0)) / '
        f'sum(rate(demo_requests_total{{instance=~"{{{{hosts}}}}"}}{window}))'
    )
    sample = f'sum(increase(demo_requests_total{{instance=~"{{{{hosts}}}}"}}{window}))'
    metric = {"query": ratio, "condition": "canary <= baseline * 2 + 0.01", "sample": sample, "min_sample": 1}
    metrics = [{**metric, "name": f"m{n}", "interval": args.interval, "count": args.count} for n in range(args.metrics)]
    return AnalysisSpec.model_validate(
        {"prometheus": "main", "instance": f"{{address}}:{port}", "bake": 0, "metrics": metrics}
    )


def _fleet(spec: AnalysisSpec) -> tuple[SimpleNamespace, list[SimpleNamespace], list[SimpleNamespace]]:
    hosts = "\n".join(f"          - {{address: {a}}}" for a in ADDRESSES)
    catalog_apply(
        catalog_parse(
            f"services:\n  bench:\n    repo: /srv/git/bench.git\n    environments:\n      test:\n"
            f"        deploy_path: /srv/bench\n        hosts:\n{hosts}\n"
        )
    )
    environment = Environment.objects.get(service__name="bench")
    deploy = Deploy.objects.create(environment=environment, ref="main", sha="a" * 40)
    runs = [SimpleNamespace(name=host.address, host=host) for host in environment.hosts.order_by("position")]
    return SimpleNamespace(deploy=deploy), runs[:1], runs[1:]


def _run(fleet: object, spec: AnalysisSpec, canary: list, baseline: list, *, measure: bool) -> tuple[float, int]:
    sent = [0]
    real_query, real_measure = prometheus_api.query, analysis._measure

    def counted(*args: object, **kwargs: object) -> list[prometheus_api.Sample]:
        sent[0] += 1
        return real_query(*args, **kwargs)  # type: ignore[arg-type]

    def nothing(fleet: object, spec: object, url: str, tally: analysis._Tally, *rest: object) -> None:
        tally.done += 1

    prometheus_api.query = counted  # type: ignore[assignment]  # (counting the bench's own calls)
    analysis._measure = real_measure if measure else nothing  # type: ignore[assignment]
    try:
        started = time.monotonic()
        judged = analysis.analysis_run(fleet, spec, canary, baseline, stop=lambda: False)  # type: ignore[arg-type]
        took = time.monotonic() - started
    finally:
        prometheus_api.query, analysis._measure = real_query, real_measure  # type: ignore[assignment]
    if measure:
        assert judged is not None and judged.verdict == "pass", judged
    return took, sent[0]


def _traffic(url: str, stop: threading.Event) -> None:
    session = requests.Session()
    while not stop.wait(0.02):
        with contextlib.suppress(requests.RequestException):
            session.get(url, timeout=2)


if __name__ == "__main__":
    main()
