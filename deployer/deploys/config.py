"""A release's settings and secrets, from Gantry: the environment's `config:` written on every host at staging
as `shared/<config_file>` (default `.env`, mode 0600) and read by every command of the deploy.

    config:
      DJANGO_SETTINGS_MODULE: shop.settings
      DATABASE_URL: "postgres://shop:{{secret.DB_PASSWORD}}@db.internal/shop"
    config_secrets: [DB_PASSWORD]       # the secrets config may use here (values: the environment's secrets:)

Each line is `KEY='value'` (lib/dotenv.py: the same to a shell and to dotenv readers), so a value may hold
neither a single quote nor a newline; the catalog refuses such a plain value, and a secret holding one
fails the deploy before anything is written. Secret values are masked in
the deploy's log and reason; only key names and templates are kept in the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from deployer.lib.dotenv import dotenv_line, value_problem
from deployer.lib.secrets import SECRET_TEMPLATE_RE, Held
from deployer.models import Environment


class ConfigError(ValueError):
    """The config cannot be written as asked; the message names the key and what to change."""


class SecretMissing(ConfigError):
    """A granted secret is not where the environment's source (read on the worker) should hold it."""


@dataclass(frozen=True)
class Rendered:
    """The file's bytes, the secret values in it (to mask), and what each key was made from."""

    text: bytes
    hidden: list[str] = field(default_factory=list)
    definitions: dict[str, str] = field(default_factory=dict)  # KEY → its template (never a secret's value)

    def __bool__(self) -> bool:
        return bool(self.definitions)


def config_render(environment: Environment, held: Held) -> Rendered:
    """The environment's config with the granted secrets filled in from `held` (the environment's source)."""
    definitions = dict(environment.config or {})
    if not definitions:
        return Rendered(b"")
    granted = set(environment.config_secrets or [])
    hidden: list[str] = []
    lines = ["# Written by Gantry for each deploy; edit config: in the catalog instead."]
    for key, template in definitions.items():
        value = _filled(environment, key, template, granted, held, hidden)
        if problem := value_problem(value):
            raise ConfigError(f"config {key} of {environment} {problem}")
        lines.append(dotenv_line(key, value))
    return Rendered(("\n".join(lines) + "\n").encode(), hidden, definitions)


def _filled(environment: Environment, key: str, template: str, granted: set[str], held: Held, hidden: list[str]) -> str:
    return SECRET_TEMPLATE_RE.sub(lambda m: _secret(environment, key, m.group(1), granted, held, hidden), template)


def _secret(environment: Environment, key: str, name: str, granted: set[str], held: Held, hidden: list[str]) -> str:
    if name not in granted:
        raise ConfigError(
            f"config {key} of {environment} uses secret.{name}, which it does not grant; add {name} to "
            f"config_secrets of environment {environment.name} in the catalog"
        )
    if name not in held.values:
        raise SecretMissing(
            f"config {key} of {environment} uses secret.{name}, but {name} is not in {held.source}; "
            f"{held.source.missing(name)}"
        )
    hidden.append(held.values[name])
    return held.values[name]


def config_changes(environment: Environment, before: dict[str, str] | None) -> list[str]:
    """What a deploy changes in the config, by key, as the plan page says it (secrets by name only)."""
    now = dict(environment.config or {})
    before = dict(before or {})
    changes = []
    for key in sorted(set(now) | set(before)):
        if key not in before:
            changes.append(f"{key} added")
        elif key not in now:
            changes.append(f"{key} removed")
        elif now[key] != before[key]:
            secret = SECRET_TEMPLATE_RE.search(now[key]) or SECRET_TEMPLATE_RE.search(before[key])
            changes.append(f"{key} changed" + ("" if secret else f": {before[key]!r} → {now[key]!r}"))
    return changes
