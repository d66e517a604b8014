"""Gantry checks SSH host keys against its trust store (in the database, read by every worker), never
auto-accepts one, records who trusted which key; its private key comes from the environment or a file."""

from __future__ import annotations

import getpass
import io
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import paramiko
import psutil
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client, override_settings
from django.urls import reverse

from deployer.choices import AuditAction, DeployStatus
from deployer.demo.hosts import SshdHost
from deployer.deploys.request import deploy_request
from deployer.environments.host_keys import host_key_offered, host_key_retrust, host_key_trust, known_hosts_export
from deployer.errors import DeployRefused, PermissionRefused
from deployer.integrations import ssh
from deployer.integrations.ssh_keys import HostKey, ed25519_key_write, ssh_key_ensure
from deployer.models import AuditEntry, Environment, TrustedHostKey
from tests.support.catalogs import MakeEnvironment
from tests.support.net import free_port
from tests.support.waiting import wait_for_deploy
from tests.support.worker import Worker


@pytest.fixture
def new_host(tmp_path: Path) -> Iterator[SshdHost]:
    """A fresh sshd with a key Gantry has never seen."""
    host = SshdHost(tmp_path / "new-host", "127.0.0.14", free_port("127.0.0.14"))
    host.prepare(ssh_key_ensure())
    process = host.start()
    yield host
    process.terminate()
    process.wait(timeout=10)


def name_of(host: SshdHost) -> str:
    return ssh.Target(host.address, host.port, host.user).known_hosts_name


@pytest.mark.slow
def test_an_unknown_host_key_fails_the_deploy_and_says_how_to_trust_it(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, new_host: SshdHost
) -> None:
    environment = make_environment(hosts=[new_host])
    trusted_before = TrustedHostKey.objects.count()

    deploy = wait_for_deploy(deploy_request(environment=environment, ref="main", user=deployer).pk, celery_worker)

    assert deploy.status == DeployStatus.FAILED
    assert "which Gantry does not trust" in deploy.reason
    assert TrustedHostKey.objects.count() == trusted_before, "nothing was auto-accepted"
    command = re.search(r"manage\.py trust_host (\S+) --fingerprint (\S+)", deploy.reason)
    assert command is not None, deploy.reason

    # Following the message's advice (on any machine: here, not the worker's) makes the next deploy work.
    call_command("trust_host", command.group(1), "--fingerprint", command.group(2), stdout=io.StringIO())
    entry = AuditEntry.objects.filter(action=AuditAction.HOST_KEY_TRUSTED).first()
    assert entry is not None and entry.detail == f"{name_of(new_host)} ssh-ed25519 {command.group(2)}"
    shell = f"{getpass.getuser()}@{socket.gethostname()} (shell)"
    assert (entry.actor_name, TrustedHostKey.objects.get(host=name_of(new_host)).trusted_by_name) == (shell, shell)
    deploy = wait_for_deploy(deploy_request(environment=environment, ref="main", user=deployer).pk, celery_worker)
    assert deploy.status == DeployStatus.SUCCEEDED, deploy.reason


@pytest.mark.slow
def test_a_changed_host_key_fails_the_deploy(
    make_environment: MakeEnvironment, celery_worker: Worker, deployer: AbstractBaseUser, new_host: SshdHost
) -> None:
    impostor_key = paramiko.Ed25519Key(filename=str(_other_key(new_host.directory)))
    host_key_trust(name=name_of(new_host), key=HostKey.of(impostor_key), user=None)
    environment = make_environment(hosts=[new_host])

    deploy = wait_for_deploy(deploy_request(environment=environment, ref="main", user=deployer).pk, celery_worker)

    assert deploy.status == DeployStatus.FAILED
    assert "CHANGED" in deploy.reason and "--replace" in deploy.reason
    assert not (Path(environment.hosts.get().path) / "releases").exists(), "nothing reached the host"


@pytest.mark.slow
def test_a_rekeyed_host_is_refused_then_retrusted_by_fingerprint_on_its_service_page(
    make_environment: MakeEnvironment,
    celery_worker: Worker,
    deployer: AbstractBaseUser,
    deployer_client: Client,
    new_host: SshdHost,
) -> None:
    old = HostKey.of(new_host.host_key())
    host_key_trust(name=name_of(new_host), key=old, user=None)
    environment = make_environment(hosts=[new_host])
    first = wait_for_deploy(deploy_request(environment=environment, ref="main", user=deployer).pk, celery_worker)
    assert first.status == DeployStatus.SUCCEEDED, first.reason
    # Reprovisioned: the same address comes back with a new host key.
    new_host.host_key_path.unlink()
    rebuilt = SshdHost(new_host.directory, new_host.address, new_host.port)
    rebuilt.prepare(ssh_key_ensure())
    new = HostKey.of(rebuilt.host_key())
    process = _restart(new_host, rebuilt)
    try:
        refused = wait_for_deploy(deploy_request(environment=environment, ref="main", user=deployer).pk, celery_worker)
        assert refused.status == DeployStatus.FAILED and f"it offered {new.fingerprint}" in refused.reason
        assert f"Gantry trusts {old.fingerprint}" in refused.reason and "service's page" in refused.reason

        page = deployer_client.get(reverse("service", args=["app"])).content.decode()
        assert (
            f"<code data-offered>{new.fingerprint}</code>" in page and f"<code data-trusted>{old.fingerprint}" in page
        )
        trust = reverse("host-key-trust", args=["app"])
        viewer = Client()
        viewer.force_login(get_user_model().objects.create_user("vic", "vic@example.com", "pw"))
        assert viewer.post(trust, {"name": name_of(new_host), "fingerprint": new.fingerprint}).status_code == 403
        typo = deployer_client.post(trust, {"name": name_of(new_host), "fingerprint": old.fingerprint})
        assert typo.status_code == 400 and "offered no key with the fingerprint" in typo.content.decode()
        assert [r.fingerprint for r in TrustedHostKey.objects.filter(host=name_of(new_host))] == [old.fingerprint]

        done = deployer_client.post(trust, {"name": name_of(new_host), "fingerprint": f"  {new.fingerprint} "})
        assert done.status_code == 302
        assert [r.fingerprint for r in TrustedHostKey.objects.filter(host=name_of(new_host))] == [new.fingerprint]
        entry = AuditEntry.objects.filter(action=AuditAction.HOST_KEY_TRUSTED).first()
        assert entry is not None and entry.actor_name == "dana"
        assert entry.detail == f"{name_of(new_host)} ssh-ed25519 {new.fingerprint}, replacing {old.fingerprint}"
        assert "data-key-waiting" not in deployer_client.get(reverse("service", args=["app"])).content.decode()
        again = wait_for_deploy(deploy_request(environment=environment, ref="main", user=deployer).pk, celery_worker)
        assert again.status == DeployStatus.SUCCEEDED, again.reason
    finally:
        process.terminate()
        process.wait(timeout=10)


def _restart(old: SshdHost, new: SshdHost) -> subprocess.Popen[bytes]:
    """Stop the fixture's sshd for `old` and start `new` (same address and port, new host key)."""
    for proc in psutil.process_iter(["cmdline"]):
        if str(old.config_path) in " ".join(proc.info["cmdline"] or []):
            proc.terminate()
            proc.wait(timeout=10)
    return new.start()


def test_trust_host_refuses_a_fingerprint_that_does_not_match(db: None, new_host: SshdHost) -> None:
    with pytest.raises(CommandError, match="refusing to trust it"):
        call_command("trust_host", f"{new_host.address}:{new_host.port}", "--fingerprint", "SHA256:not-it")
    assert not TrustedHostKey.objects.exists()


def test_trust_host_without_a_terminal_says_how_instead_of_failing(
    db: None, new_host: SshdHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # a script or a pipe: nobody to answer
    real = HostKey.of(new_host.host_key())
    with pytest.raises(CommandError, match=f"run again with --fingerprint {re.escape(real.fingerprint)}"):
        call_command("trust_host", f"{new_host.address}:{new_host.port}", stdout=io.StringIO())
    assert not TrustedHostKey.objects.exists()


def test_trust_host_replaces_a_key_only_when_asked(db: None, new_host: SshdHost) -> None:
    impostor = HostKey.of(paramiko.Ed25519Key(filename=str(_other_key(new_host.directory))))
    host_key_trust(name=name_of(new_host), key=impostor, user=None)
    address = f"{new_host.address}:{new_host.port}"

    real = HostKey.of(new_host.host_key())
    with pytest.raises(CommandError, match="trusts a different key for this host"):
        call_command("trust_host", address, "--fingerprint", real.fingerprint)
    with pytest.raises(CommandError, match="--yes trusts without asking only the key you name: add --fingerprint"):
        call_command("trust_host", address, "--yes", "--replace")
    call_command("trust_host", address, "--yes", "--replace", "--fingerprint", real.fingerprint, stdout=io.StringIO())

    assert [(row.key_type, row.key) for row in TrustedHostKey.objects.all()] == [(real.key_type, real.base64)]
    latest = AuditEntry.objects.filter(action=AuditAction.HOST_KEY_TRUSTED).first()
    assert latest is not None and latest.detail.endswith(f"replacing {impostor.fingerprint}")
    admin = get_user_model().objects.create_superuser("root", "root@example.com", "root-password-1")
    TrustedHostKey.objects.all().delete()
    call_command("trust_host", address, "--as", "root", "--fingerprint", real.fingerprint, stdout=io.StringIO())
    assert TrustedHostKey.objects.get().trusted_by == admin, "--as names the Gantry account"


def test_trust_host_says_what_is_wrong_with_an_address(db: None) -> None:
    with pytest.raises(CommandError, match="write ADDRESS or ADDRESS:PORT"):
        call_command("trust_host", "10.0.0.5:ssh")
    with pytest.raises(CommandError, match=r"cannot reach 127\.0\.0\.14:1"):
        call_command("trust_host", "127.0.0.14:1", "--fingerprint", "SHA256:x")
    with pytest.raises(CommandError, match="--as nobody: no active Gantry user of that name"):
        call_command("trust_host", "127.0.0.14:1", "--as", "nobody")


def test_known_hosts_files_are_an_import_and_an_export(db: None, tmp_path: Path) -> None:
    keys = [HostKey.of(paramiko.Ed25519Key(filename=str(_other_key(tmp_path / str(n))))) for n in range(3)]
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text(
        f"10.0.0.5 {keys[0].key_type} {keys[0].base64}\n"
        f"[10.0.0.6]:2222 {keys[1].key_type} {keys[1].base64} a comment\n"
        "|1|hashedsalt=|hashedname= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n"
        "# a comment line\nnot a key line\n"
    )
    host_key_trust(name="10.0.0.7", key=keys[2], user=None)
    out = io.StringIO()

    call_command("trust_host", "--import", str(known_hosts), stdout=out)

    assert "2 key(s) trusted" in out.getvalue()
    exported = known_hosts_export()
    assert exported == (
        f"10.0.0.5 {keys[0].key_type} {keys[0].base64}\n"
        f"10.0.0.7 {keys[2].key_type} {keys[2].base64}\n"
        f"[10.0.0.6]:2222 {keys[1].key_type} {keys[1].base64}\n"
    )
    # A file that disagrees with the store changes nothing: replacing a key is a person's choice.
    known_hosts.write_text(f"10.0.0.5 {keys[2].key_type} {keys[2].base64}\n")
    out = io.StringIO()
    call_command("trust_host", "--import", str(known_hosts), stdout=out)
    assert "1 left out" in out.getvalue() and known_hosts_export() == exported


def test_the_private_key_comes_from_the_environment_or_a_file(tmp_path: Path) -> None:
    private = tmp_path / "id_ed25519"
    ed25519_key_write(private, "elsewhere")
    public = private.with_name("id_ed25519.pub").read_text().split()[:2]

    with override_settings(GANTRY_SSH_PRIVATE_KEY=private.read_text(), GANTRY_SSH_KEY=tmp_path / "none"):
        out = io.StringIO()
        call_command("ssh_key", stdout=out)
        assert out.getvalue().split()[:2] == public, "the public key of the key in the environment"
        assert not (tmp_path / "none").exists(), "no key file was made beside it"

    with override_settings(GANTRY_SSH_PRIVATE_KEY="", GANTRY_SSH_KEY=private):
        out = io.StringIO()
        call_command("ssh_key", stdout=out)
        assert out.getvalue().split()[:2] == public

    with override_settings(GANTRY_SSH_PRIVATE_KEY="not a key"), pytest.raises(CommandError, match="does not hold"):
        call_command("ssh_key")


def test_a_machine_without_the_private_key_says_where_it_looks(sshd_processes: list[SshdHost], tmp_path: Path) -> None:
    host = sshd_processes[0]
    settings = override_settings(GANTRY_SSH_PRIVATE_KEY="", GANTRY_SSH_KEY=tmp_path / "missing")
    with settings, pytest.raises(ssh.StepFailed) as caught:
        ssh.open_connection(ssh.Target(host.address, host.port, host.user), [HostKey.of(host.host_key())])
    assert str(caught.value).startswith(f"Gantry's SSH private key is not on this machine ({tmp_path}/missing")
    assert "GANTRY_SSH_PRIVATE_KEY" in str(caught.value)


def _other_key(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "impostor_key"
    ed25519_key_write(path, "impostor")
    return path


def test_a_builders_key_asks_for_the_grants_of_every_environment_it_builds_for(
    environment: Environment, deployer: AbstractBaseUser, tmp_path: Path
) -> None:
    Environment.objects.create(
        service=environment.service,
        name="prod",
        production=True,
        deploy_path="/srv/app",
        build_mode="builder",
        builder_address="10.0.0.9",
        builder_port=22,
    )
    offered = HostKey.of(paramiko.Ed25519Key(filename=str(_other_key(tmp_path))))
    host_key_offered("10.0.0.9", offered)

    with pytest.raises(PermissionRefused, match="may not deploy to app/prod"):
        host_key_retrust(name="10.0.0.9", fingerprint=offered.fingerprint, user=deployer)
    with pytest.raises(PermissionRefused):
        host_key_retrust(name="[10.0.0.9", fingerprint=offered.fingerprint, user=deployer)  # no such name: admins
    with pytest.raises(DeployRefused) as wrong:
        host_key_retrust(name="10.0.0.1", fingerprint="SHA256:typed-wrong", user=deployer)
    assert offered.fingerprint not in str(wrong.value), "a refusal never hands out the fingerprint to copy"
    assert not TrustedHostKey.objects.exists()
