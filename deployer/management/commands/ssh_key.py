from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from deployer.integrations.ssh_keys import IdentityMissing, ssh_key_ensure


class Command(BaseCommand):
    help = (
        "Print Gantry's SSH public key, for hosts' authorized_keys: from GANTRY_SSH_PRIVATE_KEY, else the file "
        "GANTRY_SSH_KEY (a new key pair is made there when neither exists)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            self.stdout.write(ssh_key_ensure())
        except IdentityMissing as exc:
            raise CommandError(str(exc)) from exc
