from __future__ import annotations

import getpass
import socket
import sys
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser

from deployer.environments.host_keys import (
    HostKeyConflict,
    host_key_trust,
    host_keys_of,
    known_hosts_export,
    known_hosts_import,
)
from deployer.errors import StepFailed
from deployer.integrations import ssh, ssh_keys


class Command(BaseCommand):
    help = (
        "Trust a host's SSH key (fetch it, show its fingerprint, store it where every worker reads it); "
        "or import or export a known_hosts file."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("host", nargs="?", help="ADDRESS or ADDRESS:PORT")
        parser.add_argument("--fingerprint", help="expected SHA256:... fingerprint (refuse any other key)")
        parser.add_argument("--replace", action="store_true", help="replace a key Gantry trusts already")
        parser.add_argument("--yes", action="store_true", help="trust without asking (needs --fingerprint)")
        parser.add_argument("--as", dest="as_user", metavar="USER", help="the Gantry account trusting it (audit)")
        parser.add_argument("--import", dest="import_from", metavar="FILE", help="trust every entry of a known_hosts")
        parser.add_argument("--export", action="store_true", help="print every trusted key as a known_hosts file")

    def handle(self, *args: Any, host: str | None, import_from: str | None, export: bool, **options: Any) -> None:
        self.user, self.by = _who(options["as_user"])
        if export:
            sys.stdout.write(known_hosts_export())
        elif import_from:
            self._import(Path(import_from))
        elif host:
            if options["yes"] and not options["fingerprint"]:
                raise CommandError(
                    "--yes trusts without asking only the key you name: add --fingerprint SHA256:... (check it with "
                    "the host's owner), or leave out --yes to see the key and answer"
                )
            self._trust(host, options["fingerprint"], replace=options["replace"], yes=options["yes"])
        else:
            raise CommandError("name a host (ADDRESS or ADDRESS:PORT), or use --import FILE or --export")

    def _import(self, path: Path) -> None:
        try:
            text = path.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise CommandError(f"cannot read {path}: {exc}") from exc
        added, skipped = known_hosts_import(text, user=self.user, by=self.by)
        self.stdout.write(f"{added} key(s) trusted from {path}")
        if skipped:
            self.stdout.write(
                self.style.WARNING(
                    f"{skipped} left out: Gantry trusts a different key of that type for the host "
                    "(trust_host ADDRESS:PORT --replace after checking the fingerprint)"
                )
            )

    def _trust(self, host: str, fingerprint: str | None, *, replace: bool, yes: bool) -> None:
        address, _, port_text = host.rpartition(":") if host.count(":") == 1 else (host, "", "22")
        if not port_text.isdigit() or not address:
            raise CommandError(f"{host!r}: write ADDRESS or ADDRESS:PORT, e.g. 10.0.0.5:22")
        target = ssh.Target(address, int(port_text), "")
        try:
            key = ssh_keys.host_key_scan(target.address, target.port)
        except StepFailed as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{target.address}:{target.port} offers {key.key_type} {key.fingerprint}")
        known = host_keys_of(target)
        if key in known:
            self.stdout.write(self.style.SUCCESS("already trusted"))
            return
        if known and not replace:
            raise CommandError(
                f"Gantry trusts a different key for this host ({known[0].fingerprint}); "
                "if the host was rebuilt, run again with --replace"
            )
        if fingerprint and fingerprint != key.fingerprint:
            raise CommandError(f"the host offers {key.fingerprint}, not {fingerprint}: refusing to trust it")
        if not (fingerprint or yes) and _asked("Trust this key? [y/N] ", key.fingerprint) != "y":
            raise CommandError("not trusted")
        try:
            host_key_trust(name=target.known_hosts_name, key=key, user=self.user, replace=replace, by=self.by)
        except HostKeyConflict as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS("trusted, for every machine that runs Gantry's workers"))


def _who(username: str | None) -> tuple[User | None, str]:
    """The Gantry account named by --as, else the shell account running the command (kept as a name)."""
    if username:
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise CommandError(f"--as {username}: no active Gantry user of that name")
        return user, ""
    return None, f"{getpass.getuser()}@{socket.gethostname()} (shell)"


def _asked(question: str, fingerprint: str) -> str:
    """The person's answer; without a terminal to ask on (a script, a pipe), a clear refusal saying how."""
    try:
        return input(question).strip().lower()
    except EOFError:
        raise CommandError(
            "no answer to read (standard input is not a terminal): check the fingerprint with the host's "
            f"administrator, then run again with --fingerprint {fingerprint}"
        ) from None
