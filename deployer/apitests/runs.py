"""Running a service's API test suites against an environment, and keeping the results.

Variables a suite can use: base_url (the environment's), host and host_base_url
(per host), sha, ref, service, environment, deploy_id, the environment's
`test_variables`, and secrets as {{secret.NAME}}.

A suite can come from any branch (.gantry/tests.yml), so what it may use and
reach is the catalog's to grant, per environment:
- a secret only if the environment lists it in `api_test_secrets` (its value is
  the worker's GANTRY_SECRET_NAME, never the YAML), and a suite from the
  repository only where `api_test_repo_secrets` is on (off by default in
  production). A test variable made from a secret counts as that secret. A suite
  naming a secret it may not use fails before it sends anything, with the
  catalog key that would allow it;
- a URL only on the environment's origins (apitest_network.RequestPolicy).
Every stored text is masked (every secret the worker holds) and capped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from deployer.apitests.files import MAX_BYTES, TESTS_FILE, SuiteFileError, suites_parse
from deployer.apitests.network import RequestPolicy
from deployer.apitests.runner import MissingVariable, StepResult, SuiteResult, render, suite_run
from deployer.apitests.schema import SECRET_PREFIX, TEMPLATE_RE, SuiteSpec, names_used, secrets_named, variables_order
from deployer.choices import DeployStatus
from deployer.integrations import git
from deployer.lib.secrets import Held, SecretSourceError, masked, secrets_read
from deployer.models import ApiTestRun, ApiTestStep, Deploy, Environment, Service

STORED_MAX = 2048  # characters of any one stored text (actual, expected, excerpt, error)
CATALOG = "the catalog"


def suites_run(
    environment: Environment,
    *,
    deploy: Deploy | None,
    trigger: str = ApiTestRun.Trigger.DEPLOY,
    sha: str = "",
    recorded: dict[str, str | None] | None = None,
    read: Callable[[Environment], Held] | None = None,
) -> list[ApiTestRun]:
    """Run every suite of the environment's service; store and return the runs (empty: no suites).
    `recorded`: the tests file of `sha` as its deploy recorded it (else the deploy's own record); `read`, how
    the environment's secrets are read (the callers' own: environments/secret_scope.environment_secrets)."""
    if deploy is not None and recorded is None:
        recorded = deploy.tests_file
    hidden: list[str] = []

    def store(result: SuiteResult) -> ApiTestRun:
        return _store(environment, deploy, trigger, result, hidden)

    try:
        suites, source = suites_for(environment, deploy.sha if deploy else sha, recorded=recorded)
    except SuiteFileError as exc:
        return [store(_failed(TESTS_FILE, "load the suites", str(exc)))]
    if not suites:
        return []
    try:
        held = (read or _source_read)(environment)  # again at each run: a rotated value needs no restart
    except SecretSourceError as exc:
        return [store(_failed(name, "secrets", f"suite {name}: {exc}")) for name in suites]
    hidden.extend(held.values.values())
    usable = _usable_secrets(environment, held, from_repo=source == TESTS_FILE)
    try:
        base = _variables(environment, deploy, usable)
        if deploy is None and sha:
            base["sha"] = sha  # monitoring: what runs there now
    except (ValueError, MissingVariable) as exc:
        return [store(_failed(name, "variables", f"test_variables of {environment}: {exc}")) for name in suites]
    policy = request_policy(environment)
    runs = []
    for name, suite in suites.items():
        if problem := secret_problem(environment, suite, held, source=source):
            runs.append(store(_failed(name, "secrets", f"suite {name} from {source}: {problem}")))
            continue
        for target, variables in _targets(environment, suite, base):
            runs.append(store(suite_run(name, suite, variables, policy=policy, target=target)))
    return runs


def _failed(suite: str, step: str, error: str) -> SuiteResult:
    return SuiteResult(suite, "environment", [StepResult(step, "", "", False, error=error)])


def suites_for(
    environment: Environment, sha: str, *, recorded: dict[str, str | None] | None = None
) -> tuple[dict[str, SuiteSpec], str]:
    """The repository's .gantry/tests.yml at `sha` when it has one (it wins), else the catalog's suites;
    and where they came from (TESTS_FILE or CATALOG). The file is what the deploy of `sha` recorded
    (`recorded`); only a deploy from before such records has it read from this machine's mirror."""
    service = environment.service
    if recorded is None and sha:
        recorded = tests_file_read(service, sha)
    if recorded and recorded.get("error"):
        raise SuiteFileError(str(recorded["error"]))
    if recorded and recorded.get("text") is not None:
        return suites_parse(str(recorded["text"])), TESTS_FILE
    return {name: SuiteSpec.model_validate(data) for name, data in service.api_tests.items()}, CATALOG


def tests_file_read(service: Service, sha: str) -> dict[str, str | None] | None:
    """.gantry/tests.yml at `sha` from this machine's mirror, as a deploy records it; None when the mirror
    cannot tell (it lacks the commit)."""
    try:
        return {"text": git.file_at(service.name, sha, TESTS_FILE, max_bytes=MAX_BYTES)}
    except git.FileTooLarge as exc:
        return {"error": str(exc)}
    except git.GitError:
        return None


def tests_file_record(deploy: Deploy) -> None:
    """Keep the deploy's tests file on the deploy (its worker has the commit), for whoever runs its tests."""
    found = tests_file_read(deploy.environment.service, deploy.sha)
    if found is not None:
        Deploy.objects.filter(pk=deploy.pk).update(tests_file=found)
        deploy.tests_file = found


def request_policy(environment: Environment) -> RequestPolicy:
    """The origins of base_url, of host_base_url on each host, and of api_test_origins."""
    urls = [environment.base_url, *environment.api_test_origins]
    if environment.host_base_url:
        urls += [environment.host_base_url.format(address=host.address) for host in environment.hosts.all()]
    return RequestPolicy.of(str(environment), [url for url in urls if url])


def _usable_secrets(environment: Environment, held: Held, *, from_repo: bool) -> dict[str, str]:
    """The secrets a suite may see here, as template variables: granted, held, and (from a branch) allowed."""
    if from_repo and not environment.api_test_repo_secrets:
        return {}
    return {f"{SECRET_PREFIX}{name}": held.values[name] for name in environment.api_test_secrets if name in held.values}


def _test_variable_secrets(environment: Environment) -> dict[str, set[str]]:
    """Each test variable's secrets, through the other test variables it uses."""
    extra = dict(environment.test_variables or {})
    needs: dict[str, set[str]] = {}
    for name in variables_order(extra):
        used = TEMPLATE_RE.findall(extra[name])
        needs[name] = secrets_named(used).union(*(needs.get(u, set()) for u in used))
    return needs


def secret_problem(environment: Environment, suite: SuiteSpec, held: Held, *, source: str) -> str:
    """Why `suite` may not run here because of a secret it names (directly or through a test variable); ""."""
    from_repo = source == TESTS_FILE
    through = _test_variable_secrets(environment)
    used = names_used(suite)
    wanted = sorted({(s, "") for s in secrets_named(used)} | {(s, v) for v in used if v in through for s in through[v]})
    where = f"environment {environment.name} in the catalog"
    for secret, variable in wanted:
        via = f"{variable} (a test variable made from secret.{secret})" if variable else f"secret.{secret}"
        if secret not in environment.api_test_secrets:
            return f"it uses {via}, which {environment} does not grant; add {secret} to api_test_secrets of {where}"
        if from_repo and not environment.api_test_repo_secrets:
            return (
                f"it uses {via}, but suites from the repository may not use secrets in {environment}; "
                f"set api_test_repo_secrets: true on {where} to allow it (off by default in production)"
            )
        if secret not in held.values:
            return f"it uses {via}, which {environment} grants, but {secret} is not in {held.source}; " + (
                held.source.missing(secret)
            )
    return ""


def _variables(environment: Environment, deploy: Deploy | None, usable: dict[str, str]) -> dict[str, str]:
    values = {
        "service": environment.service.name,
        "environment": environment.name,
        "base_url": environment.base_url.rstrip("/"),
        "sha": deploy.sha if deploy else "",
        "ref": deploy.ref if deploy else "",
        "deploy_id": str(deploy.pk) if deploy else "",
        **usable,
    }
    extra = dict(environment.test_variables or {})
    through = _test_variable_secrets(environment)
    for name in variables_order(extra):
        if all(f"{SECRET_PREFIX}{secret}" in usable for secret in through[name]):
            values[name] = render(extra[name], values)  # one made from a secret this suite may not see is left out
    return values


def summary(runs: list[ApiTestRun]) -> str:
    failed = [run for run in runs if not run.ok]
    if not failed:
        return f"{len(runs)} API test run{'s' if len(runs) != 1 else ''} passed"
    parts = []
    for run in failed:
        bad = run.steps.filter(ok=False).values_list("name", flat=True)
        where = "" if run.target == "environment" else f" on {run.target}"
        parts.append(f"{run.suite}{where}: {', '.join(bad)}")
    return "post-deploy API tests failed: " + "; ".join(parts)


def _targets(environment: Environment, suite: SuiteSpec, base: dict[str, str]) -> list[tuple[str, dict[str, str]]]:
    targets = []
    if environment.base_url:
        targets.append(("environment", base))
    if (suite.per_host or not environment.base_url) and environment.host_base_url:
        for host in environment.hosts.all():
            url = environment.host_base_url.format(address=host.address).rstrip("/")
            per_host = {**base, "host": host.address, "host_base_url": url}
            if not environment.base_url:
                per_host["base_url"] = url
            targets.append((host.address, per_host))
    return targets or [("environment", base)]  # no URL at all: the steps say which variable is missing


def _kept(text: str, hidden: list[str]) -> str:
    """`text` as it may be stored: every secret masked, then capped at STORED_MAX characters."""
    text = masked(text, hidden)
    if len(text) > STORED_MAX:
        text = text[:STORED_MAX] + f"… ({len(text) - STORED_MAX} more characters not kept)"
    return text


@transaction.atomic
def _store(
    environment: Environment, deploy: Deploy | None, trigger: str, result: SuiteResult, hidden: list[str]
) -> ApiTestRun:
    run = ApiTestRun.objects.create(
        environment=environment, deploy=deploy, suite=result.suite, target=result.target, trigger=trigger, ok=result.ok
    )
    ApiTestStep.objects.bulk_create(
        ApiTestStep(
            run=run,
            position=position,
            name=step.name,
            method=step.method,
            url=_kept(step.url, hidden),
            status=step.status,
            elapsed_ms=step.elapsed_ms,
            ok=step.ok,
            error=_kept(step.error, hidden),
            # Failed assertions first: that is what a reader looks for.
            assertions=[
                {key: _kept(str(value), hidden) if key != "ok" else value for key, value in asdict(a).items()}
                for a in sorted(step.assertions, key=lambda a: a.ok)
            ],
            response_excerpt=_kept(step.response_excerpt, hidden),
        )
        for position, step in enumerate(result.steps)
    )
    return run


def environment_test(
    environment_id: int, trigger: str, *, read: Callable[[Environment], Held] | None = None
) -> list[ApiTestRun]:
    """Run the suites against what runs in the environment now (monitoring, or a person's request)."""
    environment = Environment.objects.select_related("service").get(pk=environment_id)
    current = (
        Deploy.objects.filter(environment=environment, status__in=DeployStatus.live())
        .order_by("-id")
        .only("sha", "ref", "tests_file")
        .first()
    )
    reader = read or _source_read
    if current is None:
        return suites_run(environment, deploy=None, trigger=trigger, read=reader)
    return suites_run(
        environment, deploy=None, trigger=trigger, sha=current.sha, recorded=current.tests_file, read=reader
    )


def _source_read(environment: Environment) -> Held:
    return secrets_read(environment.secret_source)


def monitors_due() -> list[int]:
    """Environments whose monitoring interval has passed since their last scheduled run, each claimed (a
    conditional update): however many schedulers ask, a run is due to one of them once per interval."""
    due = []
    now = timezone.now()
    for environment in Environment.objects.filter(monitor_minutes__gt=0).select_related("service"):
        if not environment.service.api_tests and not environment.base_url and not environment.host_base_url:
            continue
        previous = now - timedelta(minutes=environment.monitor_minutes)
        claimed = (
            Environment.objects.filter(pk=environment.pk)
            .filter(Q(monitor_claimed_at__isnull=True) | Q(monitor_claimed_at__lte=previous))
            .update(monitor_claimed_at=now)
        )
        if claimed:
            due.append(environment.pk)
    return due


def recent_runs(environment: Environment, limit: int = 20) -> list[ApiTestRun]:
    """The newest runs, oldest first (the pass/fail strip reads left to right)."""
    return list(reversed(ApiTestRun.objects.filter(environment=environment).order_by("-id")[:limit]))
