"""Runs on a builder, inside a build's sandbox, with the application's own Python (never in Gantry): lints
the migration files named in the file argv[1] with django-migration-linter, one JSON line per finding.

Gantry sends this file's text (migration_check.py). The application's settings are imported through a
settings module written here that points the database at a scratch one (GANTRY_LINT_DATABASE_*), so the
linter renders each migration's SQL for the database vendor production uses without touching any real
database. A migration whose SQL cannot be rendered is a finding too: a check that did not run is no pass.
"""

import json
import os
import re
import sys
from pathlib import Path

WORK = Path(os.environ["GANTRY_LINT_DIR"])
SETTINGS = os.environ["GANTRY_LINT_SETTINGS"]


def emit(**finding: object) -> None:
    print("GANTRY-FINDING " + json.dumps(finding), flush=True)


def settings_module() -> str:
    """A settings module of our own: the application's settings, its database a scratch one."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*", SETTINGS):
        raise SystemExit(f"GANTRY_LINT_SETTINGS is not a module name: {SETTINGS!r}")
    engine = os.environ["GANTRY_LINT_DATABASE_ENGINE"]
    database = {"ENGINE": engine, "NAME": os.environ["GANTRY_LINT_DATABASE_NAME"]}
    if "postgresql" in engine:
        database.update(HOST=str(WORK), USER="lint", PORT="5432")
    (WORK / "gantry_lint_settings.py").write_text(
        f"from {SETTINGS} import *  # noqa\nDATABASES = {{'default': {database!r}}}\n"
    )
    return "gantry_lint_settings"


def main() -> int:
    wanted = {line for line in Path(sys.argv[1]).read_text().split("\n") if line}  # names may hold any other
    root = Path.cwd().resolve()
    sys.path[:0] = [str(WORK / "lib"), str(WORK), str(root)]
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module()
    import django

    django.setup()
    from django.db.migrations.loader import MigrationLoader
    from django_migration_linter import MigrationLinter
    from django_migration_linter.sql_analyser import analyse_sql_statements

    linter = MigrationLinter(no_cache=True, no_output=True)
    loader = MigrationLoader(None, ignore_no_migrations=True)
    found: set[str] = set()
    for (app_label, name), migration in sorted(loader.disk_migrations.items()):
        module = sys.modules.get(migration.__module__)
        source = Path(getattr(module, "__file__", "") or "").resolve()
        if not source.is_relative_to(root) or str(source.relative_to(root)) not in wanted:
            continue
        path = str(source.relative_to(root))
        found.add(path)
        operations = "; ".join(op.describe() for op in migration.operations)[:500]
        where = {"file": path, "migration": f"{app_label}.{name}", "operations": operations}
        if linter.should_ignore_migration(app_label, name, migration.operations, is_initial=migration.initial):
            emit(**where, code="IGNORED", level="error", message="the migration opts out of the linter")
            continue
        try:
            sql = linter.get_sql(app_label, name)
        except Exception as exc:
            emit(**where, code="NOT_CHECKED", level="error", message=f"its SQL could not be rendered: {exc}"[:500])
            continue
        errors, _ignored, warnings = analyse_sql_statements(linter.sql_analyser_class, sql, [])
        data_errors, _ignored, data_warnings = linter.analyse_data_migration(migration)
        for level, issues in (("error", errors + data_errors), ("warning", warnings + data_warnings)):
            for issue in issues:
                emit(
                    **where,
                    code=issue.code,
                    level=level,
                    message=issue.message,
                    table=issue.table or "",
                    column=issue.column or "",
                )
    for path in sorted(wanted - found):
        emit(
            file=path,
            migration="",
            operations="",
            code="NOT_CHECKED",
            level="error",
            message="Django does not load it as a migration of an installed app (is the app in INSTALLED_APPS?)",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
