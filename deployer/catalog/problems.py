"""Problems in a catalog file: where each is (line and key path) and the rules that span entries.

A problem says what is wrong and how to fix it; catalog/load.py refuses a file with any.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from ruamel.yaml.comments import CommentedMap

from deployer.apitests.schema import TEMPLATE_RE, names_used, secrets_named
from deployer.catalog.ci_spec import ci_problems
from deployer.catalog.schema import (
    BuilderSpec,
    CatalogSpec,
    EnvironmentSpec,
    MigrationCheckSpec,
    ReleaseSpec,
    SecretsSpec,
    ServiceSpec,
)
from deployer.choices import HOOKS_NEVER_REQUIRED
from deployer.lib.secrets import SECRET_TEMPLATE_RE
from deployer.lib.yaml_lines import line_of

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    line: int | None
    where: str
    message: str
    file: str = ""  # an included file's name; "" is the catalog's root file

    def render(self, filename: str) -> str:
        name = self.file or filename
        at = f"{name}:{self.line}" if self.line else name
        return f"{at}: {self.where + ': ' if self.where else ''}{self.message}"


def entry_of(where: str) -> tuple[str, str] | None:
    """The top-level entry a problem is about: ("services", "web") for services.web.environments..."""
    parts = re.split(r"[.\[]", where, maxsplit=2)
    return (parts[0], parts[1]) if len(parts) >= 2 and parts[0] in {"services", "teams"} else None


def where(loc: Loc) -> str:
    if loc and loc[-1] == "[key]":  # pydantic's marker for a bad mapping key: the name itself
        loc = loc[:-1]
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def cross_problems(root: CommentedMap, spec: CatalogSpec) -> Iterable[Problem]:
    """Rules that span entries: a repository, declared teams, unique hosts, no shared deploy paths,
    secrets used only where they are granted."""
    used_paths: dict[tuple[str, int, str], str] = {}
    yield from _builder_problems(root, spec)
    yield from _production_secret_problems(root, spec)
    for service_name, service in spec.services.items():
        yield from _secret_problems(root, service_name, service)
        yield from _release_problems(root, service_name, service)
        yield from _role_problems(root, service_name, service)
        yield from _hook_problems(root, service_name, service)
        yield from _analysis_problems(root, service_name, service)
        if not service.repo and not service.github:
            loc: Loc = ("services", service_name)
            yield Problem(
                line_of(root, loc), where(loc), "missing repo: add repo: <git URL or path> or github: <owner/name>"
            )
        yield from _webhook_secret_problems(root, service_name, service, spec)
        for tail, said in ci_problems(service):
            loc = ("services", service_name, *tail)
            yield Problem(line_of(root, loc), where(loc), said)
        if service.team and service.team not in spec.teams:
            loc = ("services", service_name, "team")
            declared = ", ".join(spec.teams) or "none"
            yield Problem(
                line_of(root, loc),
                where(loc),
                f"team {service.team!r} is not declared; add it under teams: (declared: {declared})",
            )
        for env_name, env in service.environments.items():
            seen: set[tuple[str, int]] = set()
            for index, host in enumerate(env.hosts):
                loc = ("services", service_name, "environments", env_name, "hosts", index)
                key = (host.address, host.port)
                if key in seen:
                    yield Problem(
                        line_of(root, loc), where(loc), f"duplicate host {host.address}:{host.port}; remove one"
                    )
                seen.add(key)
                path_key = (host.address, host.port, host.deploy_path or env.deploy_path)
                owner = f"{service_name}/{env_name}"
                if path_key in used_paths and used_paths[path_key] != owner:
                    yield Problem(
                        line_of(root, loc),
                        where(loc),
                        f"{host.address}:{host.port} already gets {used_paths[path_key]} in {path_key[2]}; "
                        "two environments must not share a deploy path on one host",
                    )
                used_paths.setdefault(path_key, owner)


def _release_problems(root: CommentedMap, service_name: str, service: ServiceSpec) -> Iterable[Problem]:
    """Config that uses a secret its environment does not grant; a release host that is not one of its hosts."""
    for env_name, env_spec in service.environments.items():
        env = effective(service, env_spec)
        at: Loc = ("services", service_name, "environments", env_name)
        config_at = at if "config" in env_spec.model_fields_set else ("services", service_name)
        for key, value in env.config.items():
            for secret in sorted(set(SECRET_TEMPLATE_RE.findall(str(value))) - set(env.config_secrets)):
                loc = (*config_at, "config", key)
                yield Problem(
                    line_of(root, loc),
                    where(loc),
                    f"uses secret.{secret}, which environment {env_name} does not grant; add {secret} to "
                    f"config_secrets of {'that environment' if config_at == at else 'the service'}",
                )
        if env.build == "builder" and env.builder is None:
            loc = (*at, "build") if "build" in env_spec.model_fields_set else ("services", service_name, "build")
            yield Problem(
                line_of(root, loc), where(loc), "build: builder needs a host to build on: add builder: {address: ...}"
            )
        if env.build_cache and (env.build != "builder" or (env.builder and env.builder.isolation == "account")):
            loc = (*at, "build_cache") if "build_cache" in env_spec.model_fields_set else ("services", service_name)
            yield Problem(
                line_of(root, loc),
                where(loc),
                "build_cache keeps dependencies between builds on a builder that sandboxes them: it needs "
                "build: builder with isolation: sandbox (hosts that build each release keep their own)",
            )
        if env.migration_check:
            loc = (
                (*at, "migration_check")
                if "migration_check" in env_spec.model_fields_set
                else ("services", service_name)
            )
            for why in _migration_check_problems(env.migration_check, env.build, env.builder):
                yield Problem(line_of(root, loc), where(loc), why)
        if env.build == "github" and service.ci != "github":
            loc = (*at, "build") if "build" in env_spec.model_fields_set else ("services", service_name, "build")
            said = "build: github ships what a GitHub Actions run uploaded: set ci: github (and github:)"
            yield Problem(line_of(root, loc), where(loc), said)
        if env.build == "jenkins" and not service.jenkins_job:
            loc = (*at, "build") if "build" in env_spec.model_fields_set else ("services", service_name, "build")
            yield Problem(
                line_of(root, loc), where(loc), "build: jenkins ships what the Jenkins build archived: set jenkins_job"
            )
        addresses = [host.address for host in env.hosts]
        if env.release_host and env.release_host not in addresses:
            loc = (*at, "release_host")
            yield Problem(
                line_of(root, loc),
                where(loc),
                f"{env.release_host} is not a host of {env_name}; pick one of: {', '.join(addresses)}",
            )


def _webhook_secret_problems(
    root: CommentedMap, service_name: str, service: ServiceSpec, spec: CatalogSpec
) -> Iterable[Problem]:
    """A webhook signs with its team's secrets only (GANTRY_WEBHOOK_<TEAM>_...): in a catalog whose files
    different teams own, one team's file must not make Gantry sign its events with another team's secret."""
    prefixes = {team: f"GANTRY_WEBHOOK_{team.upper().replace('-', '_')}_" for team in spec.teams}
    for env_name, env_spec in service.environments.items():
        for index, hook in enumerate(effective(service, env_spec).webhooks):
            mine = prefixes.get(service.team or "")
            if mine and hook.secret_env.startswith(mine):
                continue
            others = [p for t, p in prefixes.items() if t != service.team and hook.secret_env.startswith(p)]
            if mine is None and not others:
                continue  # a service of no team: any secret that is no team's
            loc: Loc = ("services", service_name, "environments", env_name, "webhooks", index, "secret_env")
            wanted = f"one named {mine}..." if mine else "one that is no team's"
            yield Problem(
                line_of(root, loc), where(loc), f"{hook.secret_env} is not {service_name}'s to sign with: use {wanted}"
            )


def environment_is_production(name: str, spec: EnvironmentSpec) -> bool:
    """`production:` as written, else whether the environment is named prod or production."""
    return spec.production if spec.production is not None else name in {"prod", "production"}


def _builder_problems(root: CommentedMap, spec: CatalogSpec) -> Iterable[Problem]:
    """A builder account without a sandbox (isolation: account) is only as trusted as the least trusted
    environment that builds there: it must serve environments of one trust level, all without a sandbox
    (a build that ran unsandboxed could have changed what a sandboxed build's session reads, like ~/.bashrc)."""
    users: dict[tuple[str, int, str], list[tuple[Loc, str, bool]]] = {}
    for service_name, service in spec.services.items():
        for env_name, env_spec in service.environments.items():
            env = effective(service, env_spec)
            if env.build != "builder" or env.builder is None:
                continue
            at: Loc = ("services", service_name, "environments", env_name)
            loc = (*at, "builder") if "builder" in env_spec.model_fields_set else ("services", service_name, "builder")
            account = (env.builder.address, env.builder.port, env.builder.user)
            production = environment_is_production(env_name, env_spec)
            users.setdefault(account, []).append((loc, env.builder.isolation, production))
    for (address, port, user), used in users.items():
        if all(isolation == "sandbox" for _, isolation, _ in used):
            continue
        for loc, isolation, production in used:
            others = [other for other in used if other[2] != production or other[1] != isolation]
            if not others:
                continue
            other_loc, other_isolation, other_production = others[0]
            why = (
                f"{where(other_loc)} builds there too as {'production' if other_production else 'non-production'}"
                f" with isolation: {other_isolation}"
            )
            yield Problem(
                line_of(root, loc),
                where(loc),
                f"builder account {user}@{address}:{port} without a sandbox serves one trust level, and {why}; "
                f"give {'this environment' if production else 'production'} a builder user of its own "
                "(builder: {user: ...}), or use isolation: sandbox everywhere it is used",
            )


def _production_secret_problems(root: CommentedMap, spec: CatalogSpec) -> Iterable[Problem]:
    """A non-production environment must not take a secret from where a production environment takes it
    (its hosts run any branch's commands with the config sourced), unless it lists the secret in
    secrets.shared_with_production. Where: its secrets file, its command, or the workers' shared variables."""
    takers: dict[tuple[tuple[str, str], str], list[tuple[str, str, bool, list[str]]]] = {}
    for service_name, service in spec.services.items():
        for env_name, env_spec in service.environments.items():
            env = effective(service, env_spec)
            secrets = env_spec.secrets or SecretsSpec()
            source = ("file", secrets.file) if secrets.file else ("workers", "")
            if secrets.command:
                source = ("command", "\0".join(secrets.command))
            shared = list(secrets.shared_with_production)
            is_production = environment_is_production(env_name, env_spec)
            for name in set(env.config_secrets) | set(env.api_test_secrets):
                takers.setdefault((source, name), []).append((service_name, env_name, is_production, shared))
    for (source, name), envs in takers.items():
        production = [f"{service}/{env}" for service, env, prod, _ in envs if prod]
        for service_name, env_name, prod, shared in envs:
            if prod or not production or name in shared:
                continue
            loc: Loc = ("services", service_name, "environments", env_name)
            place = f"the workers' GANTRY_SECRET_{name}" if source[0] == "workers" else f"the same secrets {source[0]}"
            yield Problem(
                line_of(root, loc),
                where(loc),
                f"takes secret {name} from {place}, as production environment {production[0]} does, so its hosts "
                "(where any branch's commands run) would get production's value; give it a source of its own: "
                f"secrets: {{file: /etc/gantry/secrets/{service_name}-{env_name}.env}} (NAME=value lines, mode "
                "0600) or secrets: {command: [sops, -d, ...]}; or, if the value is meant to be shared, say so: "
                f"secrets: {{shared_with_production: [{name}]}}",
            )


def _secret_problems(root: CommentedMap, service_name: str, service: ServiceSpec) -> Iterable[Problem]:
    """A suite or test variable naming a secret that an environment it runs in does not grant."""
    for env_name, env in service.environments.items():
        granted = set(env.api_test_secrets)
        grant_at = f"services.{service_name}.environments.{env_name}.api_test_secrets"
        variables_at: Loc = ("services", service_name, "environments", env_name, "test_variables")
        users: list[tuple[Loc, set[str]]] = [
            ((*variables_at, name), secrets_named(TEMPLATE_RE.findall(value)))
            for name, value in env.test_variables.items()
        ]
        users += [
            (("services", service_name, "api_tests", name), secrets_named(names_used(suite)))
            for name, suite in service.api_tests.items()
        ]
        for loc, used in users:
            for secret in sorted(used - granted):
                yield Problem(
                    line_of(root, loc),
                    where(loc),
                    f"uses secret.{secret}, which environment {env_name} does not grant; add {secret} to {grant_at}",
                )


def effective(service: ServiceSpec, environment: EnvironmentSpec) -> EnvironmentSpec:
    """The environment with the release-model keys it does not set taken from its service."""
    inherited = {
        key: getattr(service, key)
        for key in ReleaseSpec.model_fields
        if key not in environment.model_fields_set and key in service.model_fields_set
    }
    return environment.model_copy(update=inherited)


def _analysis_problems(root: CommentedMap, service_name: str, service: ServiceSpec) -> Iterable[Problem]:
    """The built-in metrics read HAProxy's exporter: they need the environment's load balancer backend."""
    for env_name, env_spec in service.environments.items():
        env = effective(service, env_spec)
        if env.analysis and env.analysis.builtins and not (env.load_balancer and env.load_balancer.backend):
            loc: Loc = ("services", service_name, "environments", env_name)
            at = (*loc, "analysis") if env_spec.analysis else ("services", service_name, "analysis")
            yield Problem(
                line_of(root, at),
                where(at),
                "error_rate and response_time come from HAProxy's exporter, per backend server: give "
                f"{env_name} a load_balancer: {{runtime_api: ..., backend: ...}}, or write your own PromQL metrics",
            )


# Keys that belong to a role once an environment declares roles.
ROLE_KEYS = ("restart_command", "health_check_url", "health_check_command", "health_check")


def _role_problems(root: CommentedMap, service_name: str, service: ServiceSpec) -> Iterable[Problem]:
    """Hosts name declared roles; with roles declared, restarts and health checks live in the roles."""
    for env_name, env_spec in service.environments.items():
        env = effective(service, env_spec)
        at: Loc = ("services", service_name, "environments", env_name)
        if not env.roles:
            for index, host in enumerate(env.hosts):
                if host.roles:
                    loc = (*at, "hosts", index, "roles")
                    yield Problem(
                        line_of(root, loc),
                        where(loc),
                        f"{env_name} declares no roles; declare them under roles: (e.g. roles: {{web: "
                        "{restart_command: ...}}) or remove roles: from this host",
                    )
            continue
        for key in ROLE_KEYS:
            if getattr(env, key):
                loc = (*at, key)
                yield Problem(
                    line_of(root, loc),
                    where(loc),
                    f"{env_name} has roles, so {key} belongs to a role: move it under roles.<name>.{key}",
                )
        for index, host in enumerate(env.hosts):
            for role in sorted(set(host.roles or []) - set(env.roles)):
                loc = (*at, "hosts", index, "roles")
                yield Problem(
                    line_of(root, loc),
                    where(loc),
                    f"role {role!r} is not declared; declared roles: {', '.join(env.roles)}",
                )


def _hook_problems(root: CommentedMap, service_name: str, service: ServiceSpec) -> Iterable[Problem]:
    """A hook's role is declared; `required` only where a failure can fail the deploy."""
    for env_name, env_spec in service.environments.items():
        env = effective(service, env_spec)
        at: Loc = ("services", service_name, "environments", env_name)
        hooks_at = at if "hooks" in env_spec.model_fields_set else ("services", service_name)
        for phase, hooks in env.hooks.items():
            for index, hook in enumerate(hooks):
                loc = (*hooks_at, "hooks", phase, index)
                if hook.role and hook.role not in env.roles:
                    declared = ", ".join(env.roles) or "none"
                    yield Problem(
                        line_of(root, loc),
                        where(loc),
                        f"role {hook.role!r} is not declared in {env_name} (declared roles: {declared})",
                    )
                if hook.required and (phase.startswith("before_") or phase in HOOKS_NEVER_REQUIRED):
                    why = (
                        "a before_ hook always stops the deploy when it fails"
                        if phase.startswith("before_")
                        else f"{phase} runs when the outcome is already decided"
                    )
                    yield Problem(line_of(root, loc), where(loc), f"{why}; remove required: true")


def _migration_check_problems(check: MigrationCheckSpec, build: str, builder: BuilderSpec | None) -> Iterator[str]:
    if build != "builder" or (builder and builder.isolation == "account"):
        yield (
            "migration_check runs only inside a build's sandbox on the builder (never on a release host or the "
            "Gantry worker): it needs build: builder with isolation: sandbox"
        )
    if check.recipe == "django" and not check.settings:
        yield "migration_check with recipe: django needs settings: the settings module, e.g. mysite.settings"
    if check.recipe == "command" and not check.command.strip():
        yield "migration_check with recipe: command needs command: the check to run (it prints GANTRY-FINDING lines)"
    if check.recipe != "command" and check.command:
        yield f"command: is for recipe: command; recipe: {check.recipe} runs a built-in linter"
    for key, value in check.env.items():
        if "{{" in value:
            yield f"migration_check env {key}: plain values only (the check gets no secrets or config)"
