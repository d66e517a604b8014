from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from deployer.integrations.ssh import ssh_key_ensure


class Command(BaseCommand):
    help = "Print Gantry's SSH public key (creating the key pair on first use) for hosts' authorized_keys."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(ssh_key_ensure())
