"""Settings for the test suite: Gantry's own settings, pointed at a fresh var dir.

The Celery worker the tests start is a separate process that inherits this
environment, so it shares the var dir (broker folder, SSH key, known_hosts).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

_var = os.environ.setdefault("GANTRY_VAR_DIR", tempfile.mkdtemp(prefix="gantry-test-"))
# A private key space in Redis, so a test run never eats another's messages.
os.environ.setdefault("GANTRY_BROKER_PREFIX", f"{Path(_var).name}:")

# Fast heartbeats, so a killed worker's deploy goes stale in seconds (the worker inherits these).
os.environ.setdefault("GANTRY_DEPLOY_HEARTBEAT_SECONDS", "1")
os.environ.setdefault("GANTRY_DEPLOY_HEARTBEAT_TIMEOUT", "4")

from deployer.settings import *  # noqa: E402,F403
from deployer.settings import DATABASES, VAR_DIR  # noqa: E402

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # On disk, not in memory: the worker process must open the same database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}

ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SSH_CONNECT_TIMEOUT = 5
# Tests write rows directly and read pages at once; the matrix cache has its own test.
MATRIX_CACHE_SECONDS = 0
