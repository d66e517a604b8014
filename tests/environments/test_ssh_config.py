"""GANTRY_SSH_CONFIG: an operator's OpenSSH client config fills in what the catalog leaves at its defaults
(HostName, Port, User, ProxyJump), and nothing that would run commands or skip Gantry's host key checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from deployer.catalog.load import catalog_apply, catalog_parse
from deployer.environments.host_keys import host_target
from deployer.integrations.ssh import Target
from deployer.models import Host

pytestmark = pytest.mark.django_db

CONFIG = """
Host web-*
    HostName 10.1.0.5
    Port 2222
    User app
    ProxyJump jump
    ProxyCommand nc %h %p
Host jump
    HostName bastion.example.com
    User ops
"""


def host(address: str, extra: str = "") -> Host:
    catalog_apply(
        catalog_parse(
            "services:\n  app:\n    repo: /srv/git/app.git\n    environments:\n      test:\n"
            f"        deploy_path: /srv/app\n        hosts: [{{address: {address}{extra}}}]\n"
        )
    )
    return Host.objects.get()


def test_the_file_fills_in_what_the_catalog_leaves_at_its_defaults(tmp_path: Path, settings: object) -> None:
    path = tmp_path / "ssh_config"
    path.write_text(CONFIG)
    settings.SSH_CONFIG_FILE = str(path)  # type: ignore[attr-defined]
    target = host_target(host("web-1"))
    assert target == Target("10.1.0.5", 2222, "app", via=(Target("bastion.example.com", 22, "ops"),))


def test_the_catalog_wins_and_without_the_setting_nothing_is_read(tmp_path: Path, settings: object) -> None:
    path = tmp_path / "ssh_config"
    path.write_text(CONFIG)
    explicit = host("web-1", ", port: 2200, user: root, proxy_jump: 'admin@gw.example.com'")
    assert host_target(explicit) == Target("web-1", 2200, "root", via=(Target("gw.example.com", 22, "admin"),))
    settings.SSH_CONFIG_FILE = str(path)  # type: ignore[attr-defined]
    assert host_target(explicit) == Target("10.1.0.5", 2200, "root", via=(Target("gw.example.com", 22, "admin"),))


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("'deploy@bastion; rm -rf /'", "is not a jump host"),
        ("[a@b, c@d, e@f, g@h]", "at most 3 jump hosts"),
        ("'deploy@bastion:99999'", "is not a jump host"),
    ],
)
def test_a_jump_host_the_catalog_cannot_read_is_refused_saying_the_form(value: str, said: str) -> None:
    from deployer.catalog.catalog_files import CatalogError

    with pytest.raises(CatalogError, match=said):
        host("web-1", f", proxy_jump: {value}")


def test_a_config_gantry_cannot_use_fails_the_deploy_step_never_a_page(
    tmp_path: Path, settings: object, deployer_client: object
) -> None:
    from deployer.environments.host_keys import keys_waiting
    from deployer.errors import StepFailed

    path = tmp_path / "ssh_config"
    settings.SSH_CONFIG_FILE = str(path)  # type: ignore[attr-defined]
    added = host("web-1")
    for text, said in [
        ('Match exec "touch /tmp/pwned"\n    User x\n', "Match exec"),
        ("Host web-*\n    Port many\n", "cannot be used"),
    ]:
        path.write_text(text)
        with pytest.raises(StepFailed, match=said):
            host_target(added)
        assert keys_waiting(added.environment) == [], "the page shows the catalog's hosts instead"
    path.unlink()
    with pytest.raises(StepFailed, match="cannot be read"):
        host_target(added)
    assert not Path("/tmp/pwned").exists()
