"""A real OpenID Connect provider for the sign-in tests: panva's certified `oidc-provider`, run by node from
tests/support/oidc (make test installs it with npm ci). Who is in which group is a JSON file the test edits."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import requests

HERE = Path(__file__).resolve().parent / "oidc"


@dataclass
class Provider:
    issuer: str
    client_id: str
    client_secret: str
    groups_file: Path

    def groups(self, members: dict[str, list[str]]) -> None:
        """Who is in which group from the next sign-in on."""
        self.groups_file.write_text(json.dumps(members))


@contextmanager
def oidc_provider(tmp_path: Path, port: int, redirect_uri: str, members: dict[str, list[str]]) -> Iterator[Provider]:
    node = shutil.which("node")
    if node is None or not (HERE / "node_modules" / "oidc-provider").exists():
        raise AssertionError("the test OIDC provider needs node and `npm ci --prefix tests/support/oidc` (make test)")
    provider = Provider(
        f"http://127.0.0.1:{port}", "gantry", "gantry-client-secret-for-tests", tmp_path / "groups.json"
    )
    provider.groups(members)
    env = {
        **os.environ,
        "PORT": str(port),
        "CLIENT_ID": provider.client_id,
        "CLIENT_SECRET": provider.client_secret,
        "REDIRECT_URI": redirect_uri,
        "GROUPS_FILE": str(provider.groups_file),
    }
    log = tmp_path / "oidc-provider.log"
    process = subprocess.Popen(
        [node, "provider.mjs"], cwd=HERE, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if requests.get(f"{provider.issuer}/.well-known/openid-configuration", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the OIDC provider did not start:\n{log.read_text()}")
            time.sleep(0.1)
        yield provider
    finally:
        process.terminate()
        process.wait(timeout=10)
