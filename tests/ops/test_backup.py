"""Backups: `manage.py backup` on a running Gantry, then `manage.py restore` on a fresh machine (its own var
dir), which then deploys — its history, host keys, SSH key and SECRET_KEY came with the backup, so nothing
is trusted or set up again. Real processes: two machines' manage.py, a Celery worker, an sshd host."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from deployer.demo.hosts import SshdHost
from deployer.integrations.ssh_keys import HostKey
from tests.support.catalogs import AppRepo
from tests.support.net import free_port
from tests.support.worker import BASE_DIR

pytestmark = [pytest.mark.one_backend, pytest.mark.slow]  # each machine has a database of its own, SQLite or PostgreSQL

HOST_ADDRESS = "127.0.0.17"
ADMIN = """
from django.contrib.auth import get_user_model
from deployer.models import Grant
get_user_model().objects.create_superuser("ops", "ops@example.com", "a-long-first-password")
Grant.objects.create(principal="ops", role="admin")
"""


class Box:
    """One machine's Gantry: its var dir, SQLite and embedded broker; manage.py and a worker."""

    def __init__(self, var_dir: Path, database_url: str = "") -> None:
        self.var_dir = var_dir
        self.database_url = database_url
        keep = {k: v for k, v in os.environ.items() if not k.startswith(("GANTRY_", "DJANGO_", "DATABASE_", "REDIS_"))}
        self.env = {**keep, "GANTRY_VAR_DIR": str(var_dir), "DJANGO_SETTINGS_MODULE": "deployer.settings"}
        if database_url:
            self.env["DATABASE_URL"] = database_url
        self.worker: subprocess.Popen[bytes] | None = None

    def deploy_statuses(self) -> list[str]:
        query = "SELECT status FROM deployer_deploy ORDER BY id"
        if self.database_url:
            with psycopg.connect(self.database_url) as db:
                return [row[0] for row in db.execute(query)]
        with sqlite3.connect(self.var_dir / "gantry.sqlite3") as db:
            return [row[0] for row in db.execute(query)]

    def manage(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "manage.py", *args], cwd=BASE_DIR, env=self.env, capture_output=True, text=True
        )
        if ok and done.returncode:
            raise AssertionError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}\n{self.log()}")
        return done

    def start_worker(self) -> None:
        log = (self.var_dir / "worker.log").open("wb")
        argv = [sys.executable, "-m", "celery", "-A", "deployer", "worker", "-Q", "deploys,sync,notify", "-c", "2"]
        self.worker = subprocess.Popen(argv, cwd=BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.terminate()
            self.worker.wait(timeout=30)
            self.worker = None

    def log(self) -> str:
        path = self.var_dir / "worker.log"
        return path.read_text()[-3000:] if path.exists() else ""


@pytest.fixture(params=["sqlite", "postgresql"])
def machines(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Box, Box]]:
    """Two machines' Gantrys: each with a SQLite file of its own, or a PostgreSQL database of its own."""
    if request.param == "sqlite":
        yield Box(tmp_path / "old"), Box(tmp_path / "new")
        return
    names = [f"gantry_backup_{uuid.uuid4().hex[:8]}_{which}" for which in ("old", "new")]
    for name in names:
        subprocess.run(["createdb", "--host=127.0.0.1", "--username=postgres", name], check=True)
    try:
        yield tuple(Box(tmp_path / name, f"postgres://postgres@127.0.0.1:5432/{name}") for name in names)  # type: ignore[misc]
    finally:
        for name in names:
            subprocess.run(["dropdb", "--host=127.0.0.1", "--username=postgres", "--force", name], check=False)


def test_a_backup_restored_on_a_fresh_machine_deploys_as_before(
    app_repo: AppRepo, tmp_path: Path, machines: tuple[Box, Box]
) -> None:
    old, new = machines
    old.manage("migrate", "--noinput")
    old.manage("shell", "-c", ADMIN)
    public_key = old.manage("ssh_key").stdout.strip()
    host = SshdHost(tmp_path / "host", HOST_ADDRESS, free_port(HOST_ADDRESS))
    host.prepare(public_key)
    sshd = host.start()
    app_port = free_port(HOST_ADDRESS)
    catalog = tmp_path / "catalog.yml"
    catalog.write_text(_catalog(app_repo, host, app_port))
    try:
        old.manage("load_catalog", str(catalog))
        old.manage("trust_host", f"{host.address}:{host.port}", "--yes", "--fingerprint", _fingerprint(host))
        old.manage("sync_branches", "app")
        old.start_worker()
        first = old.manage("deploy", "app", "main", "--env", "test", "--as", "ops", "--wait", "--timeout", "90")
        assert "succeeded" in first.stdout, first.stdout
        made = old.manage("backup", str(tmp_path / "backups")).stdout  # while the worker runs
        old.stop()
        backup = Path(made.split("backup written: ")[1].split(" (")[0])
        assert stat.S_IMODE(backup.stat().st_mode) == 0o700
        database = "database.pgdump" if old.database_url else "database.sqlite3"
        assert {p.name for p in backup.rglob("*") if p.is_file()} == {
            "manifest.json",
            database,
            "secret_key",
            "id_ed25519",
        }
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in backup.rglob("*") if p.is_file())

        restored = new.manage("restore", str(backup)).stdout
        assert "database:" in restored and "SSH key:" in restored and "secret key" in restored
        assert (new.var_dir / "secret_key").read_text() == (old.var_dir / "secret_key").read_text()
        refused = new.manage("restore", str(backup), ok=False)
        assert refused.returncode == 1 and "has data already" in refused.stderr, "a restore never overwrites"

        new.manage("sync_branches", "app")  # (git mirrors are not in a backup: fetched again)
        new.start_worker()
        second = new.manage("deploy", "app", "main", "--env", "test", "--as", "ops", "--wait", "--timeout", "90")
        assert "succeeded" in second.stdout, f"{second.stdout}\n{new.log()}"
    finally:
        old.stop()
        new.stop()
        sshd.terminate()
    statuses = new.deploy_statuses()
    assert statuses == ["succeeded", "succeeded"], "the history came along, and the new machine added to it"


def test_a_damaged_backup_is_refused_before_anything_is_touched(app_repo: AppRepo, tmp_path: Path) -> None:
    box = Box(tmp_path / "box")
    box.manage("migrate", "--noinput")
    backup = Path(box.manage("backup", str(tmp_path / "b")).stdout.split("backup written: ")[1].split(" (")[0])
    manifest = json.loads((backup / "manifest.json").read_text())
    assert manifest["engine"] == "sqlite" and manifest["gantry"]
    with (backup / "database.sqlite3").open("ab") as damaged:
        damaged.write(b"x")
    fresh = Box(tmp_path / "fresh")
    refused = fresh.manage("restore", str(backup), ok=False)
    assert refused.returncode == 1 and "database.sqlite3 is missing or damaged" in refused.stderr
    assert not (fresh.var_dir / "gantry.sqlite3").exists() or (fresh.var_dir / "gantry.sqlite3").stat().st_size == 0


def _fingerprint(host: SshdHost) -> str:
    return HostKey.of(host.host_key()).fingerprint


def _catalog(app_repo: AppRepo, host: SshdHost, app_port: int) -> str:
    return f"""
services:
  app:
    repo: {app_repo.path}
    environments:
      test:
        deploy_path: {host.directory / "srv" / "app"}
        build_command: sh build.sh
        restart_command: sh bin/restart {app_port}
        health_check_url: http://{{address}}:{app_port}/healthz
        hosts:
          - {{address: {host.address}, port: {host.port}, user: {host.user}}}
"""
