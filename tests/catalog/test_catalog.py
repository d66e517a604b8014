"""catalog.yml: loaded idempotently; an invalid file names the line and the fix, and changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from deployer.catalog.load import CatalogError, catalog_apply, catalog_parse
from deployer.models import Environment, Host, Service

pytestmark = pytest.mark.one_backend  # the database backend makes no difference here

VALID = """\
teams:
  payments: {}
services:
  billing:
    team: payments
    repo: git@github.com:acme/billing.git
    default_branch: main
    jenkins_job: billing
    runbook: https://wiki.example.com/billing
    environments:
      test:
        deploy_path: /srv/billing
        build_command: make build
        restart_command: sudo systemctl restart billing
        health_check_url: http://{address}:8080/healthz
        releases_to_keep: 3
        hosts:
          - address: test1.internal
          - address: 10.0.0.7
            port: 2222
            user: deployer
      prod:
        deploy_path: /srv/billing
        hosts:
          - {address: prod1.internal}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        catalog_parse(text, filename="catalog.yml")
    return [p.render("catalog.yml") for p in caught.value.problems]


def test_a_valid_catalog_creates_everything(db: None) -> None:
    report = catalog_apply(catalog_parse(VALID))

    service = Service.objects.get(name="billing")
    assert service.team.name == "payments"
    assert service.repo_url == "git@github.com:acme/billing.git"
    assert [e.name for e in service.environments.order_by("position")] == ["test", "prod"]
    test = service.environments.get(name="test")
    assert test.health_check_url == "http://{address}:8080/healthz"
    assert [(h.address, h.port, h.user) for h in test.hosts.all()] == [
        ("test1.internal", 22, "deploy"),
        ("10.0.0.7", 2222, "deployer"),
    ]
    assert "service billing" in report.created


def test_loading_twice_changes_nothing_and_edits_update_in_place(db: None) -> None:
    catalog_apply(catalog_parse(VALID))
    ids = sorted(Host.objects.values_list("pk", flat=True))

    again = catalog_apply(catalog_parse(VALID))
    assert (again.created, again.updated, again.removed) == ([], [], [])
    assert sorted(Host.objects.values_list("pk", flat=True)) == ids

    edited = catalog_apply(catalog_parse(VALID.replace("releases_to_keep: 3", "releases_to_keep: 4")))
    assert edited.updated == ["environment billing test (releases_to_keep: 3 → 4)"]
    assert Environment.objects.get(name="test").releases_to_keep == 4


def test_hosts_follow_the_file_and_missing_services_are_kept_and_reported(db: None) -> None:
    catalog_apply(catalog_parse(VALID))
    Service.objects.create(name="legacy", repo_url="/srv/git/legacy")

    report = catalog_apply(catalog_parse(VALID.replace("          - address: test1.internal\n", "")))

    assert report.removed == ["host deploy@test1.internal:22 of billing/test"]
    assert report.not_in_file == ["service legacy"]
    assert Service.objects.filter(name="legacy").exists()


def test_an_unknown_key_names_the_line_and_suggests_the_right_one() -> None:
    assert problems(VALID.replace("port: 2222", "prot: 2222")) == [
        "catalog.yml:20: services.billing.environments.test.hosts[1].prot: unknown key 'prot'; did you mean 'port'?"
    ]


def test_a_missing_field_names_the_line_and_what_to_add() -> None:
    text = VALID.replace(
        "        deploy_path: /srv/billing\n        hosts:\n          - {address: prod1",
        "        hosts:\n          - {address: prod1",
    )
    assert problems(text) == [
        "catalog.yml:22: services.billing.environments.prod: missing required key 'deploy_path'; "
        "add deploy_path: <absolute directory on each host, e.g. /srv/myapp>"
    ]


def test_a_duplicate_host_is_refused_on_its_line() -> None:
    text = VALID.replace("          - {address: prod1.internal}", "          - {address: prod1.internal}\n" * 2)
    assert problems(text) == [
        "catalog.yml:26: services.billing.environments.prod.hosts[1]: duplicate host prod1.internal:22; remove one"
    ]


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ("git@github.com:acme/billing.git", "not a url", "repo: is not a git URL"),
        ("https://wiki.example.com/billing", "wiki/billing", "runbook: must be an http:// or https:// URL"),
        ("http://{address}:8080/healthz", "http://{host}:8080/", "unknown placeholder(s) ['host']"),
        ("deploy_path: /srv/billing\n        build", "deploy_path: srv/billing\n        build", "absolute path"),
        ("team: payments", "team: finance", "team 'finance' is not declared; add it under teams:"),
        ("port: 2222", "port: 99999", "less than or equal to 65535"),
    ],
)
def test_bad_values_are_refused_with_a_hint(before: str, after: str, expected: str) -> None:
    found = problems(VALID.replace(before, after, 1))
    assert len(found) == 1 and expected in found[0], found
    assert found[0].startswith("catalog.yml:")


def test_broken_yaml_names_the_line() -> None:
    found = problems(
        VALID.replace("        hosts:\n          - address: test1", "        hosts\n          - address: test1")
    )
    assert found[0].startswith("catalog.yml:1") and "indentation" in found[0]


def test_duplicate_keys_are_refused() -> None:
    found = problems(VALID.replace("    jenkins_job: billing\n", "    jenkins_job: billing\n    jenkins_job: x\n"))
    assert "jenkins_job" in found[0] and found[0].startswith("catalog.yml:")


def test_the_command_refuses_an_invalid_file_and_changes_nothing(db: None, tmp_path: Path) -> None:
    path = tmp_path / "catalog.yml"
    path.write_text(VALID.replace("port: 2222", "prot: 2222").replace("billing", "ledger"))

    with pytest.raises(CommandError, match=r"catalog.yml is invalid \(1 problem\), nothing changed") as caught:
        call_command("load_catalog", str(path))

    assert "did you mean 'port'?" in str(caught.value)
    assert not Service.objects.exists()


def test_the_command_loads_a_valid_file(db: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "catalog.yml"
    path.write_text(VALID)

    call_command("load_catalog", str(path))
    call_command("load_catalog", str(path))

    assert "catalog already up to date" in capsys.readouterr().out
    assert Host.objects.count() == 3


def test_problems_are_listed_in_the_files_order() -> None:
    text = """
services:
  app:
    repo: /srv/git/app
    migration_check: {recipe: django}
    environments:
      test:
        deploy_path: /srv/app
        config: {A: "{{secret.NOPE}}"}
        hosts: [{address: 10.0.0.1}]
"""
    with pytest.raises(CatalogError) as caught:
        catalog_parse(text)
    lines = [problem.line or 0 for problem in caught.value.problems]
    assert lines == sorted(lines) and len(lines) == 3, caught.value.problems


def test_check_validates_without_writing_and_fails_with_the_problems(
    db: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "catalog.yml"
    path.write_text(VALID)
    call_command("load_catalog", "--check", str(path))
    assert "catalog.yml is valid: 1 service(s)" in capsys.readouterr().out
    assert not Service.objects.exists()

    path.write_text(VALID.replace("port: 2222", "prot: 2222"))
    with pytest.raises(CommandError, match="did you mean 'port'"):
        call_command("load_catalog", "--check", str(path))


def test_diff_lists_what_a_load_would_change_and_writes_nothing(
    db: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "catalog.yml"
    path.write_text(VALID)
    call_command("load_catalog", str(path))
    capsys.readouterr()
    path.write_text(
        VALID.replace("releases_to_keep: 3", "releases_to_keep: 4").replace("          - address: test1.internal\n", "")
    )

    call_command("load_catalog", "--diff", str(path))

    said = capsys.readouterr().out
    assert "would update: environment billing test (releases_to_keep: 3 → 4)" in said
    assert "would remove: host " in said and "test1.internal" in said
    assert "nothing was written" in said
    assert Environment.objects.get(name="test").releases_to_keep == 3
    assert Host.objects.filter(address="test1.internal").exists()


DEFAULTS = """
defaults:
  restart_command: sh bin/restart 8080
  releases_to_keep: 3
  build_command: make
teams:
  web:
    defaults:
      releases_to_keep: 4
services:
  app:
    team: web
    repo: /srv/git/app.git
    build_command: make app
    environments:
      test: {deploy_path: /srv/app, hosts: [{address: 10.0.0.1}]}
      prod: {deploy_path: /srv/app, releases_to_keep: 7, hosts: [{address: 10.0.0.2}]}
  other:
    repo: /srv/git/other.git
    environments:
      test: {deploy_path: /srv/other, hosts: [{address: 10.0.0.3}]}
"""


def test_defaults_fill_what_an_environment_and_its_service_leave_out(db: None) -> None:
    spec = catalog_parse(DEFAULTS)
    app, other = spec.services["app"], spec.services["other"]
    assert app.environments["test"].restart_command == "sh bin/restart 8080", "from the catalog's defaults"
    assert app.environments["test"].releases_to_keep == 4, "the team's defaults come first"
    assert app.environments["prod"].releases_to_keep == 7, "the environment's own value wins"
    assert other.environments["test"].releases_to_keep == 3
    catalog_apply(spec)
    assert Environment.objects.get(service__name="app", name="test").build_command == "make app", "the service's"
    assert Environment.objects.get(service__name="other").build_command == "make"


@pytest.mark.parametrize(
    "change,said",
    [
        (("releases_to_keep: 3", "releases_to_keep: 1"), "catalog.yml:4: defaults.releases_to_keep: Input should be"),
        (("  releases_to_keep: 3", "  releses_to_keep: 3"), "did you mean 'releases_to_keep'?"),
        (("  build_command: make\n", "  build_command: make\n  hosts: []\n"), "hosts belongs to each environment"),
        (
            ("      releases_to_keep: 4", "      releases_to_keep: x"),
            "catalog.yml:9: teams.web.defaults.releases_to_keep",
        ),
    ],
)
def test_a_bad_default_is_reported_at_its_own_line(change: tuple[str, str], said: str) -> None:
    with pytest.raises(CatalogError) as caught:
        catalog_parse(DEFAULTS.replace(*change))
    assert said in str(caught.value)
