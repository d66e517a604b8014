"""Migration safety before anyone clicks (catalog: migration_check): the migration files of a commit are
linted once, in a build's sandbox on the builder, for operations the release running now cannot live with
while the new one rolls out (a NOT NULL column without a database default, a dropped or renamed column or
table, a type change). Plans and deploys of the sha read the result; a production deploy whose migrations
have findings needs the same confirmation as going back across a schema change.

Recipes: `django` runs django-migration-linter on the application's own settings, its database pointed at a
scratch one (a PostgreSQL server started inside the sandbox, or SQLite) — the linter judges the SQL Django
renders for that vendor, which is why `default=` (not a database default) is caught and `db_default=` is
not; `sql` runs squawk on plain PostgreSQL files; `command` runs the team's own check. The linters are
installed into the sandbox's /tmp at each check (never into the artifact); the check gets no config and no
secret, and never runs on a release host or on the Gantry worker. Its output is the branch's: every finding
is validated and bounded here.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import shlex
from dataclasses import dataclass
from importlib import resources
from typing import Any

from django.utils import timezone

from deployer.deploys.log import deploy_logger
from deployer.deploys.schema_changes import migrations_described
from deployer.errors import DeployRefused
from deployer.integrations import git
from deployer.models import ChangeSet, Deploy, Environment, MigrationCheck
from deployer.sources.changes import NOT_MIGRATIONS, migration_globs

FINDING_MARK = "GANTRY-FINDING "
FINDINGS_MAX = 200
FILES_MAX = 1000  # the list travels in the session's script (one argument: at most 128 KiB)
OUTPUT_MAX = 1_000_000  # bytes of the check's output Gantry reads
# A check's last line when it ran to its end (set -e: a failed step does not); on a line of its own whatever
# the check printed before it.
DONE = "printf '\\nGANTRY-LINT-DONE\\n'\n"
LINT_DIR = "/tmp/gantry-lint"  # inside the check's sandbox: a private tmpfs
# Pinned: what a check found must not change because a linter released overnight.
LINTERS = {
    "django": ("django-migration-linter==6.0.0", "appdirs==1.4.4", "toml==0.10.2"),
    "sql": ("squawk-cli==2.70.0",),
}
# squawk's rules about what breaks a running release (its others are about locks and style).
SQUAWK_RULES = {
    "adding-required-field": "NOT_NULL",
    "adding-not-nullable-field": "NOT_NULL",
    "ban-drop-column": "DROP_COLUMN",
    "ban-drop-table": "DROP_TABLE",
    "renaming-column": "RENAME_COLUMN",
    "renaming-table": "RENAME_TABLE",
    "changing-column-type": "ALTER_COLUMN",
    "syntax-error": "NOT_CHECKED",
}

# Why each kind of finding breaks the release still running while the new one rolls out, and the safe
# spelling (expand now, contract in a later deploy).
EXPLAINED: dict[str, tuple[str, str]] = {
    "NOT_NULL": (
        "the running release inserts rows without this column, and NOT NULL without a database default "
        "refuses them (Django's default= is applied by Django, not by the database)",
        "add it with db_default= (a database default) or null=True; make it required in a later deploy",
    ),
    "DROP_COLUMN": (
        "the running release still reads and writes the column",
        "first deploy code that no longer uses it (the field removed from the model, the column kept), "
        "then drop it in a later deploy",
    ),
    "DROP_TABLE": (
        "the running release still queries the table",
        "stop using the model in one deploy, delete the table in a later one",
    ),
    "RENAME_COLUMN": (
        "the running release queries the old name",
        "keep the column's name with db_column=, or add the new column, write both, and drop the old later",
    ),
    "RENAME_TABLE": (
        "the running release queries the old table name",
        "keep the table's name with db_table=, or copy to a new table over several deploys",
    ),
    "ALTER_COLUMN": (
        "a type change can rewrite or lock the table, and the running release writes the old type",
        "add a column of the new type, backfill it, switch the code, drop the old one later",
    ),
    "ADD_UNIQUE": (
        "the running release may write rows that break the new constraint",
        "clean the data and stop writing duplicates in one deploy, add the constraint in a later one",
    ),
    "IGNORED": (
        "the migration opts out of the linter (IgnoreMigration), so nothing vouches for it",
        "make it safe, or confirm the deploy: Gantry asks in production whatever the migration says",
    ),
    "NOT_CHECKED": (
        "the check could not judge this migration, and a check that did not run is no pass",
        "fix what the message says (or give the check what it needs, e.g. env: values the settings read)",
    ),
}
UNKNOWN_CODE = ("the linter flags it as unsafe while the running release serves", "see the linter's documentation")


@dataclass(frozen=True)
class Lint:
    """What one build runs to check migrations: `script` runs in a sandbox of its own over the built tree
    (read-only), from its src directory; `files`, the migration files it checks."""

    inputs: str
    files: list[str]
    script: str


def check_spec(environment: Environment) -> dict[str, Any]:
    return dict(environment.migration_check or {})


def check_inputs(environment: Environment) -> str:
    """What a check's result depends on besides the commit: how it checks, which files, the build."""
    spec = check_spec(environment)
    recipe = str(spec.get("recipe", ""))
    text = json.dumps(
        [spec, LINTERS.get(recipe, ()), environment.build_command, migration_globs(environment.service)],
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def check_files(environment: Environment, sha: str) -> list[str]:
    """The migration files of the commit the check reads (GitError when the mirror lacks it): every file the
    migration globs (or the sql recipe's files:) match, the newest FILES_MAX when there are more (a shipped
    file the check did not read is never taken for a pass: unsafe_summary)."""
    spec = check_spec(environment)
    paths = sorted(git.paths_at(environment.service.name, sha))
    globs = [str(g) for g in spec.get("files") or []] if spec.get("recipe") == "sql" else []
    globs = globs or migration_globs(environment.service)
    found = [
        p for p in paths if p.rsplit("/", 1)[-1] not in NOT_MIGRATIONS and any(fnmatch.fnmatchcase(p, g) for g in globs)
    ]
    if spec.get("recipe") == "django":
        found = [p for p in found if p.endswith(".py")]
    elif spec.get("recipe") == "sql":
        found = [p for p in found if p.endswith(".sql")]
    return [p for p in found if "\n" not in p and "\r" not in p][-FILES_MAX:]


def lint_for(environment: Environment, sha: str) -> Lint | None:
    """The check a build of `sha` runs, or None: no migration_check, or it already ran for this sha."""
    spec = check_spec(environment)
    if not spec.get("recipe"):
        return None
    inputs = check_inputs(environment)
    # Once per sha; one that could not run (a builder down, settings that need a value) runs again.
    if MigrationCheck.objects.filter(
        service=environment.service, sha=sha, inputs=inputs, finished_at__isnull=False, error=""
    ).exists():
        return None
    files = check_files(environment, sha)
    return Lint(inputs, files, _script(spec, files))


def _script(spec: dict[str, Any], files: list[str]) -> str:
    q = shlex.quote
    recipe = spec.get("recipe")
    # The file names are the branch's: they reach the sandbox as base64, never as shell text.
    listed = base64.b64encode("".join(f"{path}\n" for path in files).encode()).decode()
    head = (
        f'set -e\nL={LINT_DIR}\nmkdir -p "$L"\nexport HOME="$L" PIP_CACHE_DIR="$L/pip" '
        "PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1\n"
        f'printf %s {listed} | base64 -d > "$L/files"\n'
    )
    if recipe == "command":
        return head + f'export GANTRY_MIGRATION_FILES="$L/files"\n{spec.get("command", "")}\n{DONE}'

    packages = " ".join(q(p) for p in LINTERS[str(recipe)])
    if recipe == "sql":
        # Gantry's own steps run isolated from the tree (python3 -I, from $L): a json.py or pip/ in the
        # branch is never imported; squawk reads Gantry's empty config, not the branch's .squawk.toml.
        install = f'(cd "$L" && python3 -I -m pip install --quiet --no-deps --target "$L/lib" {packages})\n'
        return (
            head + install + ': > "$L/squawk.toml"\n'
            'set -- ; while IFS= read -r f; do [ -n "$f" ] && set -- "$@" "$f"; done < "$L/files"\n'
            'if [ $# -gt 0 ]; then "$L/lib/bin/squawk" --config "$L/squawk.toml" --reporter json -- "$@" '
            f'> "$L/out.json" || true; python3 -I -c {q(_SQUAWK_LINES)} < "$L/out.json"; fi\n{DONE}'
        )
    python = str(spec.get("python") or ".venv/bin/python")
    exports = "".join(f"export {key}={q(str(value))}\n" for key, value in dict(spec.get("env") or {}).items())
    database = str(spec.get("database") or "postgresql")
    engine = f"django.db.backends.{database}3" if database == "sqlite" else "django.db.backends.postgresql"
    name = '"$L/scratch.sqlite3"' if database == "sqlite" else "postgres"
    driver = resources.files("deployer.deploys").joinpath("sandboxed/django_migrations.py").read_text()
    scratch = (
        ""
        if database == "sqlite"
        else (
            "initdb=$(command -v initdb || ls -1 /usr/lib/postgresql/*/bin/initdb 2>/dev/null | tail -n 1 || true)\n"
            'if [ -z "$initdb" ]; then echo "the builder has no PostgreSQL server binaries for a scratch database '
            '(apt-get install postgresql, or database: sqlite)" >&2; exit 3; fi\n'
            'pgbin=$(dirname "$initdb")\n"$pgbin/initdb" -D "$L/pg" -A trust -U lint >/dev/null\n'
            '"$pgbin/pg_ctl" -D "$L/pg" -o "-c listen_addresses=\'\' -k $L -c fsync=off" -l "$L/pg.log" -w start '
            ">/dev/null\n"
        )
    )
    return (
        head + f"PY={q(python)}\n" + f'"$PY" -m pip install --quiet --no-deps --target "$L/lib" {packages} || '
        f'python3 -m pip install --quiet --no-deps --target "$L/lib" {packages}\n'
        + f"cat > \"$L/driver.py\" <<'GANTRY_DRIVER_END'\n{driver}GANTRY_DRIVER_END\n"
        + scratch
        + exports
        + f'GANTRY_LINT_DIR="$L" GANTRY_LINT_SETTINGS={q(str(spec.get("settings", "")))} '
        f'GANTRY_LINT_DATABASE_ENGINE={engine} GANTRY_LINT_DATABASE_NAME={name} "$PY" "$L/driver.py" "$L/files"\n'
        + DONE
    )


# Run with the builder's python3 inside the sandbox: squawk's JSON report as one finding per line.
_SQUAWK_LINES = (
    "import json,sys\n"
    "for f in json.load(sys.stdin) or []:\n"
    ' print("GANTRY-FINDING "+json.dumps({"file":f.get("file"),"code":f.get("rule_name"),'
    '"level":"error","message":f.get("message"),"line":f.get("line")}))\n'
)


def finding_parsed(text: str, files: list[str]) -> dict[str, str] | None:
    """One finding the check printed, validated (its output is the branch's), or None when it is not one
    this check may make (not JSON, not about a file it checked, a squawk rule about style)."""
    try:
        raw = json.loads(text)
    except ValueError:
        return None
    if not isinstance(raw, dict) or raw.get("file") not in files:
        return None
    code = str(raw.get("code") or "")
    code = SQUAWK_RULES.get(code, code)
    if code.islower():  # a squawk rule not about the running release
        return None
    finding = {key: str(raw.get(key) or "")[:500] for key in ("file", "migration", "operations", "message")}
    finding["code"] = code[:50] or "UNSAFE"
    finding["level"] = "warning" if raw.get("level") == "warning" else "error"
    finding["where"] = ", ".join(str(raw[k])[:100] for k in ("table", "column") if raw.get(k))
    why, fix = EXPLAINED.get(finding["code"], UNKNOWN_CODE)
    return {**finding, "why": why, "fix": fix}


def check_recorded(
    environment: Environment, sha: str, lint: Lint, findings: list[dict[str, str]], error: str
) -> MigrationCheck:
    """Keep a finished check with the sha (every later plan and deploy of it reads this row); a check that
    could not run never replaces one that did."""
    done = MigrationCheck.objects.filter(
        service=environment.service, sha=sha, inputs=lint.inputs, finished_at__isnull=False, error=""
    ).first()
    if done is not None and error:
        return done
    row, _ = MigrationCheck.objects.update_or_create(
        service=environment.service,
        sha=sha,
        inputs=lint.inputs,
        defaults={
            "files": lint.files,
            "findings": findings,
            "error": error[:2000],
            "finished_at": timezone.now(),
        },
        create_defaults={
            "files": lint.files,
            "findings": findings,
            "error": error[:2000],
            "finished_at": timezone.now(),
            "requested_at": timezone.now(),
        },
    )
    return row


def check_for(environment: Environment, sha: str) -> MigrationCheck | None:
    """The check of `sha` as this environment checks, finished or on its way (None: never asked)."""
    if not check_spec(environment).get("recipe"):
        return None
    return MigrationCheck.objects.filter(service=environment.service, sha=sha, inputs=check_inputs(environment)).first()


def new_files(migrations: list[dict[str, str]]) -> list[str]:
    """The migration files a deploy ships that its release phase may apply: new or changed here, not already
    applied by an earlier deploy."""
    return [m["path"] for m in migrations if m.get("change") in {"A", "M"} and not m.get("applied_by")]


def shipped_findings(check: MigrationCheck, migrations: list[dict[str, str]]) -> list[dict[str, str]]:
    shipped = set(new_files(migrations))
    return [f for f in check.findings or [] if f.get("file") in shipped]


def unsafe_summary(check: MigrationCheck | None, migrations: list[dict[str, str]]) -> str:
    """Why this deploy's migrations are not known safe for the running release, or "" when they are (or it
    ships none): findings in the files it ships, a check that could not run, or no check yet."""
    shipped = new_files(migrations)
    if not shipped:
        return ""
    if check is None or check.finished_at is None:
        return f"the migration check has not run for the {len(shipped)} migration file(s) it ships"
    if check.error:
        return f"the migration check could not judge the migrations it ships: {check.error[:300]}"
    unread = [path for path in shipped if path not in set(check.files or [])]
    if unread:
        more = f" and {len(unread) - 3} more" if len(unread) > 3 else ""
        return f"the migration check did not read {', '.join(unread[:3])}{more} (not a file it checks)"
    found = shipped_findings(check, migrations)
    if not found:
        return ""
    shown = "; ".join(f"{f['file']}: {f['code']} ({f['message'][:80]})" for f in found[:5])
    more = f" and {len(found) - 5} more" if len(found) > 5 else ""
    return f"the migration check found what the running release cannot live with: {shown}{more}"


BLANKET = "or ships migrations the check flags"  # in a confirmation made before the check's result was known


def check_refusal(deploy: Deploy) -> str:
    """After the build (and its check): why the worker does not deploy, or "". Production needs a person's
    confirmation for migrations the check flagged or could not judge; elsewhere the log says it and the
    deploy goes on."""
    environment = deploy.environment
    if deploy.is_rollback or not check_spec(environment).get("recipe"):
        return ""
    migrations = migrations_described(environment, list(deploy.migrations or []))
    said = unsafe_summary(check_for(environment, deploy.sha), migrations)
    log = deploy_logger(deploy.pk)
    if not said:
        if new_files(migrations):
            log.info("migration check: nothing the running release cannot live with")
        return ""
    if not environment.production:
        log.warning("%s (not production: deploying)", said)
        return ""
    # A confirmation covers findings the person saw (the plan's summary is in it), or is a blanket one made
    # before anything was known (the API's force up front); ticking "lacks migrations" covers no finding.
    confirmed = deploy.schema_confirmation
    if confirmed and (said in confirmed or BLANKET in confirmed):
        log.warning("%s; deploying as confirmed: %s", said, confirmed)
        return ""
    return (
        f"not deployed: {said}. Nothing changed on any host. Make the migration safe (its page says how), or, "
        'to deploy it anyway, confirm on its plan page or send "force": true to the API'
    )


class MigrationsUnsafe(DeployRefused):
    """A production deploy whose migrations the check flagged (or could not judge): allowed only when the
    person confirms it, like going back across a schema change."""

    status_code = 409

    def __init__(self, summary: str) -> None:
        self.summary = summary
        super().__init__(
            f"{summary}. Make the migration safe (the plan says how), or confirm to deploy anyway: the plan page "
            'asks, the API takes "force": true'
        )


def migrations_unsafe(environment: Environment, sha: str, current: Deploy | None) -> MigrationsUnsafe | None:
    """What the request can know: a production deploy whose listed migrations a finished check flagged or
    could not judge (not checked yet: the deploy's build checks, and its worker refuses)."""
    if not environment.production or current is None or current.sha == sha:
        return None
    check = check_for(environment, sha)
    if check is None or check.finished_at is None:
        return None
    row = ChangeSet.objects.filter(
        service=environment.service, base=current.sha, head=sha, computed_at__isnull=False, error=""
    ).first()
    if row is None:
        return None
    said = unsafe_summary(check, migrations_described(environment, list(row.migrations or [])))
    return MigrationsUnsafe(said) if said else None
