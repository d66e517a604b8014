from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from deployer.integrations import ssh


class Command(BaseCommand):
    help = "Trust a host's SSH key: fetch it, show its fingerprint, add it to Gantry's known_hosts."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("host", help="ADDRESS or ADDRESS:PORT")
        parser.add_argument("--fingerprint", help="expected SHA256:... fingerprint (refuse any other key)")
        parser.add_argument("--replace", action="store_true", help="replace a key Gantry trusts already")
        parser.add_argument("--yes", action="store_true", help="trust without asking")

    def handle(self, *args: Any, host: str, fingerprint: str | None, replace: bool, yes: bool, **o: Any) -> None:
        address, _, port_text = host.rpartition(":") if host.count(":") == 1 else (host, "", "22")
        if not port_text.isdigit():
            raise CommandError(f"{host!r}: write ADDRESS or ADDRESS:PORT, e.g. 10.0.0.5:22")
        target = ssh.Target(address, int(port_text), "")
        try:
            key = ssh.host_key_scan(target.address, target.port)
        except OSError as exc:
            raise CommandError(f"cannot reach {target.address}:{target.port}: {exc}") from exc
        offered = ssh.fingerprint(key)
        self.stdout.write(f"{target.address}:{target.port} offers {key.get_name()} {offered}")
        known = ssh.known_host_key(target)
        if known is not None and ssh.fingerprint(known) == offered:
            self.stdout.write(self.style.SUCCESS("already trusted"))
            return
        if known is not None and not replace:
            raise CommandError(
                f"Gantry trusts a different key for this host ({ssh.fingerprint(known)}); "
                "if the host was rebuilt, run again with --replace"
            )
        if fingerprint and fingerprint != offered:
            raise CommandError(f"the host offers {offered}, not {fingerprint}: refusing to trust it")
        if not (fingerprint or yes) and input("Trust this key? [y/N] ").strip().lower() != "y":
            raise CommandError("not trusted")
        ssh.known_hosts_trust(target, key, replace=replace)
        self.stdout.write(self.style.SUCCESS(f"trusted; written to {settings.GANTRY_KNOWN_HOSTS}"))
