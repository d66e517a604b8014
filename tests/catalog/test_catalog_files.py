"""A catalog split into files: `include:` globs next to the root file, one file per team or service, read as
one catalog; each problem at its own file and line; nothing leaves the catalog's directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from deployer.catalog.catalog_files import MAX_PATTERNS, glob_match
from deployer.catalog.load import CatalogError, catalog_read
from deployer.models import Environment, Service

pytestmark = pytest.mark.one_backend  # the database backend makes no difference here

ROOT = """\
include:
  - teams/*.yml
  - services/**/*.yml
defaults:
  releases_to_keep: 4
"""
WEB_TEAM = """\
teams:
  web:
    defaults:
      restart_command: sudo systemctl restart app
"""
APP = """\
services:
  app:
    team: web
    repo: /srv/git/app.git
    environments:
      test:
        deploy_path: /srv/app
        hosts: [{address: 10.0.0.1}]
"""


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root / "catalog.yml"


def problems_of(path: Path) -> list[str]:
    with pytest.raises(CatalogError) as caught:
        catalog_read(path)
    return [p.render(str(path)) for p in caught.value.problems]


def test_included_files_are_one_catalog_with_defaults_across_files(tmp_path: Path, db: None) -> None:
    catalog = write(
        tmp_path,
        {"catalog.yml": ROOT, "teams/web.yml": WEB_TEAM, "services/web/app.yml": APP, "services/README.md": "x"},
    )

    call_command("load_catalog", str(catalog))

    environment = Environment.objects.get(service__name="app", name="test")
    assert environment.releases_to_keep == 4, "the root's defaults reach a service in another file"
    assert environment.restart_command == "sudo systemctl restart app", "so do its team's, from a third file"
    assert Service.objects.get().team.name == "web"


def test_a_problem_is_at_its_own_file_and_line(tmp_path: Path) -> None:
    catalog = write(
        tmp_path,
        {
            "catalog.yml": ROOT,
            "teams/web.yml": WEB_TEAM,
            "services/app.yml": APP.replace("deploy_path", "deploy_pth"),
        },
    )

    missing, typo = problems_of(catalog)

    assert missing.startswith(f"{tmp_path}/services/app.yml:6: services.app.environments.test: missing required")
    assert typo.startswith(f"{tmp_path}/services/app.yml:7: services.app.environments.test.deploy_pth: unknown key")
    assert typo.endswith("did you mean 'deploy_path'?")


def test_a_name_declared_in_two_files_is_refused_not_overridden(tmp_path: Path) -> None:
    catalog = write(
        tmp_path,
        {"catalog.yml": ROOT, "teams/web.yml": WEB_TEAM, "services/a.yml": APP, "services/b.yml": APP},
    )

    (problem,) = problems_of(catalog)

    assert problem == (
        f"{tmp_path}/services/b.yml:2: services.app: also declared in {tmp_path}/services/a.yml:2; "
        "declare it in one file only"
    )


def test_an_included_file_holds_only_teams_and_services(tmp_path: Path) -> None:
    catalog = write(
        tmp_path,
        {"catalog.yml": ROOT, "teams/web.yml": WEB_TEAM + "access:\n  deployers: [ada]\n", "services/a.yml": APP},
    )

    (problem,) = problems_of(catalog)

    assert problem.startswith(f"{tmp_path}/teams/web.yml:5: access: an included file holds only teams: and services:")


@pytest.mark.parametrize(
    ("pattern", "said"),
    [
        ("../secrets/*.yml", "leaves the catalog's directory"),
        ("/etc/*.yml", "leaves the catalog's directory"),
        ("nowhere/*.yml", "matches no file"),
    ],
)
def test_an_include_that_leaves_the_directory_or_matches_nothing_is_refused(
    tmp_path: Path, pattern: str, said: str
) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "x.yml").write_text(APP)
    catalog = write(tmp_path / "catalog", {"catalog.yml": f"include: [{pattern!r}]\n", "a.yml": APP})

    (problem,) = problems_of(catalog)

    assert problem.startswith(f"{catalog}:1: include[0]: ") and said in problem


def test_a_broken_included_file_names_itself_and_nothing_loads(tmp_path: Path, db: None) -> None:
    catalog = write(tmp_path, {"catalog.yml": ROOT, "teams/web.yml": "teams:\n\tweb: {}\n", "services/a.yml": APP})

    with pytest.raises(CommandError) as caught:
        call_command("load_catalog", "--check", str(catalog))

    assert f"{tmp_path}/teams/web.yml:2:" in str(caught.value) and "spaces, not tabs" in str(caught.value)
    assert not Service.objects.exists()


def test_a_catalog_with_no_services_is_refused(tmp_path: Path) -> None:
    catalog = write(tmp_path, {"catalog.yml": "include: [teams/*.yml]\n", "teams/web.yml": WEB_TEAM})

    assert problems_of(catalog) == [
        f"{catalog}: the catalog declares no services; add services: (or include: files with them)"
    ]


def test_globs_stay_within_a_directory_unless_asked() -> None:
    assert glob_match("services/*.yml", "services/app.yml")
    assert not glob_match("services/*.yml", "services/web/app.yml")
    assert glob_match("services/**/*.yml", "services/web/app.yml")
    assert glob_match("services/**/*.yml", "services/app.yml")
    assert not glob_match("services/*.yml", "services/app.yml.bak")
    # A name built to make a regex backtrack is one segment to fnmatch: this returns at once.
    assert not glob_match("**/" * 10 + "*a*a*a*a*a*a*a*a*b", "a/" * 25 + "a" * 60)


def test_a_link_out_of_the_catalogs_directory_is_refused_without_reading_it(tmp_path: Path) -> None:
    (tmp_path / "secret.yml").write_text("db_password: hunter2\ndb_password: hunter3\n")
    catalog = write(tmp_path / "catalog", {"catalog.yml": "include: [teams/*.yml]\n", "services.yml": APP})
    (tmp_path / "catalog" / "teams").mkdir()
    (tmp_path / "catalog" / "teams" / "web.yml").symlink_to(tmp_path / "secret.yml")

    (problem,) = problems_of(catalog)

    assert "teams/web.yml: not a file in the catalog's directory" in problem and "hunter" not in problem


def test_too_many_globs_or_wildcards_are_refused(tmp_path: Path) -> None:
    catalog = write(tmp_path, {"catalog.yml": f"include: {['a*.yml'] * (MAX_PATTERNS + 1)}\n", "a.yml": APP})
    assert problems_of(catalog) == [f"{catalog}:1: include: at most {MAX_PATTERNS} globs; use fewer"]

    write(tmp_path, {"catalog.yml": "include: ['" + "*" * 40 + "x']\n"})
    (problem,) = problems_of(catalog)
    assert "at most 10 wildcards in an include" in problem
