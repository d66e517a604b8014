"""An environment's secrets as a deploy reads them: from the environment's own source (deployer/lib/secrets.py),
refused when a non-production environment holds a value production uses, a changed value audited.

The catalog already refuses a non-production environment that takes a secret from where production takes
it (catalog/problems.py); this catches the same value copied into two sources. Production's values are
read only where reading them runs nothing (its file, the workers' variables): a test deploy never runs
production's secrets command, and compares with the keyed digests production's own last read left instead.
"""

from __future__ import annotations

from django.conf import settings

from deployer.choices import AuditAction
from deployer.environments.audit import audit_record
from deployer.lib.secrets import Held, SecretSourceError, fingerprint, secrets_read, value_digest
from deployer.models import Deploy, Environment

SHORTEST_COMPARED = 4  # "1", "on", "true": the same in every environment and no secret


def granted_secrets(environment: Environment) -> list[str]:
    """Every secret name the environment grants (to its config or its API tests)."""
    return sorted(set(environment.config_secrets or []) | set(environment.api_test_secrets or []))


def deploy_secrets(deploy: Deploy) -> Held:
    """What the deploy's environment holds now; SecretSourceError says why it cannot be used."""
    environment = deploy.environment
    if not granted_secrets(environment) and environment.secret_source:
        return Held(source=environment.secret_source)  # nothing to read it for
    held = environment_secrets(environment)
    _audit_changes(environment, held, deploy)
    return held


def environment_secrets(environment: Environment) -> Held:
    """What the environment's source holds now, refused (SecretSourceError) for a non-production environment
    that holds a value production uses: for a deploy and for its API test runs alike."""
    held = secrets_read(environment.secret_source)
    if not environment.production:
        _refuse_production_values(environment, held)
    else:
        _remember_values(environment, held)
    return held


def _remember_values(environment: Environment, held: Held) -> None:
    """Keep digests of what production holds now (read for its own deploy or test run), for the comparison
    a non-production deploy cannot make by reading production's source (a command it never runs)."""
    digests = sorted(
        {
            value_digest(settings.SECRET_KEY, held.values[name])
            for name in granted_secrets(environment)
            if name in held.values and len(held.values[name]) >= SHORTEST_COMPARED
        }
    )
    if digests != list(environment.secret_value_digests or []):
        Environment.objects.filter(pk=environment.pk).update(secret_value_digests=digests)
        environment.secret_value_digests = digests


def _refuse_production_values(environment: Environment, held: Held) -> None:
    allowed = set(environment.secrets_shared_with_production or [])
    mine = {name: held.values[name] for name in granted_secrets(environment) if name in held.values}
    for production in environment.service.environments.filter(production=True):
        if production.secrets_command:  # never run production's command for a non-production deploy
            _refuse_remembered(environment, production, mine, allowed, str(held.source))
            continue
        try:
            theirs = secrets_read(production.secret_source)
        except SecretSourceError:
            continue  # nothing to compare; the catalog's rule still holds
        values = {theirs.values[name]: name for name in granted_secrets(production) if name in theirs.values}
        for name, value in mine.items():
            if name in allowed or len(value) < SHORTEST_COMPARED or value not in values:
                continue
            raise SecretSourceError(
                f"secret {name} of {environment} has the value production environment {production} uses for "
                f"{values[value]} (from {theirs.source}), and {environment.name}'s hosts run any branch's commands "
                f"with it; give {environment.name} a value of its own in {held.source}, or, if sharing is meant, "
                f"list it: secrets: {{shared_with_production: [{name}]}} on environment {environment.name}"
            )


def _refuse_remembered(
    environment: Environment, production: Environment, mine: dict[str, str], allowed: set[str], source: str
) -> None:
    known = set(production.secret_value_digests or [])
    for name, value in mine.items():
        if name in allowed or len(value) < SHORTEST_COMPARED:
            continue
        if value_digest(settings.SECRET_KEY, value) in known:
            raise SecretSourceError(
                f"secret {name} of {environment} has a value production environment {production} held when its "
                f"secrets command last ran, and {environment.name}'s hosts run any branch's commands with it; "
                f"give {environment.name} a value of its own in {source}, or, if sharing is meant, list it: "
                f"secrets: {{shared_with_production: [{name}]}} on environment {environment.name}"
            )


def _audit_changes(environment: Environment, held: Held, deploy: Deploy) -> None:
    """One audit entry per secret whose value changed since the last deploy here (its name, never its value)."""
    scope = f"{environment.service.name}/{environment.name}"
    now = {
        name: fingerprint(settings.SECRET_KEY, scope, name, held.values[name])
        for name in granted_secrets(environment)
        if name in held.values
    }
    before = dict(environment.secret_fingerprints or {})
    for name in sorted(now):
        if name in before and before[name] != now[name]:
            audit_record(
                AuditAction.SECRET_CHANGED,
                actor=None,
                environment=environment,
                deploy=deploy,
                detail=f"{name} has a new value in {held.source} (noticed by deploy #{deploy.pk}; no value is kept)",
            )
    if now != before:
        Environment.objects.filter(pk=environment.pk).update(secret_fingerprints=now)
        environment.secret_fingerprints = now
