"""The canary analysis: the first batch is judged by real Prometheus, scraping the demo app on each real sshd
host under load, against the hosts still on the old release. A release that fails 20 % of requests is
rolled back from its canary while the other hosts never leave the old release; a good one reaches every
host; no traffic and no Prometheus are inconclusive, never a pass."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from django.urls import reverse

from deployer.choices import DeployStatus, HostStatus
from deployer.demo import setup
from deployer.demo.hosts import SshdHost
from deployer.deploys.request import deploy_request
from deployer.integrations import haproxy
from deployer.models import Deploy, DeployLog, DeployPhase, Measurement
from tests.support.catalogs import AppRepo, MakeEnvironment
from tests.support.deploys import deploy_and_wait, host_root
from tests.support.haproxy import all_up, haproxy_running
from tests.support.load import Load
from tests.support.pages import plan_page
from tests.support.prometheus import ADDRESS, prometheus_running
from tests.support.waiting import deploy_story, wait_for_deploy, wait_until
from tests.support.worker import Worker

pytestmark = [pytest.mark.slow, pytest.mark.one_backend]

WINDOW = "[8s]"
ERROR_RATIO = (
    f'(sum(rate(demo_requests_total{{code=~"5..",instance=~"{{{{hosts}}}}"}}{WINDOW})) or vector(0)) / '
    f'sum(rate(demo_requests_total{{instance=~"{{{{hosts}}}}"}}{WINDOW}))'
)
REQUESTS = f'sum(increase(demo_requests_total{{instance=~"{{{{hosts}}}}"}}{WINDOW}))'


def analysis(app_port: int, **overrides: Any) -> str:
    metric = {
        "name": "error_rate",
        "query": ERROR_RATIO,
        "condition": "canary <= baseline * 2 + 0.01",
        "sample": REQUESTS,
        "min_sample": 10,
        "interval": 2,
        "count": 3,
    }
    spec = {"prometheus": "main", "canary": 1, "instance": f"{{address}}:{app_port}", "bake": 3, "metrics": [metric]}
    return json.dumps({**spec, **overrides})  # (JSON is YAML: the catalog reads it as written)


@pytest.fixture(scope="module")
def bad_branch(app_repo: AppRepo) -> str:
    """A release that answers one request in five with 500: every health check still passes."""
    branches = setup.git(app_repo.path, "branch", "--list", "bad-canary")
    if not branches.strip():
        setup.repo_branch(app_repo.path, "bad-canary", {"ERROR_RATE": "0.2\n"}, "Fail a fifth of requests")
    return "bad-canary"


@pytest.fixture
def prometheus(tmp_path: Path, ssh_hosts: list[SshdHost], app_port: int, prometheus_port: int) -> Iterator[str]:
    with prometheus_running(tmp_path / "prometheus", prometheus_port, [f"{h.address}:{app_port}" for h in ssh_hosts]):
        yield f"http://{ADDRESS}:{prometheus_port}"


def traffic(ssh_hosts: list[SshdHost], app_port: int) -> Load:
    """About 40 requests a second to each host's app (what users would send)."""
    return Load([f"http://{host.address}:{app_port}/" for host in ssh_hosts], pause=0.02)


def test_a_release_that_fails_requests_is_rolled_back_from_its_canary(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    ssh_hosts: list[SshdHost],
    app_port: int,
    prometheus: str,
    bad_branch: str,
    deployer_client: Client,
) -> None:
    environment = make_environment(options={"batch_size": "1"})
    first = deploy_and_wait(environment, "main", deployer, celery_worker)
    assert first.status == DeployStatus.SUCCEEDED, first.reason
    environment.analysis = json.loads(analysis(app_port))
    environment.save(update_fields=["analysis"])

    with traffic(ssh_hosts, app_port):
        deploy = deploy_and_wait(environment, bad_branch, deployer, celery_worker)

    story = deploy_story(celery_worker)
    assert deploy.status == DeployStatus.ROLLED_BACK, story
    assert "canary analysis: canary" in deploy.reason and "error_rate failed" in deploy.reason, deploy.reason
    assert "not canary <= baseline * 2 + 0.01" in deploy.reason
    hosts = list(deploy.hosts.order_by("host__position"))
    assert [h.status for h in hosts] == [HostStatus.ROLLED_BACK, HostStatus.STAGED, HostStatus.STAGED], story
    for index in range(3):  # the canary went back; the others never left the old release
        assert (host_root(environment, index) / "current").readlink() == Path("releases") / first.release_name
    failed = Measurement.objects.filter(deploy=deploy, verdict=Measurement.Verdict.FAIL).first()
    assert failed is not None and failed.canary is not None and failed.canary > 0.1, story
    assert failed.baseline == 0.0 and failed.canary_sample and failed.canary_sample >= 10
    assert f"{ssh_hosts[0].address.replace('.', chr(92) * 2 + '.')}" in failed.canary_query, failed.canary_query
    page = deployer_client.get(reverse("deploy", args=[deploy.pk])).content.decode()
    assert "Canary analysis" in page and 'data-verdict="fail"' in page


def test_a_good_release_passes_its_canary_and_reaches_every_host(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    deployer_client: Client,
    ssh_hosts: list[SshdHost],
    app_port: int,
    prometheus: str,
) -> None:
    environment = make_environment(options={"batch_size": "1", "analysis": analysis(app_port)})
    assert deploy_and_wait(environment, "main", deployer, celery_worker).status == DeployStatus.SUCCEEDED
    plan = plan_page(deployer_client, "app", "test", "feature/shout")
    assert "the first batch (1 host) is judged in Prometheus &#x27;main&#x27;" in plan and "adds up to 9 s" in plan
    assert "the canary gets what its clients send it (about 33% if they spread requests evenly)" in plan

    with traffic(ssh_hosts, app_port):
        deploy = deploy_and_wait(environment, "feature/shout", deployer, celery_worker)

    assert deploy.status == DeployStatus.SUCCEEDED, deploy_story(celery_worker)
    assert [h.status for h in deploy.hosts.all()] == [HostStatus.LIVE] * 3
    verdicts = list(Measurement.objects.filter(deploy=deploy).values_list("verdict", flat=True))
    assert verdicts == [Measurement.Verdict.PASS] * 3


def test_every_batch_is_judged_against_the_hosts_still_on_the_old_release(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    ssh_hosts: list[SshdHost],
    app_port: int,
    prometheus: str,
) -> None:
    """every_batch: batch 2 is judged against batch 3's host; batch 3, with no host left on the old release,
    by its absolute condition only."""
    absolute = {"name": "errors", "query": ERROR_RATIO, "condition": "canary < 0.5", "interval": 2, "count": 1}
    relative = json.loads(analysis(app_port))["metrics"][0]
    spec = analysis(app_port, every_batch=True, metrics=[relative, absolute])
    environment = make_environment(options={"batch_size": "1", "analysis": spec})
    assert deploy_and_wait(environment, "main", deployer, celery_worker).status == DeployStatus.SUCCEEDED

    with traffic(ssh_hosts, app_port):
        deploy = deploy_and_wait(environment, "feature/shout", deployer, celery_worker)

    story = deploy_story(celery_worker)
    assert deploy.status == DeployStatus.SUCCEEDED, story
    rows = list(Measurement.objects.filter(deploy=deploy).order_by("pk").values_list("metric", "number", "verdict"))
    assert [(m, n) for m, n, _ in rows if m == "error_rate"] == [("error_rate", n) for n in range(1, 7)], rows
    assert [(m, n) for m, n, _ in rows if m == "errors"] == [("errors", 1), ("errors", 2), ("errors", 3)], rows
    assert {v for _, _, v in rows} == {Measurement.Verdict.PASS}
    phases = list(
        DeployPhase.objects.filter(deploy=deploy, kind=DeployPhase.Kind.ANALYSIS).values_list("label", flat=True)
    )
    assert len(phases) == 3 and all(": pass, " in label for label in phases), phases


def test_a_slower_release_fails_on_response_time_and_goes_back(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    ssh_hosts: list[SshdHost],
    app_port: int,
    prometheus: str,
    app_repo: AppRepo,
) -> None:
    """Every request 150 ms slower: the error rate is as good as before, the mean response time is not."""
    if not setup.git(app_repo.path, "branch", "--list", "slow-canary").strip():
        setup.repo_branch(app_repo.path, "slow-canary", {"SLOW_MS": "150\n"}, "Answer 150 ms later")
    mean = (
        f'sum(rate(demo_request_seconds_sum{{instance=~"{{{{hosts}}}}"}}{WINDOW})) / '
        f'sum(rate(demo_request_seconds_count{{instance=~"{{{{hosts}}}}"}}{WINDOW}))'
    )
    metric = {
        "name": "response_time",
        "query": mean,
        "condition": "canary <= baseline * 2 + 0.02",
        "sample": REQUESTS,
        "min_sample": 10,
        "interval": 2,
        "count": 3,
    }
    environment = make_environment(options={"batch_size": "1", "analysis": analysis(app_port, metrics=[metric])})
    assert deploy_and_wait(environment, "main", deployer, celery_worker).status == DeployStatus.SUCCEEDED

    with traffic(ssh_hosts, app_port):
        deploy = deploy_and_wait(environment, "slow-canary", deployer, celery_worker)

    story = deploy_story(celery_worker)
    assert deploy.status == DeployStatus.ROLLED_BACK, story
    assert "response_time failed" in deploy.reason, deploy.reason
    failed = Measurement.objects.get(deploy=deploy, verdict=Measurement.Verdict.FAIL)
    assert failed.canary is not None and failed.canary >= 0.15 and failed.baseline is not None
    assert failed.baseline < 0.05, story
    analysis_phase = DeployPhase.objects.get(deploy=deploy, kind=DeployPhase.Kind.ANALYSIS)
    assert analysis_phase.ended_at is not None and ": fail, " in analysis_phase.label


def test_no_traffic_is_inconclusive_never_a_pass(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    app_port: int,
    prometheus: str,
) -> None:
    spec = analysis(app_port, on_inconclusive="continue")
    environment = make_environment(options={"batch_size": "1", "analysis": spec})
    assert deploy_and_wait(environment, "main", deployer, celery_worker).status == DeployStatus.SUCCEEDED

    deploy = deploy_and_wait(environment, "feature/shout", deployer, celery_worker)  # nobody sends requests

    assert deploy.status == DeployStatus.SUCCEEDED, deploy_story(celery_worker)
    assert "the canary analysis was inconclusive" in deploy.reason and "went on on health checks alone" in deploy.reason
    first = Measurement.objects.filter(deploy=deploy).first()
    assert first is not None and first.verdict == Measurement.Verdict.INCONCLUSIVE
    assert "below min_sample" in first.said or "no canary value" in first.said, first.said


def test_bake_waits_for_traffic_then_judges_instead_of_counting_inconclusives(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    deployer_client: Client,
    ssh_hosts: list[SshdHost],
    app_port: int,
    prometheus: str,
) -> None:
    """A quiet service: nobody sends requests when the canary goes live; users arrive a little later."""
    spec = analysis(app_port, bake=2, bake_max=60, on_inconclusive="continue")
    environment = make_environment(options={"batch_size": "1", "analysis": spec})
    assert deploy_and_wait(environment, "main", deployer, celery_worker).status == DeployStatus.SUCCEEDED
    plan = plan_page(deployer_client, "app", "test", "feature/shout")
    assert "adds up to 66 s (bake waits up to 60 s for each metric&#x27;s min_sample)" in plan

    deploy = deploy_request(environment=environment, ref="feature/shout", user=deployer)
    waiting = DeployLog.objects.filter(deploy=deploy, message__startswith="bake: waiting for traffic on the canary")
    wait_until(waiting.exists, timeout=60)
    with traffic(ssh_hosts, app_port):
        deploy = wait_for_deploy(deploy.pk, celery_worker, timeout=90)

    assert deploy.status == DeployStatus.SUCCEEDED, deploy_story(celery_worker)
    verdicts = list(Measurement.objects.filter(deploy=deploy).values_list("verdict", flat=True))
    assert verdicts == [Measurement.Verdict.PASS] * 3, deploy_story(celery_worker)
    assert "inconclusive" not in deploy.reason


def test_prometheus_down_is_inconclusive_and_production_pauses_for_a_person(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, app_port: int
) -> None:
    spec = analysis(app_port, bake=0, on_inconclusive="pause")
    environment = make_environment(options={"batch_size": "1", "analysis": spec})
    first = deploy_and_wait(environment, "main", deployer, celery_worker)  # (the first release: not judged)
    assert first.status == DeployStatus.SUCCEEDED and not first.measurements.exists()

    # Nothing listens on the Prometheus port (no fixture started one).
    deploy = deploy_request(environment=environment, ref="feature/shout", user=deployer)
    wait_until(lambda: Deploy.objects.get(pk=deploy.pk).paused_at is not None, timeout=60)
    paused = Deploy.objects.get(pk=deploy.pk)
    assert "canary analysis" in paused.pause_reason and "did not answer" in paused.pause_reason, paused.pause_reason
    Deploy.objects.filter(pk=deploy.pk).update(decision="abort")
    wait_until(lambda: Deploy.objects.get(pk=deploy.pk).status == DeployStatus.ROLLED_BACK, timeout=60)


def test_the_slack_story_and_the_page_say_what_the_canary_measured(db: None, deployer_client: Client) -> None:
    from django.utils import timezone

    from deployer.catalog.load import catalog_apply, catalog_parse
    from deployer.models import Environment
    from deployer.notify.story import story
    from tests.support.catalogs import SMALL_CATALOG

    catalog_apply(catalog_parse(SMALL_CATALOG))
    deploy = Deploy.objects.create(environment=Environment.objects.get(name="test"), ref="main", sha="a" * 40)
    common = {
        "deploy": deploy,
        "canary_query": "q",
        "condition": "canary <= baseline * 2",
        "measured_at": timezone.now(),
    }
    Measurement.objects.create(
        metric="error_rate", number=1, baseline_query="q", canary=0.001, baseline=0.001, verdict="pass", **common
    )
    Measurement.objects.create(
        metric="error_rate", number=2, baseline_query="q", canary=0.048, baseline=0.001, verdict="fail", **common
    )
    Measurement.objects.create(metric="latency", number=1, canary=None, verdict="inconclusive", dry_run=True, **common)

    _, blocks = story(deploy)

    fields = [field["text"] for field in blocks[0]["fields"]]
    assert (
        "*Canary analysis*\nerror_rate 0.048 vs baseline 0.001: fail\nlatency no data: inconclusive (dry run)" in fields
    )
    page = deployer_client.get(reverse("deploy", args=[deploy.pk])).content.decode()
    found = re.search(r'<script id="canary-charts" type="application/json">(.*?)</script>', page)
    assert found is not None
    charts = json.loads(found.group(1))
    assert charts["error_rate"] == {"labels": ["#1", "#2"], "canary": [0.001, 0.048], "baseline": [0.001, 0.001]}
    assert charts["latency"]["canary"] == [None], "no data is a gap, never a zero"


def test_the_built_in_error_rate_from_haproxys_exporter_rolls_a_bad_canary_back(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    ssh_hosts: list[SshdHost],
    app_port: int,
    prometheus_port: int,
    tmp_path: Path,
    bad_branch: str,
) -> None:
    """Nothing instrumented: the canary is told apart by its server name in HAProxy's own metrics."""
    with (
        haproxy_running(tmp_path, [host.address for host in ssh_hosts], app_port) as proxy,
        prometheus_running(tmp_path / "prometheus", prometheus_port, [proxy.exporter]),
    ):
        builtin = {"builtin": "error_rate", "interval": 2, "count": 3, "min_sample": 10}
        spec = {"prometheus": "main", "bake": 3, "window": "8s", "metrics": [builtin]}
        balancer = f"{{runtime_api: {proxy.socket}, backend: app}}"
        options = {"batch_size": "1", "load_balancer": balancer, "analysis": json.dumps(spec)}
        environment = make_environment(options=options)
        assert deploy_and_wait(environment, "main", deployer, celery_worker).status == DeployStatus.SUCCEEDED
        wait_until(lambda: all_up(proxy), timeout=10)

        with Load([f"{proxy.url}/"], per_url=3, pause=0.02):
            deploy = deploy_and_wait(environment, bad_branch, deployer, celery_worker)
        weights = {state.weight for state in haproxy.servers(proxy.socket, proxy.backend).values()}

    story = deploy_story(celery_worker)
    assert deploy.status == DeployStatus.ROLLED_BACK, story
    failed = Measurement.objects.filter(deploy=deploy, verdict=Measurement.Verdict.FAIL).first()
    assert failed is not None and failed.metric == "error_rate", story
    assert 'server=~"127\\\\.0\\\\.0\\\\.11"' in failed.canary_query and 'proxy="app"' in failed.canary_query
    assert failed.canary is not None and failed.canary > 0.1 and failed.baseline == 0.0, story
    assert "the canary gets about 10% of the requests (HAProxy weight 22, the others 100)" in story
    assert weights == {1}, "every weight as configured again"


def test_a_finished_analysis_is_judged_again_by_todays_catalog(db: None, deployer_client: Client) -> None:
    from django.utils import timezone

    from deployer.catalog.load import catalog_apply, catalog_parse
    from deployer.models import Environment
    from tests.support.catalogs import SMALL_CATALOG

    catalog_apply(catalog_parse(SMALL_CATALOG))
    environment = Environment.objects.get(name="test")
    deploy = Deploy.objects.create(environment=environment, ref="main", sha="a" * 40, status=DeployStatus.ROLLED_BACK)
    for number, canary in enumerate([0.012, 0.018], start=1):
        Measurement.objects.create(
            deploy=deploy,
            metric="error_rate",
            number=number,
            canary_query="q",
            baseline_query="q",
            canary=canary,
            baseline=0.01,
            canary_sample=500,
            baseline_sample=900,
            condition="canary <= baseline * 1.5",
            verdict="pass" if canary < 0.015 else "fail",
            measured_at=timezone.now(),
        )
    query = 'sum(rate(x{instance=~"{{hosts}}"}[1m]))'
    looser = {"name": "error_rate", "query": query, "condition": "canary <= baseline * 2", "sample": query}
    environment.analysis = {"prometheus": "main", "metrics": [{**looser, "min_sample": 100}]}
    environment.save(update_fields=["analysis"])

    page = deployer_client.get(reverse("deploy", args=[deploy.pk])).content.decode()
    assert "data-rejudge" in page
    rejudged = deployer_client.get(reverse("deploy", args=[deploy.pk]), {"rejudge": "1"}).content.decode()

    assert 'data-rejudged="pass"' in rejudged, "with today's looser threshold both measurements pass"
    assert "0.018 vs baseline 0.01: canary &lt;= baseline * 2" in rejudged
    environment.analysis["metrics"][0]["min_sample"] = 1000  # today's minimum is above what was measured
    environment.save(update_fields=["analysis"])
    stricter = deployer_client.get(reverse("deploy", args=[deploy.pk]), {"rejudge": "1"}).content.decode()
    assert 'data-rejudged="inconclusive"' in stricter and "below min_sample 1000" in stricter
    assert Measurement.objects.filter(deploy=deploy, verdict="fail").count() == 1, "nothing stored changed"
