"""The app with a release phase: its migration script and what a deploy of it is told."""

from __future__ import annotations

import json
from pathlib import Path

from deployer.demo import setup


def release_options(shop: dict[str, Path], **extra: str) -> dict[str, str]:
    config = {"DATABASE_PATH": str(shop["database"]), "MIGRATE_LOG": str(shop["runs"])}
    return {"config": json.dumps(config), "release_command": "python3 migrate.py", **extra}


MIGRATE = (setup.DATABASE_SOURCE / "migrate.py").read_text()


ITEMS = "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n"
