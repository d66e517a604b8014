"""Freeze windows: one-off and recurring (cron in a time zone), checked when a deploy is asked for and again
when it starts, overridden by an admin with a reason, shown wherever locks are. The clock is frozen with
time-machine, except in the one test where a real worker starts a deploy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.http import HttpResponse
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from knox.models import AuthToken

from deployer.catalog.load import CatalogError, catalog_apply, catalog_parse
from deployer.choices import AuditAction, DeployStatus
from deployer.delivery.continuous import continuous_delivery
from deployer.deploys.actions import deploy_approve
from deployer.deploys.request import deploy_request
from deployer.deploys.rules import NO_OPTIONS, DeployOptions
from deployer.errors import Frozen
from deployer.lib import generations
from deployer.models import AuditEntry, Branch, Build, Deploy, Environment
from deployer.notify.story import story
from tests.support.catalogs import MakeEnvironment
from tests.support.pages import plan_page
from tests.support.waiting import wait_for_deploy
from tests.support.worker import Worker

BERLIN = ZoneInfo("Europe/Berlin")

CATALOG = """
teams:
  web:
    defaults:
      freeze:
        - {reason: payments launch, from: 2026-12-10 08:00, until: 2026-12-10 20:00, timezone: Europe/Berlin,
           environments: [prod]}
services:
  app:
    team: web
    repo: /srv/git/app.git
    environments:
      test:
        deploy_path: /srv/app
        follow: main
        freeze:
          - {reason: nightly batch, cron: "0 22 * * *", duration: 4h, timezone: Europe/Berlin}
        hosts: [{address: 10.0.0.1}]
      prod:
        deploy_path: /srv/app
        require_green_build: false
        freeze:
          - {reason: year-end close, from: "2026-12-30T00:00:00+01:00", until: "2027-01-02T00:00:00+01:00"}
        hosts: [{address: 10.0.0.2}]
access:
  deployers: ["@engineers"]
  prod_deployers: ["@engineers"]
"""


class Person:
    """A user who signs in afresh at every moment the clock is sent to (sessions expire across days)."""

    def __init__(self, name: str, *, admin: bool = False) -> None:
        model = get_user_model()
        make = model.objects.create_superuser if admin else model.objects.create_user
        self.user: AbstractBaseUser = make(name, f"{name}@example.com", "pw")
        self.user.groups.add(Group.objects.get_or_create(name="engineers")[0])

    @property
    def client(self) -> Client:
        client = Client()
        client.force_login(self.user)
        return client

    def post(self, url: str, data: dict[str, str]) -> HttpResponse:
        return self.client.post(url, data)  # type: ignore[return-value]

    def get(self, url: str) -> HttpResponse:
        return self.client.get(url)  # type: ignore[return-value]


@pytest.fixture
def app(db: None) -> dict[str, Environment]:
    catalog_apply(catalog_parse(CATALOG))
    envs = {e.name: e for e in Environment.objects.select_related("service").filter(service__name="app")}
    Branch.objects.create(service=envs["test"].service, name="main", sha="a" * 40)
    return envs


def berlin(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=BERLIN)


def deploy_url(environment: str) -> str:
    return reverse("deploy-create", args=["app", environment])


def test_team_windows_add_to_an_environments_own_and_narrow_to_the_environments_named(
    app: dict[str, Environment],
) -> None:
    assert [w["reason"] for w in app["test"].freeze] == ["nightly batch"]
    assert [w["reason"] for w in app["prod"].freeze] == ["year-end close", "payments launch"]
    assert app["prod"].freeze[1] == {
        "reason": "payments launch",
        "from": "2026-12-10T08:00:00",
        "until": "2026-12-10T20:00:00",
        "timezone": "Europe/Berlin",
    }


@pytest.mark.parametrize(
    ("window", "said"),
    [
        ('{reason: nightly, cron: "0 22 * * *"}', "a recurring freeze needs both cron"),
        ('{reason: nightly, cron: "0 25 * * *", duration: 4h}', "is not a cron expression of five fields"),
        ('{reason: nightly, cron: "0 22 * * *", duration: 4 hours}', "write it like 30m, 4h or 1d 12h"),
        ('{reason: nightly, cron: "0 22 * * *", duration: 40d}', "from 1 minute to 31 days"),
        ('{reason: nightly, cron: "0 22 * * *", duration: 4h, timezone: Berlin}', "did you mean Europe/Berlin?"),
        ("{reason: launch, from: 2026-12-24 00:00, until: 2026-12-20 00:00}", "until must come after from"),
        ("{reason: launch, from: 2026-12-24 00:00}", "needs both from and until"),
        (
            '{reason: both, from: 2026-12-24 00:00, until: 2026-12-25 00:00, cron: "0 1 * * *", duration: 1h}',
            "not both",
        ),
        ("{reason: when}", "say when"),
        ('{reason: never, cron: "0 0 31 2 *", duration: 1h}', "never fires (is there such a day?)"),
        ('{reason: random, cron: "R R * * *", duration: 1h}', "of numbers, ranges, steps and lists"),
        ('{reason: nth, cron: "0 0 15 * 0#5", duration: 1h}', "of numbers, ranges, steps and lists"),
        ("{reason: far, from: 2026-12-24 00:00, until: 9999-12-31 23:59}", "between the years 2000 and 2100"),
        ('{reason: here, cron: "0 1 * * *", duration: 1h, timezone: localtime}', "is not an IANA time zone"),
        ('{reason: long, cron: "0 1 * * *", duration: "1d' + " " * 5000 + 'x"}', "at most 20 characters"),
    ],
)
def test_a_bad_window_is_refused_at_its_line_saying_how_to_write_it(window: str, said: str) -> None:
    text = CATALOG.replace('{reason: nightly batch, cron: "0 22 * * *", duration: 4h, timezone: Europe/Berlin}', window)
    with pytest.raises(CatalogError) as caught:
        catalog_parse(text)
    assert "catalog.yml:17: services.app.environments.test.freeze[0]" in str(caught.value)
    assert said in str(caught.value)


def test_a_nightly_window_refuses_deploys_in_it_and_those_that_would_run_into_it(app: dict[str, Environment]) -> None:
    dana = Person("dana")
    with time_machine.travel(berlin(7, 23, 30), tick=False):
        refused = dana.post(deploy_url("test"), {"ref": "main"})
        assert refused.status_code == 423
        text = refused.content.decode()
        said = (
            "frozen for nightly batch (0 22 * * * for 4h, Europe/Berlin) from 2026-12-07 22:00 until 2026-12-08 02:00"
        )
        assert said in text
        assert "deploy after 2026-12-08 02:00 Europe/Berlin" in text
    with time_machine.travel(berlin(8, 1, 59), tick=False):  # still in last night's window
        assert dana.post(deploy_url("test"), {"ref": "main"}).status_code == 423
    with time_machine.travel(berlin(8, 21, 55), tick=False):  # a deploy with no history counts as 10 min
        refused = dana.post(deploy_url("test"), {"ref": "main"})
        assert refused.status_code == 423
        assert "a freeze starts in 5 min" in refused.content.decode()
        assert "It would be half done when the window opens" in refused.content.decode()
    assert not Deploy.objects.exists()
    with time_machine.travel(berlin(8, 2, 0), tick=False):
        assert dana.post(deploy_url("test"), {"ref": "main"}).status_code == 302
    assert Deploy.objects.get().status == DeployStatus.QUEUED


def test_a_window_across_the_autumn_clock_change_lasts_its_hours(app: dict[str, Environment]) -> None:
    """02:30 Berlin for 1 h on 2026-10-25, the night 03:00 CEST becomes 02:00 CET: 00:30 to 01:30 UTC."""
    Environment.objects.filter(pk=app["test"].pk).update(
        freeze=[{"reason": "dst", "cron": "30 2 25 10 *", "duration": "1h", "timezone": "Europe/Berlin"}]
    )
    dana = Person("dana")
    with time_machine.travel(datetime(2026, 10, 25, 1, 10, tzinfo=UTC), tick=False):
        assert dana.post(deploy_url("test"), {"ref": "main"}).status_code == 423
    with time_machine.travel(datetime(2026, 10, 25, 1, 31, tzinfo=UTC), tick=False):
        assert dana.post(deploy_url("test"), {"ref": "main"}).status_code == 302


def test_a_window_that_cannot_be_read_holds_and_says_what_to_fix(app: dict[str, Environment]) -> None:
    """A row edited by hand (or from an older release): the pages still answer, and deploys are refused."""
    Environment.objects.filter(pk=app["test"].pk).update(freeze=[{"reason": "typo", "cron": "0 0 31 2 *"}])
    generations.bump(generations.SERVICES)  # (the catalog's apply does it)
    dana = Person("dana")
    refused = dana.post(deploy_url("test"), {"ref": "main"})
    assert refused.status_code == 423
    assert "a window that cannot be read (typo: KeyError); fix it in the catalog" in refused.content.decode()
    assert "data-frozen" in dana.get(reverse("services")).content.decode()
    assert dana.get(reverse("service", args=["app"])).status_code == 200


def test_a_token_cannot_deploy_in_a_window(app: dict[str, Environment]) -> None:
    """Going through a freeze takes a person signed in: a CI token's request is refused, whoever owns it."""
    root = Person("root", admin=True)
    token = AuthToken.objects.create(user=root.user)[1]
    client = Client(headers={"Authorization": f"Token {token}"})
    with time_machine.travel(berlin(10, 12), tick=False):
        body = {"service": "app", "environment": "prod", "ref": "main", "freeze_override": "the fix must go out now"}
        answer = client.post("/api/v1/deploys/", body, content_type="application/json")
    assert answer.status_code == 403 and "not a token" in answer.json()["error"]
    assert not Deploy.objects.exists()


def test_the_estimate_comes_from_the_environments_history(app: dict[str, Environment]) -> None:
    """Deploys here take 30 min (p90): at 21:40 one would still be running at 22:00; at 21:25 it would not."""
    dana = Person("dana").user
    for sha in "bcd":
        start = berlin(1, 12)
        Deploy.objects.create(
            environment=app["test"],
            ref="main",
            sha=sha * 40,
            status=DeployStatus.SUCCEEDED,
            started_at=start,
            finished_at=start + timedelta(minutes=30),
        )
    with time_machine.travel(berlin(8, 21, 40), tick=False), pytest.raises(Frozen) as caught:
        deploy_request(environment=app["test"], ref="main", user=dana)
    assert "a deploy here takes about 30 min, and a freeze starts in 20 min" in str(caught.value)
    with time_machine.travel(berlin(8, 21, 25), tick=False):
        assert deploy_request(environment=app["test"], ref="main", user=dana).status == DeployStatus.QUEUED


def test_an_admin_deploys_in_a_window_with_a_reason_recorded_audited_and_told(app: dict[str, Environment]) -> None:
    root = Person("root", admin=True)
    with time_machine.travel(berlin(10, 12), tick=False):  # the team's launch freeze, on prod only
        refused = root.post(deploy_url("prod"), {"ref": "main", "freeze-prod": "hotfix"})
        assert refused.status_code == 423 and "Say why in at least 10 characters" in refused.content.decode()
        assert root.post(deploy_url("test"), {"ref": "main"}).status_code == 302, "test has no launch freeze"
        Deploy.objects.all().delete()
        reason = "checkout is down without this fix"
        assert root.post(deploy_url("prod"), {"ref": "main", "freeze-prod": reason}).status_code == 302
    deploy = Deploy.objects.get()
    assert deploy.freeze_overridden.startswith("frozen for payments launch (Europe/Berlin) from 2026-12-10 08:00")
    assert deploy.freeze_overridden.endswith(f"; {reason}")
    entry = AuditEntry.objects.get(action=AuditAction.FREEZE_OVERRIDDEN)
    assert entry.actor_name == "root" and reason in entry.detail
    told = str(story(deploy))
    assert "In a freeze window" in told and reason in told
    with time_machine.travel(berlin(10, 12), tick=False):
        page = root.get(reverse("deploy", args=[deploy.pk])).content.decode()
    assert "data-freeze-overridden" in page and reason in page
    assert "app/prod is frozen for payments launch" in page, "shown where the lock is"


def test_emergency_deploys_go_through_and_a_person_without_admin_cannot_override(
    app: dict[str, Environment],
) -> None:
    dana, admin = Person("dana"), Person("root", admin=True).user
    with time_machine.travel(berlin(31, 9), tick=False):  # year-end close, written with an offset
        refused = dana.post(deploy_url("prod"), {"ref": "main", "freeze-prod": "I really want to deploy now"})
        assert refused.status_code == 423 and "frozen for year-end close" in refused.content.decode()
        deploy = deploy_request(
            environment=app["prod"],
            ref="main",
            user=admin,
            options=DeployOptions(emergency_reason="payments are failing for everyone"),
        )
    assert deploy.status == DeployStatus.QUEUED and not deploy.freeze_overridden


def test_pages_and_the_api_show_the_open_window_and_the_next(app: dict[str, Environment]) -> None:
    dana = Person("dana")
    with time_machine.travel(berlin(7, 23), tick=False):
        matrix = dana.get(reverse("services")).content.decode()
        assert "data-frozen" in matrix and "nightly batch" in matrix
        service = dana.get(reverse("service", args=["app"])).content.decode()
        assert "data-frozen" in service and "data-frozen>frozen</span> nightly batch (0 22 * * * for 4h" in service
        assert "next freeze" in service and "payments launch" in service  # prod, in three days
        [listed] = [s for s in dana.get("/api/v1/services/").json()["results"] if s["name"] == "app"]
        environments = listed["environments"]
        frozen = {e["name"]: e["frozen"] for e in environments}
        assert frozen["test"].startswith("frozen for nightly batch") and frozen["prod"] == ""
    with time_machine.travel(berlin(8, 12), tick=False):
        matrix = dana.get(reverse("services")).content.decode()
        assert "data-frozen" not in matrix


def test_continuous_delivery_waits_for_the_window_to_end(app: dict[str, Environment]) -> None:
    service = app["test"].service
    Build.objects.create(service=service, job="app", number=1, sha="a" * 40, branch="main", result="success")
    with time_machine.travel(berlin(7, 23), tick=False):
        assert continuous_delivery(service=service) == []
    with time_machine.travel(berlin(8, 2, 1), tick=False):
        [deploy] = continuous_delivery(service=service)
    assert deploy.sha == "a" * 40


@pytest.mark.slow
def test_a_deploy_approved_after_a_window_opened_is_not_started_by_the_worker(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer_client: Client,
    deployer: AbstractBaseUser,
) -> None:
    environment = make_environment(options={"require_approval": "true"})
    deploy = deploy_request(environment=environment, ref="main", user=deployer, options=NO_OPTIONS)
    assert deploy.status == DeployStatus.AWAITING_APPROVAL
    # The catalog gains a window that is open now (the row catalog_apply writes), after the request.
    now = timezone.now()
    window = {
        "reason": "database move",
        "from": (now - timedelta(minutes=5)).isoformat(),
        "until": (now + timedelta(hours=2)).isoformat(),
    }
    Environment.objects.filter(pk=environment.pk).update(freeze=[window])
    plan = plan_page(deployer_client, "app", "test", "main")
    assert "frozen for database move" in plan
    approver = get_user_model().objects.create_superuser("pat", "pat@example.com", "pw")
    deploy_approve(deploy=deploy, user=approver)

    deploy = wait_for_deploy(deploy.pk, celery_worker)

    assert deploy.status == DeployStatus.CANCELLED
    assert deploy.reason.startswith("not started: app/test is frozen for database move")
    assert not any((Path(host.path) / "releases").exists() for host in environment.hosts.all())
