"""Secrets come from the workers' environment, never from the catalog or the database: GANTRY_SECRET_<NAME>.

Whoever uses them (post-deploy API tests, a release's config) is granted names per environment in the
catalog; this module only reads what the worker holds.
"""

from __future__ import annotations

import os
import re

SECRET_ENV_PREFIX = "GANTRY_SECRET_"
# A secret named in a template: {{secret.DB_PASSWORD}}
SECRET_TEMPLATE_RE = re.compile(r"\{\{\s*secret\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
MASK = "••••"


def worker_secrets() -> dict[str, str]:
    """Every secret this worker holds, by NAME (from GANTRY_SECRET_NAME); empty values do not count."""
    return {
        name.removeprefix(SECRET_ENV_PREFIX): value
        for name, value in os.environ.items()
        if name.startswith(SECRET_ENV_PREFIX) and value
    }


def masked(text: str, hidden: list[str]) -> str:
    """`text` with every value of `hidden` (4 characters or more; longest first) replaced by ••••."""
    for value in sorted(hidden, key=len, reverse=True):
        if len(value) >= 4:
            text = text.replace(value, MASK)
    return text
