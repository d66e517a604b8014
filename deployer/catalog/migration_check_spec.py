"""The catalog's `migration_check:` key (deploys/migration_check.py runs it): which linter judges the migration
files a deploy ships, and what it may be given (plain values, never secrets)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from deployer.catalog.fields import CachePath, ConfigKey, Spec, valid_glob

ModuleName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$", max_length=200)]
PlainValue = Annotated[str, Field(max_length=1000, pattern=r"^[^\n\r\x00]*$")]


class MigrationCheckSpec(Spec):
    """A migration safety check run in the build's sandbox on the builder (migration_check.py): the migration
    files of each commit linted once for operations the release running now cannot live with."""

    recipe: Literal["django", "sql", "command"] = Field(
        description="django: django-migration-linter on the application's own settings; sql: squawk on plain "
        "PostgreSQL files; command: your own, printing GANTRY-FINDING {json} lines"
    )
    settings: ModuleName | None = Field(default=None, description="django: the settings module, e.g. mysite.settings")
    python: CachePath = Field(
        default=".venv/bin/python", description="django: the application's Python, relative to the build (.venv/...)"
    )
    database: Literal["postgresql", "sqlite"] = Field(
        default="postgresql",
        description="django: the vendor whose SQL is linted (postgresql: a scratch server started in the sandbox "
        "from the builder's PostgreSQL binaries)",
    )
    env: dict[ConfigKey, PlainValue] = Field(
        default_factory=dict,
        max_length=30,
        description="plain values the settings need to import (never secrets: the check gets none)",
    )
    files: list[Annotated[str, AfterValidator(valid_glob)]] = Field(
        default_factory=list, max_length=20, description="sql: globs of the files (default: the migration globs)"
    )
    command: str = Field(default="", max_length=2000, description="command: the shell command run in the build")
