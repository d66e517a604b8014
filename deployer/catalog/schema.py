"""The shape of catalog.yml, as pydantic models: what keys exist, what they hold (the values' rules: fields.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, create_model, model_validator

from deployer.apitests.schema import SuiteSpec
from deployer.catalog.analysis_spec import AnalysisSpec
from deployer.catalog.builder_spec import BuildCacheSpec, BuilderSpec
from deployer.catalog.ci_spec import GithubActionsSpec
from deployer.catalog.fields import (
    GITHUB_REPO_RE,
    LB_NAME_RE,
    USER_RE,
    AbsolutePath,
    ConfigKey,
    ConfigValue,
    Name,
    Principal,
    RelativePath,
    Spec,
    check_or_none,
    health_check_none,
    optional_fields,
    valid_api_target,
    valid_batch_size,
    valid_branch,
    valid_checklist_item,
    valid_glob,
    valid_health_url,
    valid_host,
    valid_http_url,
    valid_origin,
    valid_repo_url,
    valid_runtime_api,
    valid_secret_name,
)
from deployer.catalog.freeze_spec import FreezeSpec
from deployer.catalog.migration_check_spec import MigrationCheckSpec
from deployer.catalog.slo_spec import SloSpec
from deployer.catalog.webhook_spec import WebhookSpec
from deployer.lib.hops import hops_normalized


class HostSpec(Spec):
    address: Annotated[str, AfterValidator(valid_host)] = Field(description="host name or IP address")
    port: int = Field(default=22, ge=1, le=65535, description="SSH port")
    user: str = Field(default="deploy", pattern=USER_RE.pattern, description="SSH user")
    deploy_path: AbsolutePath | None = Field(default=None, description="overrides the environment's deploy_path")
    lb_server: str | None = Field(
        default=None,
        pattern=LB_NAME_RE.pattern,
        description="its server name in the HAProxy backend (default: address)",
    )
    roles: list[Name] | None = Field(
        default=None, min_length=1, max_length=20, description="roles this host runs, e.g. [web, worker] (default: all)"
    )
    proxy_jump: Annotated[str | list[str], AfterValidator(hops_normalized)] | None = Field(
        default=None, description="jump hosts to reach it through (overrides the environment's; [] for none)"
    )


class LoadBalancerSpec(Spec):
    runtime_api: Annotated[str, AfterValidator(valid_runtime_api)] = Field(
        description="HAProxy runtime API: admin socket path or host:port (stats socket ... level admin)"
    )
    backend: str = Field(pattern=LB_NAME_RE.pattern, description="the backend whose servers are these hosts")
    drain_timeout: int = Field(default=30, ge=0, le=3600, description="seconds to wait for a drained host's sessions")


class RoleSpec(Spec):
    """One kind of process of the service (web, worker, ...): how it restarts and how it shows it is healthy."""

    restart_command: str = Field(default="", description="shell command run in <deploy_path>/current")
    health_check_url: Annotated[str, AfterValidator(valid_health_url)] = Field(
        default="", description="URL polled until HTTP 200, e.g. http://{address}:8080/healthz"
    )
    health_check_command: str = Field(
        default="", description="command run on the host in current until it exits 0 (e.g. a process check)"
    )
    health_check_timeout: int | None = Field(
        default=None, ge=1, le=3600, description="seconds to wait for health (default: the environment's)"
    )
    healthy_for: int | None = Field(
        default=None, ge=0, le=600, description="seconds the check must keep passing (default: the environment's)"
    )
    health_check: Literal["none"] | None = health_check_none()
    restart_timeout: int | None = Field(
        default=None, ge=1, le=86400, description="seconds its restart may run (default: the environment's)"
    )
    order: int = Field(default=0, ge=-1000, le=1000, description="lower restarts first (e.g. web 0, worker 1)")
    serves_traffic: bool | None = Field(
        default=None, description="drained in the load balancer while it restarts (default: has health_check_url)"
    )

    @model_validator(mode="after")
    def _check_or_none(self) -> RoleSpec:
        return check_or_none(self)


class HookSpec(Spec):
    """A command at one phase of a deploy (deployer/deploys/phase_hooks.py)."""

    command: str = Field(min_length=1, description="shell command (one line is best)")
    role: Name | None = Field(default=None, description="only on the hosts of this role (default: every host)")
    once: bool = Field(default=False, description="once per deploy, on the release host, not on every host")
    required: bool = Field(default=False, description="an after_ hook that fails fails the deploy")
    timeout: int = Field(default=120, ge=1, le=86400, description="seconds it may run")

    @model_validator(mode="after")
    def _one_place(self) -> HookSpec:
        if self.once and self.role:
            raise ValueError("a hook runs either once (on the release host) or on the hosts of a role: drop one")
        return self


def _hook_list(value: object) -> object:
    """A phase takes a command, one hook (a mapping), or a list of either."""
    items = value if isinstance(value, list) else [value]
    return [{"command": item} if isinstance(item, str) else item for item in items]


HookPhase = Literal[
    "before_build", "after_build", "before_switch", "after_switch", "after_deploy", "after_rollback", "on_failure"
]
HookList = Annotated[list[HookSpec], BeforeValidator(_hook_list), Field(max_length=20)]


class SecretsSpec(Spec):
    """Where an environment's secret values come from, read at every deploy (deployer/lib/secrets.py)."""

    file: AbsolutePath | None = Field(
        default=None, description="a file of NAME=value lines on every worker (mode 0600), e.g. /etc/gantry/prod.env"
    )
    command: list[Annotated[str, Field(min_length=1, max_length=500)]] | None = Field(
        default=None,
        min_length=1,
        max_length=50,
        description="a command the worker runs (no shell), printing NAME=value lines or a JSON object, "
        "e.g. [sops, -d, /etc/gantry/shop-prod.enc.env]",
    )
    shared_with_production: list[Annotated[str, AfterValidator(valid_secret_name)]] = Field(
        default_factory=list,
        max_length=50,
        description="secrets this non-production environment may take from where production takes them (the plan "
        "page says so)",
    )

    @model_validator(mode="after")
    def _one_source(self) -> SecretsSpec:
        if self.file and self.command:
            raise ValueError("secrets come from a file or from a command, not both: drop one")
        return self


class TrustedBuildsSpec(Spec):
    """Which Jenkins builds of a sha count here, for the green-build gate and for build: jenkins's artifact."""

    jobs: list[Annotated[str, AfterValidator(valid_glob)]] = Field(
        default_factory=list,
        max_length=20,
        description="globs of the job a build ran in, e.g. [shop, shop/main] (default: any job of the service)",
    )
    branches: list[Annotated[str, AfterValidator(valid_glob)]] = Field(
        default_factory=list,
        max_length=20,
        description="globs of the branch it built, e.g. [main, release/*] (default: in production, the default "
        "branch; elsewhere, any)",
    )


class ReleaseSpec(Spec):
    """The release model's keys: a service sets them for all its environments, an environment may override."""

    build_command: str = Field(default="", description="shell command run in the new release directory")
    build: Literal["hosts", "builder", "jenkins", "github"] = Field(
        default="hosts",
        description="where the release is built: every host, once on the builder, or by Jenkins or GitHub Actions",
    )
    builder: BuilderSpec | None = Field(default=None, description="the builder host for build: builder")
    build_cache: BuildCacheSpec | None = Field(
        default=None,
        description="for build: builder, a dependency cache: {key: [requirements.txt], dirs: [.venv]}",
    )
    migration_check: MigrationCheckSpec | None = Field(
        default=None,
        description="for build: builder, lint the migrations a deploy ships: "
        "{recipe: django, settings: mysite.settings}",
    )
    analysis: AnalysisSpec | None = Field(default=None, description="judge a canary by Prometheus metrics")
    jenkins_artifact: Annotated[str, AfterValidator(valid_glob)] = Field(
        default="*.tar.gz", description="build: jenkins or github: the file to ship (a glob; github: in the zip)"
    )
    github_artifact: str = Field(default="release", max_length=200, description="build: github: the artifact's name")
    shared_files: list[RelativePath] = Field(
        default_factory=list, max_length=100, description="files linked from <deploy_path>/shared/ into each release"
    )
    shared_dirs: list[RelativePath] = Field(
        default_factory=list, max_length=100, description="directories linked from shared/ (created when missing)"
    )
    config: dict[ConfigKey, ConfigValue] = Field(
        default_factory=dict, description="KEY: value written to shared/<config_file> (0600) and read by commands"
    )
    config_file: RelativePath = Field(default=".env", description="where the config is written, under shared/")
    config_secrets: list[Annotated[str, AfterValidator(valid_secret_name)]] = Field(
        default_factory=list, max_length=50, description="secrets config may use as {{secret.NAME}}"
    )
    release_command: str = Field(
        default="", description="runs once per deploy on the release host, after staging, before any switch"
    )
    post_release_command: str = Field(default="", description="runs once after every host is live and healthy")
    strict_commands: bool = Field(default=True, description="commands run under set -eu (false: as they are)")
    restart_timeout: int = Field(default=120, ge=1, le=86400, description="seconds a restart command may run")
    roles: dict[Name, RoleSpec] = Field(
        default_factory=dict, max_length=20, description="process roles: web: {restart_command: ...}, worker: {...}"
    )
    hooks: dict[HookPhase, HookList] = Field(
        default_factory=dict,
        description="commands at phases; a command, a hook or a list: after_switch: [{command: x}]",
    )


class EnvironmentSpec(ReleaseSpec):
    deploy_path: AbsolutePath = Field(description="absolute directory on each host, e.g. /srv/myapp")
    release_host: Annotated[str, AfterValidator(valid_host)] | None = Field(
        default=None, description="the host that runs release_command (default: the first host of the first role)"
    )
    restart_command: str = Field(default="", description="shell command run in <deploy_path>/current")
    health_check_url: Annotated[str, AfterValidator(valid_health_url)] = Field(
        default="", description="URL polled until HTTP 200, e.g. http://{address}:8080/healthz"
    )
    health_check_command: str = Field(
        default="", description="command run on the host in current until it exits 0 (e.g. a process check)"
    )
    health_check_timeout: int = Field(default=30, ge=1, le=3600, description="seconds to wait for health")
    health_check: Literal["none"] | None = health_check_none()
    healthy_for: int = Field(
        default=0,
        ge=0,
        le=600,
        description="seconds a health check must keep passing after it first passes (a process that dies a "
        "second after it starts fails), e.g. 5",
    )
    releases_to_keep: int = Field(default=5, ge=2, le=100, description="releases kept on each host")
    base_url: Annotated[str, AfterValidator(valid_http_url), AfterValidator(valid_api_target)] | None = Field(
        default=None, description="where API tests reach the environment, e.g. https://test.example.com"
    )
    host_base_url: Annotated[str, AfterValidator(valid_health_url), AfterValidator(valid_api_target)] | None = Field(
        default=None, description="where API tests reach one host, e.g. http://{address}:8080"
    )
    trusted_builds: TrustedBuildsSpec | None = Field(
        default=None,
        description="the Jenkins builds that count here: {jobs: [...], branches: [...]} (default: in production, "
        "builds of the default branch; a pull request's build never counts there)",
    )
    secrets: SecretsSpec | None = Field(
        default=None,
        description="where this environment's {{secret.NAME}} values come from: {file: ...} or {command: [...]} "
        "(default: the workers' GANTRY_SECRET_NAME, shared by every environment)",
    )
    test_variables: dict[str, str] = Field(default_factory=dict, description="variables for the API tests here")
    api_test_secrets: list[Annotated[str, AfterValidator(valid_secret_name)]] = Field(
        default_factory=list,
        max_length=50,
        description="secrets the API tests here may use as {{secret.NAME}} (values: from secrets:)",
    )
    api_test_repo_secrets: bool | None = Field(
        default=None,
        description="suites from the repository (.gantry/tests.yml) may use those secrets (default: not in production)",
    )
    api_test_origins: list[Annotated[str, AfterValidator(valid_origin)]] = Field(
        default_factory=list,
        max_length=50,
        description="origins the API tests may call besides base_url and host_base_url, e.g. https://auth.example.com",
    )
    monitor_minutes: int = Field(
        default=0, ge=0, le=1440, description="run the API tests here every N minutes (monitoring); 0: off"
    )
    rollback_on_tests_failed: bool = Field(
        default=False, description="roll back automatically when the post-deploy API tests fail"
    )
    lease_minutes: int = Field(
        default=0, ge=0, le=10080, description="shared test environment: a deploy claims it this many minutes"
    )
    commit_warning: int = Field(default=25, ge=1, le=100000, description="warn when a deploy ships more commits")
    command_timeout: int | None = Field(
        default=None, ge=1, le=86400, description="seconds one remote command (upload, build, restart) may run"
    )
    batch_size: Annotated[str | int, AfterValidator(valid_batch_size)] = Field(
        default="1", description="hosts switched at once: a number, or a percentage like 25%"
    )
    on_failure: Literal["rollback", "stop", "pause"] = Field(
        default="rollback",
        description="when a host fails: roll the switched hosts back, stop, or pause for a person to decide",
    )
    unreachable_hosts: int = Field(
        default=0,
        ge=0,
        le=1000,
        description="how many hosts may be unreachable when a deploy starts: it goes on without them, each "
        "recorded as skipped and shown behind (0: a person must say so on the plan page)",
    )
    load_balancer: LoadBalancerSpec | None = Field(
        default=None, description="drain each host in HAProxy while it restarts: runtime_api, backend"
    )
    production: bool | None = Field(default=None, description="counts as production (default: named prod)")
    require_approval: bool = Field(default=False, description="a second person approves each deploy before it runs")
    checklist: list[Annotated[str, AfterValidator(valid_checklist_item)]] = Field(
        default_factory=list, max_length=20, description="items a person ticks before a deploy starts"
    )
    require_green_build: bool | None = Field(
        default=None, description="deploy only shas with a green Jenkins build (default: on for production)"
    )
    follow: Annotated[str, AfterValidator(valid_branch)] | None = Field(
        default=None, description="branch to deploy by itself once its head has a green build"
    )
    follow_tags: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9._/*?\[\]-]{1,100}$",
        description='deploy by itself the newest tag matching this glob once it has a green build, e.g. "v*"',
    )
    freeze: list[FreezeSpec] = Field(
        default_factory=list, max_length=50, description="windows with no deploys: [{reason, cron, duration}]"
    )
    proxy_jump: Annotated[str | list[str], AfterValidator(hops_normalized)] | None = Field(
        default=None,
        description="jump hosts its hosts are reached through: deploy@bastion.example.com:22 (or a list, in order)",
    )
    webhooks: list[WebhookSpec] = Field(
        default_factory=list, max_length=10, description="signed JSON POSTs of its deploy events: [{url, secret_env}]"
    )
    hosts: list[HostSpec] = Field(min_length=1, description="list of hosts: - address: 10.0.0.5")

    @model_validator(mode="after")
    def _check_or_none(self) -> EnvironmentSpec:
        if self.follow and self.follow_tags:
            raise ValueError("follow (a branch) and follow_tags (tags) both say what to deploy by itself: keep one")
        return check_or_none(self)


class AccessSpec(Spec):
    deployers: list[Principal] = Field(default_factory=list, description="may deploy to non-production")
    prod_deployers: list[Principal] = Field(default_factory=list, description="may deploy to production too")
    approvers: list[Principal] = Field(default_factory=list, description="may approve production deploys")


class ServiceSpec(ReleaseSpec):
    team: Name | None = Field(default=None, description="name of a team declared under teams:")
    repo: Annotated[str, AfterValidator(valid_repo_url)] | None = Field(
        default=None, description="git URL or absolute path of the repository (default: from github:)"
    )
    github: str | None = Field(default=None, pattern=GITHUB_REPO_RE.pattern, description="owner/name on GitHub")
    default_branch: Annotated[str, AfterValidator(valid_branch)] = Field(default="main", description="main branch")
    jenkins_job: str = Field(default="", description="Jenkins job name")
    ci: Literal["jenkins", "github"] = Field(default="jenkins", description="builds from: jenkins or github (Actions)")
    github_actions: GithubActionsSpec | None = Field(default=None, description="ci: github: which runs count")
    runbook: Annotated[str, AfterValidator(valid_http_url)] | None = Field(default=None, description="runbook URL")
    environments: dict[Name, EnvironmentSpec] = Field(
        min_length=1, description="mapping of environment name to settings, e.g. test: {...}"
    )
    access: AccessSpec | None = Field(default=None, description="who may deploy or approve, for this service")
    slo: SloSpec | None = Field(default=None, description="its SLO: error budget and burn rates, a deploy gate")
    api_tests: dict[Name, SuiteSpec] = Field(
        default_factory=dict, description="post-deploy API test suites: name: {steps: [...]}"
    )
    migrations: list[Annotated[str, AfterValidator(valid_glob)]] | None = Field(
        default=None,
        max_length=50,
        description='globs of its migration files, e.g. ["*/migrations/*.py"] (default: common layouts; []: off)',
    )


# Environment keys every environment (of the catalog, or of a team's services) gets unless it, or its service for
# a release key, sets them: so sixty services need not repeat one restart, health check or hook.
DefaultsSpec = create_model("DefaultsSpec", __base__=Spec, **optional_fields(EnvironmentSpec, {"deploy_path", "hosts"}))
DEFAULTS_DESCRIPTION = "environment keys every environment here gets unless it (or its service) sets them"


class TeamSpec(Spec):
    slack_group: str | None = Field(
        default=None,
        pattern=r"^S[A-Z0-9]{6,20}$",
        description="user group id mentioned when tests fail, e.g. S0123ABCD",
    )
    slack_channel: str | None = Field(
        default=None, pattern=r"^(#[a-z0-9_-]{1,80}|[CG][A-Z0-9]{6,20})$", description="e.g. #web-deploys or C0123ABCD"
    )
    access: AccessSpec | None = Field(default=None, description="who may deploy or approve, for the team's services")
    defaults: DefaultsSpec | None = Field(default=None, description=DEFAULTS_DESCRIPTION)  # type: ignore[valid-type]


class CatalogSpec(Spec):
    teams: dict[Name, TeamSpec | None] = Field(default_factory=dict, description="mapping of team names")
    services: dict[Name, ServiceSpec] = Field(default_factory=dict, description="mapping of service name to settings")
    include: list[str] = Field(default_factory=list, description="more catalog files (teams/*.yml): teams, services")
    access: AccessSpec | None = Field(default=None, description="who may deploy or approve, everywhere")
    defaults: DefaultsSpec | None = Field(default=None, description=DEFAULTS_DESCRIPTION)  # type: ignore[valid-type]
