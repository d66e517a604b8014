"""An OpenSSH client config file the operator names (GANTRY_SSH_CONFIG; never ~/.ssh/config by default), for
fleets already described there: each host's and jump host's entry may give HostName, Port, User and
ProxyJump. The catalog's own values win; the file fills in what the catalog leaves at its defaults (port 22,
user deploy, no proxy_jump); HostName always applies (an alias in the catalog, the address in the file).
Nothing else of the file is used: ProxyCommand, IdentityFile or StrictHostKeyChecking would run commands,
use other keys or skip the host key checks Gantry makes (paramiko's parser reads it; Gantry applies it). A file
with `Match exec` is refused: paramiko would run its command on every lookup. A file Gantry cannot read or a
value it cannot use fails the step that needed it, saying what (StepFailed), never anything else."""

from __future__ import annotations

import functools
import re
from dataclasses import replace
from pathlib import Path

import paramiko
from django.conf import settings

from deployer.errors import StepFailed
from deployer.integrations.ssh import Target
from deployer.lib.hops import hop_parse, hops_normalized

DEFAULT_PORT, DEFAULT_USER = 22, "deploy"


_MATCH_EXEC = re.compile(r"^\s*match\b.*\bexec\b", re.IGNORECASE | re.MULTILINE)


@functools.cache
def _parsed(path: str, mtime: float) -> paramiko.SSHConfig:
    text = Path(path).read_text()
    if _MATCH_EXEC.search(text):
        raise ValueError("it uses Match exec, which would run a command on every lookup; Gantry does not")
    return paramiko.SSHConfig.from_text(text)


def _config() -> paramiko.SSHConfig | None:
    path = settings.SSH_CONFIG_FILE
    if not path:
        return None
    try:
        return _parsed(path, Path(path).stat().st_mtime)
    except (OSError, ValueError, paramiko.SSHException) as exc:  # named, and unusable: say so, never guess
        raise StepFailed(f"GANTRY_SSH_CONFIG={path} cannot be read: {exc}") from exc


def ssh_config_applied(target: Target) -> Target:
    """`target` with what the file says of it (and of its jump hosts) filled in."""
    config = _config()
    if config is None:
        return target
    try:
        return _applied(config, target, depth=0)
    except (ValueError, TypeError, KeyError, paramiko.SSHException) as exc:
        raise StepFailed(
            f"GANTRY_SSH_CONFIG={settings.SSH_CONFIG_FILE}: its entry for {target.address} cannot be used: {exc}"
        ) from exc


def _applied(config: paramiko.SSHConfig, target: Target, *, depth: int) -> Target:
    entry = config.lookup(target.address)
    port = int(entry.get("port", DEFAULT_PORT)) if target.port == DEFAULT_PORT else target.port
    user = entry.get("user", DEFAULT_USER) if target.user == DEFAULT_USER else target.user
    via = target.via
    jump = entry.get("proxyjump", "")
    if not via and jump and jump.lower() != "none" and depth < 3:
        hops = []
        for hop in hops_normalized(jump):
            hop_user, address, hop_port = hop_parse(hop)
            hops.append(_applied(config, Target(address, hop_port, hop_user), depth=depth + 1))
        via = tuple(hops)
    return replace(target, address=entry.get("hostname", target.address), port=port, user=user, via=via)
