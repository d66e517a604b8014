"""The demo service's migration step, as a real application has one: apply migrations/*.sql to the SQLite
database named by DATABASE_PATH (from the release's config), each once, in one transaction. When
MIGRATE_LOG is set, each run is counted there (the tests count them).

Committed into the demo repository by `manage.py demo_setup` (and by the tests); standard library only.
"""

from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path


def main() -> int:
    database = os.environ["DATABASE_PATH"]
    if runs := os.environ.get("MIGRATE_LOG"):
        with open(runs, "a") as log:
            log.write(f"{os.environ['GANTRY_HOST']} {os.environ['GANTRY_SHA']}\n")
    connection = sqlite3.connect(database, isolation_level=None)
    connection.execute("BEGIN IMMEDIATE")  # one migrator at a time, all or nothing
    try:
        connection.execute("CREATE TABLE IF NOT EXISTS applied (name TEXT PRIMARY KEY)")
        done = {row[0] for row in connection.execute("SELECT name FROM applied")}
        for path in sorted(Path("migrations").glob("*.sql")):
            if path.name not in done:
                print(f"applying {path.name}")
                for statement in filter(str.strip, path.read_text().split(";")):
                    connection.execute(statement)
                connection.execute("INSERT INTO applied VALUES (?)", (path.name,))
        connection.execute("COMMIT")
        print(f"schema: {', '.join(sorted(applied_now(connection))) or 'empty'}")
    except sqlite3.Error as exc:
        connection.execute("ROLLBACK")
        print(f"migration failed: {exc}", file=sys.stderr)
        return 1
    return 0


def applied_now(connection: sqlite3.Connection) -> set[str]:
    return {row[0] for row in connection.execute("SELECT name FROM applied")}


if __name__ == "__main__":
    sys.exit(main())
