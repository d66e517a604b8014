"""Permissions, approvals, locks, checklists, emergency deploys and the audit log, through the HTTP endpoints."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from deployer.catalog.load import CatalogError, catalog_apply, catalog_parse
from deployer.choices import AuditAction, DeployStatus, Role
from deployer.deploys.actions import deploy_cancel
from deployer.deploys.lease_queue import leases_advance
from deployer.deploys.request import deploy_continuous
from deployer.environments.access import access_for, system_user
from deployer.environments.leases import LeaseHeld
from deployer.errors import Locked
from deployer.models import AuditEntry, Branch, Deploy, Environment, Grant

pytestmark = pytest.mark.django_db

CATALOG = """
teams:
  web:
    access:
      prod_deployers: [olga]
services:
  app:
    team: web
    repo: /srv/git/app.git
    access:
      approvers: [pat]
    environments:
      test:
        deploy_path: /srv/app
        hosts: [{address: 10.0.0.1}]
      prod:
        deploy_path: /srv/app
        require_approval: true
        require_green_build: false
        checklist: ["Release notes written", "On-call knows"]
        hosts: [{address: 10.0.0.2}]
access:
  deployers: ["@engineers"]
"""
TICKED = {"checklist-prod": ["Release notes written", "On-call knows"]}


@pytest.fixture
def app() -> dict[str, Environment]:
    catalog_apply(catalog_parse(CATALOG))
    envs = {e.name: e for e in Environment.objects.select_related("service").filter(service__name="app")}
    Branch.objects.create(service=envs["test"].service, name="main", sha="a" * 40)
    return envs


def person(name: str, *, group: str = "", admin: bool = False) -> Client:
    model = get_user_model()
    user = (model.objects.create_superuser if admin else model.objects.create_user)(name, f"{name}@example.com", "pw")
    if group:
        user.groups.add(Group.objects.get_or_create(name=group)[0])
    client = Client()
    client.force_login(user)
    return client


def deploy_url(environment: str) -> str:
    return reverse("deploy-create", args=["app", environment])


def press_deploy(client: Client, environment: str, **extra: object) -> int:
    data = {"ref": "main", **(TICKED if environment == "prod" else {}), **extra}
    return client.post(deploy_url(environment), data).status_code


def clear(environment: Environment) -> None:
    """Cancel whatever holds the environment, so the next request is judged on permissions alone."""
    admin = get_user_model().objects.filter(is_superuser=True).first() or get_user_model().objects.create_superuser(
        "root", "root@example.com", "pw"
    )
    for deploy in Deploy.objects.active().filter(environment=environment):
        deploy_cancel(deploy=deploy, user=admin)


def test_the_permission_matrix_through_http(app: dict[str, Environment]) -> None:
    people = {
        "viewer": person("vic"),
        "deployer": person("dana", group="engineers"),
        "prod deployer": person("olga"),
        "approver": person("pat"),
    }
    expected = {
        ("viewer", "test"): 403,
        ("viewer", "prod"): 403,
        ("deployer", "test"): 302,
        ("deployer", "prod"): 403,
        ("prod deployer", "test"): 302,
        ("prod deployer", "prod"): 302,
        ("approver", "test"): 403,
        ("approver", "prod"): 403,
    }
    seen = {}
    for (who, environment), _ in expected.items():
        seen[(who, environment)] = press_deploy(people[who], environment)
        clear(app[environment])
    assert seen == expected

    refused = people["deployer"].post(deploy_url("prod"), {"ref": "main", **TICKED})
    assert "dana may not deploy to app/prod: that needs a prod_deployer grant for service app or team web" in (
        refused.content.decode()
    )
    page = people["viewer"].get(reverse("service", args=["app"])).content.decode()
    assert "vic may not deploy to app/test" in page, "the page says why the buttons are off"


def test_a_prod_deploy_waits_for_a_second_person_to_approve_it(app: dict[str, Environment]) -> None:
    olga, pat, dana = person("olga"), person("pat"), person("dana", group="engineers")
    assert press_deploy(olga, "prod") == 302
    deploy = Deploy.objects.get(environment=app["prod"])
    assert deploy.status == DeployStatus.AWAITING_APPROVAL
    assert deploy.enqueued_at is None, "nothing goes to a worker before approval"
    assert press_deploy(olga, "prod") == 409, "a deploy awaiting approval holds the environment"

    approve = reverse("deploy-approve", args=[deploy.pk])
    own = olga.post(approve)
    assert own.status_code == 403 and "a second person must approve it" in own.content.decode()
    assert dana.post(approve).status_code == 403
    page = pat.get(reverse("deploy", args=[deploy.pk])).content.decode()
    assert "Waits for approval" in page and ">Approve</button>" in page
    assert pat.post(approve).status_code == 302

    deploy.refresh_from_db()
    assert deploy.status == DeployStatus.QUEUED
    assert deploy.approved_by.username == "pat" and deploy.enqueued_at is not None
    assert pat.post(approve).status_code == 400, "approving twice says it is not awaiting approval"
    actions = list(AuditEntry.objects.filter(deploy_id=deploy.pk).order_by("pk").values_list("actor_name", "action"))
    assert actions == [("olga", AuditAction.DEPLOY_REQUESTED), ("pat", AuditAction.APPROVED)]


def test_a_rejected_deploy_is_cancelled_with_the_reason(app: dict[str, Environment]) -> None:
    olga, pat = person("olga"), person("pat")
    press_deploy(olga, "prod")
    deploy = Deploy.objects.get(environment=app["prod"])
    assert pat.post(reverse("deploy-reject", args=[deploy.pk]), {"reason": "not during the sale"}).status_code == 302
    deploy.refresh_from_db()
    assert deploy.status == DeployStatus.CANCELLED
    assert deploy.reason == "rejected by pat: not during the sale"
    assert AuditEntry.objects.filter(action=AuditAction.REJECTED, actor_name="pat").exists()


def test_the_checklist_must_be_ticked_and_is_stored_with_the_deploy(app: dict[str, Environment]) -> None:
    olga = person("olga")
    response = olga.post(deploy_url("prod"), {"ref": "main", "checklist-prod": ["On-call knows"]})
    assert response.status_code == 400
    assert "not ticked: Release notes written" in response.content.decode()
    assert not Deploy.objects.exists()
    assert press_deploy(olga, "prod") == 302
    assert Deploy.objects.get().checklist == ["Release notes written", "On-call knows"]


def test_a_lock_blocks_deploys_shows_everywhere_and_an_admin_may_deploy_through_it(
    app: dict[str, Environment],
) -> None:
    dana, vic, admin = person("dana", group="engineers"), person("vic"), person("root", admin=True)
    lock_url = reverse("environment-lock", args=["app", "test"])
    assert vic.post(lock_url, {"reason": "I am curious"}).status_code == 403
    assert dana.post(lock_url, {"reason": ""}).status_code == 400
    assert dana.post(lock_url, {"reason": "DB migration running", "hours": "4"}).status_code == 302

    refused = dana.post(deploy_url("test"), {"ref": "main"})
    assert refused.status_code == 423
    assert "app/test is locked by dana" in refused.content.decode()
    assert "DB migration running" in refused.content.decode()
    matrix = vic.get(reverse("services")).content.decode()
    assert "data-locked" in matrix and "DB migration running" in matrix
    service_page = vic.get(reverse("service", args=["app"])).content.decode()
    assert "locked by dana" in service_page

    as_admin = admin.post(deploy_url("test"), {"ref": "main"})
    assert as_admin.status_code == 423 and "As an admin you may deploy anyway" in as_admin.content.decode()
    assert admin.post(deploy_url("test"), {"ref": "main", "override-test": "yes"}).status_code == 302
    deploy = Deploy.objects.get()
    assert deploy.lock_overridden.startswith("locked by dana")
    assert AuditEntry.objects.filter(action=AuditAction.LOCK_OVERRIDDEN, actor_name="root").exists()
    clear(app["test"])

    assert dana.post(reverse("environment-unlock", args=["app", "test"])).status_code == 302
    assert press_deploy(dana, "test") == 302
    actions = list(AuditEntry.objects.filter(environment="test").order_by("pk").values_list("actor_name", "action"))
    assert ("dana", AuditAction.LOCKED) in actions and ("dana", AuditAction.UNLOCKED) in actions


def test_a_lock_ends_by_itself_at_its_expiry(app: dict[str, Environment]) -> None:
    dana = person("dana", group="engineers")
    dana.post(reverse("environment-lock", args=["app", "test"]), {"reason": "lunch", "hours": "1"})
    Environment.objects.filter(pk=app["test"].pk).update(lock_expires_at=timezone.now() - timedelta(seconds=1))
    assert press_deploy(dana, "test") == 302


def test_continuous_delivery_waits_while_the_environment_is_locked(app: dict[str, Environment]) -> None:
    Grant.objects.create(principal="dana", role=Role.DEPLOYER)
    dana = get_user_model().objects.create_user("dana")
    from deployer.environments.locks import environment_lock

    environment_lock(app["test"], user=dana, reason="hands off")
    with pytest.raises(Locked):
        deploy_continuous(environment=app["test"], branch=Branch.objects.get(name="main"))


def test_an_emergency_deploy_needs_an_admin_and_a_reason_and_skips_the_lock_and_approval(
    app: dict[str, Environment],
) -> None:
    olga, admin = person("olga"), person("root", admin=True)
    from deployer.environments.locks import environment_lock

    environment_lock(app["prod"], user=None, reason="deploy #0 was rolled back")
    assert olga.post(deploy_url("prod"), {"ref": "main", "emergency_reason": "site is down"}).status_code == 403
    short = admin.post(deploy_url("prod"), {"ref": "main", "emergency_reason": "now"})
    assert short.status_code == 400 and "at least 10 characters" in short.content.decode()
    assert admin.post(
        deploy_url("prod"), {"ref": "main", "emergency_reason": "checkout is down, hotfix"}
    ).status_code == (302)
    deploy = Deploy.objects.get()
    assert deploy.status == DeployStatus.QUEUED, "no approval for an emergency"
    assert deploy.emergency_reason == "checkout is down, hotfix"
    assert "Emergency deploy" in admin.get(reverse("deploy", args=[deploy.pk])).content.decode()
    assert "emergency" in admin.get(reverse("history")).content.decode()
    entry = AuditEntry.objects.get(action=AuditAction.EMERGENCY_DEPLOY)
    assert entry.actor_name == "root" and "checkout is down" in entry.detail


def test_the_audit_log_cannot_be_changed_or_deleted(app: dict[str, Environment]) -> None:
    admin = person("root", admin=True)
    press_deploy(admin, "test")
    entry = AuditEntry.objects.get()
    entry.detail = "nothing happened"
    with pytest.raises(PermissionError):
        entry.save()
    with pytest.raises(PermissionError):
        entry.delete()
    with pytest.raises(PermissionError):
        AuditEntry.objects.all().update(detail="x")
    with pytest.raises(PermissionError):
        AuditEntry.objects.all().delete()
    change = reverse("admin:deployer_auditentry_change", args=[entry.pk])
    assert admin.post(change, {"detail": "x", "actor_name": "x", "action": "locked"}).status_code == 403
    assert admin.post(reverse("admin:deployer_auditentry_delete", args=[entry.pk]), {"post": "yes"}).status_code == 403
    assert AuditEntry.objects.get().detail.startswith("main")


def test_catalog_grants_are_replaced_on_each_load_and_bad_names_are_refused(app: dict[str, Environment]) -> None:
    Grant.objects.create(principal="ops", role=Role.PROD_DEPLOYER)  # made in the admin: stays
    assert set(Grant.objects.values_list("principal", "role")) == {
        ("olga", "prod_deployer"),
        ("pat", "approver"),
        ("@engineers", "deployer"),
        ("ops", "prod_deployer"),
    }
    catalog_apply(catalog_parse(CATALOG.replace("prod_deployers: [olga]", "prod_deployers: [sam]")))
    assert set(Grant.objects.filter(role="prod_deployer").values_list("principal", flat=True)) == {"sam", "ops"}
    with pytest.raises(CatalogError) as error:
        catalog_parse(CATALOG.replace("[olga]", "[olga smith]"))
    assert "must be a username" in str(error.value)
    assert str(error.value).startswith("catalog.yml:5: teams.web.access.prod_deployers[0]")


def test_gantry_itself_is_not_a_person_anyone_can_become(db: None) -> None:
    impostor = get_user_model().objects.create_user("gantry", password="secret")
    assert not access_for(impostor).is_system
    impostor.set_unusable_password()  # as for an account that signs in through SSO
    impostor.save()
    assert not access_for(impostor).is_system, "the name does not make the system, the flag does"

    system = system_user()
    assert (system.get_username(), system.is_active, system.has_usable_password()) == ("gantry-2", False, False)
    assert access_for(system).is_system and system_user().pk == system.pk


def test_a_username_spelled_like_a_group_is_refused_and_matches_no_group_grant(app: dict[str, Environment]) -> None:
    from django.contrib.auth.forms import UserCreationForm

    form = UserCreationForm(
        {"username": "@engineers", "password1": "a-long-pass-phrase", "password2": "a-long-pass-phrase"}
    )
    assert not form.is_valid()
    assert "a username may not start with @" in str(form.errors["username"])

    sneaky = get_user_model().objects.create_user("@engineers")  # written around the forms, straight to the table
    assert not access_for(sneaky).can_deploy(app["test"]), "the @engineers group's grant is not theirs"


def test_cancel_needs_the_requester_or_a_deployer(app: dict[str, Environment], deployer: AbstractBaseUser) -> None:
    olga, vic = person("olga"), person("vic")
    press_deploy(olga, "test")
    deploy = Deploy.objects.get()
    assert vic.post(reverse("deploy-cancel", args=[deploy.pk])).status_code == 302
    deploy.refresh_from_db()
    assert deploy.status == DeployStatus.QUEUED, "a viewer cannot cancel"
    assert olga.post(reverse("deploy-cancel", args=[deploy.pk])).status_code == 302
    deploy.refresh_from_db()
    assert deploy.status == DeployStatus.CANCELLED


def test_an_admin_marks_a_stuck_deploy_failed_with_a_reason_which_frees_the_environment(
    app: dict[str, Environment],
) -> None:
    dana, admin = person("dana", group="engineers"), person("root", admin=True)
    press_deploy(dana, "test")
    deploy = Deploy.objects.get()
    url = reverse("deploy-mark-failed", args=[deploy.pk])
    assert dana.post(url, {"reason": "stuck"}).status_code == 403
    assert admin.post(url, {"reason": ""}).status_code == 400
    assert "Mark failed and free test" in admin.get(reverse("deploy", args=[deploy.pk])).content.decode()
    assert admin.post(url, {"reason": "worker host was rebuilt"}).status_code == 302
    deploy.refresh_from_db()
    assert deploy.status == DeployStatus.FAILED
    assert deploy.reason == "marked failed by root: worker host was rebuilt"
    assert AuditEntry.objects.filter(action=AuditAction.MARKED_FAILED, actor_name="root").exists()
    assert press_deploy(dana, "test") == 302, "the environment is free"


def test_a_shared_test_environment_is_leased_to_whoever_deploys_and_others_take_over_or_queue(
    app: dict[str, Environment],
) -> None:
    Environment.objects.filter(pk=app["test"].pk).update(lease_minutes=60)
    dana, olga, eve = (person(n, group="engineers") for n in ("dana", "olga2", "eve"))
    assert press_deploy(dana, "test") == 302
    clear(app["test"])
    page = olga.get(reverse("service", args=["app"])).content.decode()
    assert "leased by dana for main until" in page
    assert "data-leased" in olga.get(reverse("services")).content.decode()

    refused = olga.post(deploy_url("test"), {"ref": "main"})
    assert refused.status_code == 409
    assert "app/test is leased by dana for main" in refused.content.decode()
    assert 'value="take_over"' in refused.content.decode() and 'value="queue"' in refused.content.decode()

    assert olga.post(deploy_url("test"), {"ref": "main", "lease": "queue"}).status_code == 302
    assert not Deploy.objects.active().exists(), "queued behind the lease: nothing runs yet"
    assert leases_advance() == [], "the lease still runs"

    assert eve.post(deploy_url("test"), {"ref": "main", "lease": "take_over"}).status_code == 302
    env = Environment.objects.get(pk=app["test"].pk)
    assert env.leased_by.username == "eve"
    taken = AuditEntry.objects.get(action=AuditAction.LEASE_TAKEN_OVER)
    assert taken.actor_name == "eve" and "was leased by dana" in taken.detail
    clear(app["test"])

    # The lease ends by itself; the queued request then becomes olga's deploy, and her lease.
    Environment.objects.filter(pk=env.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    (started,) = leases_advance()
    deploy = Deploy.objects.get(pk=started)
    assert deploy.requested_by.username == "olga2" and deploy.status == DeployStatus.QUEUED
    assert Environment.objects.get(pk=env.pk).leased_by.username == "olga2"
    assert leases_advance() == []


def test_the_lease_holder_releases_early_and_continuous_delivery_waits_for_a_lease(
    app: dict[str, Environment],
) -> None:
    Environment.objects.filter(pk=app["test"].pk).update(lease_minutes=60)
    dana, vic = person("dana", group="engineers"), person("vic")
    press_deploy(dana, "test")
    clear(app["test"])
    with pytest.raises(LeaseHeld):
        deploy_continuous(environment=Environment.objects.get(pk=app["test"].pk), branch=Branch.objects.get())
    release = reverse("lease-release", args=["app", "test"])
    assert vic.post(release).status_code == 400, "only the holder or an admin"
    assert dana.post(release).status_code == 302
    assert not Environment.objects.get(pk=app["test"].pk).is_leased
    assert AuditEntry.objects.filter(action=AuditAction.LEASE_RELEASED, actor_name="dana").exists()
