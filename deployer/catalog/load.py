"""catalog.yml ⇄ models: read and validate a catalog file, then apply it idempotently.

Every problem is reported with its line in the file and a hint on how to fix
it; a file with any problem changes nothing.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import transaction
from pydantic import BaseModel, ValidationError
from ruamel.yaml.comments import CommentedMap

from deployer import queue
from deployer.apitests.schema import AssertionSpec, StepSpec, SuiteSpec
from deployer.catalog.analysis_spec import UNION_TAGS
from deployer.catalog.catalog_files import (
    CATALOG_MAX_BYTES,
    CatalogError,
    CatalogFiles,
    DirectoryFiles,
    OneText,
    gathered,
    located,
)
from deployer.catalog.ci_spec import GithubActionsSpec
from deployer.catalog.defaults import defaults_applied, has_defaults
from deployer.catalog.problems import Loc, Problem, cross_problems, effective, environment_is_production, where
from deployer.catalog.schema import (
    AccessSpec,
    CatalogSpec,
    DefaultsSpec,
    EnvironmentSpec,
    HostSpec,
    RoleSpec,
    ServiceSpec,
    TeamSpec,
)
from deployer.choices import Role
from deployer.lib import generations
from deployer.lib.yaml_lines import line_of, plain, unknown_key_hint
from deployer.models import Environment, Grant, Host, Service, Team

__all__ = ["CATALOG_MAX_BYTES", "ApplyReport", "CatalogError", "catalog_apply", "catalog_diff", "catalog_from"]


@dataclass
class ApplyReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    not_in_file: list[str] = field(default_factory=list)


def catalog_json_schema() -> str:
    """The catalog's JSON Schema, made from the schema the loader validates with (docs/catalog.schema.json
    holds it for editors: `manage.py catalog_schema` writes it, a test keeps it current). The loader's own
    rules across fields (catalog/problems.py) are not in it: an editor catches typos and types, the loader
    the rest."""
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **CatalogSpec.model_json_schema(),
        "title": "Gantry catalog",
        "description": "Services, environments and hosts Gantry deploys (load with manage.py load_catalog).",
    }
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def catalog_read(path: Path) -> CatalogSpec:
    """Parse and validate a catalog file and the files it includes; raise CatalogError listing every problem."""
    real = path.resolve()  # (a catalog.yml that is a link: its files are next to what it points at)
    return catalog_from(DirectoryFiles(real.parent), str(path) if real.name == path.name else str(real))


def catalog_parse(text: str, *, filename: str = "catalog.yml") -> CatalogSpec:
    """A catalog given as one text (it can include nothing)."""
    return catalog_from(OneText(filename, text), filename)


def catalog_from(files: CatalogFiles, root_name: str) -> CatalogSpec:
    """The catalog whose root file is `root_name` among `files`, validated whole; CatalogError with every
    problem, each at its own file and line."""
    data, origins = gathered(root_name, files)
    raw = plain(data)
    try:
        spec = CatalogSpec.model_validate(raw)  # as written: a problem, a default's too, at its own line
        if has_defaults(raw):
            spec = CatalogSpec.model_validate(defaults_applied(raw))  # each environment with what it gets
    except ValidationError as exc:
        raise CatalogError(root_name, located([_problem(data, err) for err in exc.errors()], origins)) from exc
    problems = located(cross_problems(data, spec), origins)
    if not spec.services and not problems:
        problems = [Problem(None, "", "the catalog declares no services; add services: (or include: files with them)")]
    if problems:
        raise CatalogError(root_name, problems)
    return spec


def _problem(root: CommentedMap, err: Any) -> Problem:
    loc: Loc = tuple(part for part in err["loc"] if part not in UNION_TAGS)
    kind = err["type"]
    if kind == "extra_forbidden" and len(loc) >= 2 and loc[-2] == "defaults" and loc[-1] in {"deploy_path", "hosts"}:
        message = f"{loc[-1]} belongs to each environment, not to defaults (they hold what environments share)"
    elif kind == "extra_forbidden":
        message = f"unknown key {loc[-1]!r}; {unknown_key_hint(_spec_at(loc[:-1]), loc[-1])}"
    elif kind == "missing":
        message = f"missing required key {loc[-1]!r}; add {loc[-1]}: <{_describe(loc)}>"
        loc = loc[:-1]
    elif kind == "literal_error" and loc and loc[-1] == "[key]":  # a mapping whose keys are a fixed set
        allowed = list(err["ctx"]["expected"].replace("'", "").replace(" or ", ", ").split(", "))
        close = difflib.get_close_matches(str(err["input"]), allowed, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"allowed keys here: {', '.join(allowed)}"
        message = f"unknown key {err['input']!r}; {hint}"
        loc = loc[:-2] if len(loc) > 2 else loc  # the mapping that holds it
    elif kind in _TYPE_HINTS:
        message = _TYPE_HINTS[kind]
    else:
        message = err["msg"].removeprefix("Value error, ")
        if "input" in err and not isinstance(err["input"], dict | list) and repr(err["input"]) not in message:
            message = f"{message} (got {err['input']!r})"
    return Problem(line_of(root, loc), where(loc), message)


# Plain words for pydantic's type errors.
_TYPE_HINTS = {
    "dict_type": "must be a mapping of names to settings (name: {...}), not a list or a value",
    "list_type": "must be a list (one '- ' item per line)",
    "model_type": "must be a mapping of settings (key: value)",
}


# The schema model of the mapping at a location: locations alternate between a
# fixed key and a name or index (services.<name>.environments.<name>.hosts[<i>]).
_MODEL_AT: dict[tuple[str | int, ...], type[BaseModel]] = {
    (): CatalogSpec,
    ("teams",): TeamSpec,
    ("services",): ServiceSpec,
    ("services", "environments"): EnvironmentSpec,
    ("services", "environments", "hosts"): HostSpec,
    ("services", "roles"): RoleSpec,
    ("services", "environments", "roles"): RoleSpec,
    ("services", "api_tests"): SuiteSpec,
    ("services", "api_tests", "steps"): StepSpec,
    ("services", "api_tests", "steps", "assert"): AssertionSpec,
}


def _spec_at(loc: Loc) -> type[BaseModel] | None:
    if loc in {("defaults",), *((("teams", loc[1], "defaults"),) if len(loc) == 3 else ())}:
        return DefaultsSpec
    return _MODEL_AT.get(loc[0::2]) if len(loc) % 2 == 0 else None


def _describe(loc: Loc) -> str:
    model = _spec_at(loc[:-1])
    info = model.model_fields.get(str(loc[-1])) if model else None
    return (info.description if info and info.description else "value") or "value"


@transaction.atomic
def catalog_apply(spec: CatalogSpec) -> ApplyReport:
    """Create or update everything the spec declares. Hosts follow the file;
    services and environments missing from it are kept (they have history) and reported."""
    report = ApplyReport()
    teams = {
        name: _upsert(
            report,
            Team,
            {"name": name},
            {
                "slack_channel": (team or TeamSpec()).slack_channel or "",
                "slack_group": (team or TeamSpec()).slack_group or "",
            },
        )
        for name, team in spec.teams.items()
    }
    for name, service_spec in spec.services.items():
        service = _upsert(
            report,
            Service,
            {"name": name},
            {
                "team": teams.get(service_spec.team) if service_spec.team else None,
                "repo_url": service_spec.repo or f"{settings.GITHUB_WEB_URL}/{service_spec.github}.git",
                "github_repo": service_spec.github or "",
                "default_branch": service_spec.default_branch,
                "jenkins_job": service_spec.jenkins_job,
                "ci": service_spec.ci,
                "github_actions": (service_spec.github_actions or GithubActionsSpec()).model_dump(),
                "runbook_url": service_spec.runbook or "",
                "slo": service_spec.slo.model_dump(exclude_none=True) if service_spec.slo else {},
                "api_tests": {
                    name: suite.model_dump(by_alias=True, exclude_unset=True)
                    for name, suite in service_spec.api_tests.items()
                },
                "migrations": service_spec.migrations,
            },
        )
        _apply_environments(report, service, service_spec)
    for service in Service.objects.exclude(name__in=list(spec.services)):
        report.not_in_file.append(f"service {service.name}")
    _apply_grants(report, spec, teams)
    generations.bump(generations.SERVICES)
    return report


class _DryRun(Exception):
    """Rolls back a catalog_apply whose changes were only to be listed."""


def catalog_diff(spec: CatalogSpec) -> ApplyReport:
    """What catalog_apply(spec) would change, nothing written: it runs in a transaction that is rolled back,
    so the same code decides the diff and the load (no second implementation to drift); the work a load
    queues (hosts that joined or left) is dropped with it."""
    made: list[ApplyReport] = []
    try:
        with transaction.atomic():
            made.append(catalog_apply(spec))
            raise _DryRun
    except _DryRun:
        pass
    return made[0]


def _apply_grants(report: ApplyReport, spec: CatalogSpec, teams: dict[str, Team]) -> None:
    """The catalog's grants replace the ones the last load made (grants made in the admin stay)."""
    wanted: set[tuple[str, str, int | None, int | None]] = set()
    scopes: list[tuple[AccessSpec | None, int | None, int | None]] = [(spec.access, None, None)]
    scopes += [
        (team_spec.access if team_spec else None, teams[name].pk, None) for name, team_spec in spec.teams.items()
    ]
    services = dict(Service.objects.filter(name__in=list(spec.services)).values_list("name", "pk"))
    scopes += [(service_spec.access, None, services[name]) for name, service_spec in spec.services.items()]
    for access, team_id, service_id in scopes:
        if access is None:
            continue
        for role, principals in (
            (Role.DEPLOYER, access.deployers),
            (Role.PROD_DEPLOYER, access.prod_deployers),
            (Role.APPROVER, access.approvers),
        ):
            wanted |= {(principal, role.value, team_id, service_id) for principal in principals}
    existing = set(Grant.objects.filter(from_catalog=True).values_list("principal", "role", "team_id", "service_id"))
    if existing == wanted:
        return
    Grant.objects.filter(from_catalog=True).delete()
    Grant.objects.bulk_create(
        Grant(principal=p, role=r, team_id=t, service_id=s, from_catalog=True) for p, r, t, s in sorted(wanted, key=str)
    )
    report.updated.append(
        f"access: {len(wanted)} grant(s) ({len(wanted - existing)} new, {len(existing - wanted)} gone)"
    )


def _apply_environments(report: ApplyReport, service: Service, spec: ServiceSpec) -> None:
    for position, (name, env_spec) in enumerate(spec.environments.items()):
        environment = _upsert(
            report,
            Environment,
            {"service": service, "name": name},
            _environment_values(position, name, effective(spec, env_spec), spec.default_branch),
        )
        keep: list[int] = []
        known = set(environment.hosts.values_list("pk", flat=True))
        for host_position, host_spec in enumerate(env_spec.hosts):
            host = _upsert(
                report,
                Host,
                {"environment": environment, "address": host_spec.address, "port": host_spec.port},
                {
                    "user": host_spec.user,
                    "deploy_path": host_spec.deploy_path or "",
                    "position": host_position,
                    "lb_server": host_spec.lb_server or "",
                    "roles": host_spec.roles or [],
                    # Its own jump hosts, else the environment's: what the rollout connects through.
                    "proxy_jump": host_spec.proxy_jump if host_spec.proxy_jump is not None else environment.proxy_jump,
                },
            )
            keep.append(host.pk)
        leaving = list(environment.hosts.exclude(pk__in=keep))
        for gone in leaving:
            report.removed.append(f"host {gone} of {environment}")
            gone.delete()
        if leaving and environment.lb_runtime_api:  # out of the load balancer at once, not at the next deploy
            queue.enqueue_after_commit(queue.HOSTS_LEFT, environment.pk)
        if set(keep) - known:  # new hosts get the release that runs there now, not at the next deploy
            queue.enqueue_after_commit(queue.HOSTS_JOINED, environment.pk)
    for env in service.environments.exclude(name__in=list(spec.environments)):
        report.not_in_file.append(f"environment {env}")


def _environment_values(position: int, name: str, spec: EnvironmentSpec, default_branch: str) -> dict[str, Any]:
    production = environment_is_production(name, spec)
    values = spec.model_dump(
        exclude={
            *("hosts", "production", "require_green_build", "follow", "follow_tags", "load_balancer", "secrets"),
            "trusted_builds",
        }
    )
    trusted = spec.trusted_builds
    values["trusted_build_jobs"] = list(trusted.jobs) if trusted else []
    values["trusted_build_branches"] = (
        list(trusted.branches) if trusted and trusted.branches else ([default_branch] if production else [])
    )
    secrets = spec.secrets.model_dump() if spec.secrets else {}
    values["secrets_file"] = secrets.get("file") or ""
    values["secrets_command"] = secrets.get("command") or []
    values["secrets_shared_with_production"] = secrets.get("shared_with_production", [])
    values["release_host"] = spec.release_host or ""
    values["health_check"] = spec.health_check or ""
    values["roles"] = [{"name": role, **keys} for role, keys in values["roles"].items()]
    builder = values.pop("builder") or {}
    values["build_mode"] = values.pop("build")
    values["builder_address"] = builder.get("address", "")
    values["builder_port"] = builder.get("port", 22)
    values["builder_user"] = builder.get("user", "")
    values["builder_path"] = builder.get("path", "")
    values["builder_isolation"] = builder.get("isolation", "sandbox")
    values["build_cache"] = values.pop("build_cache") or {}
    values["migration_check"] = values.pop("migration_check") or {}
    values["analysis"] = values.pop("analysis") or {}
    values["freeze"] = [
        window.model_dump(mode="json", by_alias=True, exclude={"environments"}, exclude_none=True)
        for window in spec.freeze
        if window.environments is None or name in window.environments
    ]
    values["proxy_jump"] = spec.proxy_jump or []
    values["webhooks"] = [hook.model_dump(mode="json", exclude_none=True) for hook in spec.webhooks]
    values["base_url"] = spec.base_url or ""
    values["host_base_url"] = spec.host_base_url or ""
    values["api_test_repo_secrets"] = (
        spec.api_test_repo_secrets if spec.api_test_repo_secrets is not None else not production
    )
    balancer = spec.load_balancer
    return {
        **values,
        "lb_runtime_api": balancer.runtime_api if balancer else "",
        "lb_backend": balancer.backend if balancer else "",
        "lb_drain_timeout": balancer.drain_timeout if balancer else 30,
        "position": position,
        "production": production,
        "require_green_build": spec.require_green_build if spec.require_green_build is not None else production,
        "follow_branch": spec.follow or "",
        "follow_tags": spec.follow_tags or "",
    }


def _change(key: str, before: object, after: object) -> str:
    """One changed field as a person reads it in a diff: its values when they are short, else its name."""
    if isinstance(before, dict | list) or isinstance(after, dict | list):
        return f"{key} changed"
    old, new = repr(before), repr(after)
    return f"{key}: {old} → {new}" if len(old) + len(new) <= 120 else f"{key} changed"


def _upsert(report: ApplyReport, model: Any, lookup: dict[str, Any], values: dict[str, Any]) -> Any:
    obj = model.objects.filter(**lookup).first()
    label = f"{model._meta.verbose_name} {' '.join(str(v) for v in lookup.values())}"
    if obj is None:
        obj = model.objects.create(**lookup, **values)
        report.created.append(label)
        return obj
    changed = [k for k, v in values.items() if getattr(obj, k) != v]
    if changed:
        said = [_change(key, getattr(obj, key), values[key]) for key in changed]
        for key in changed:
            setattr(obj, key, values[key])
        obj.save(update_fields=changed)
        report.updated.append(f"{label} ({'; '.join(said)})")
    return obj
