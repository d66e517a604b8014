from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from deployer.version import VERSION


class Command(BaseCommand):
    help = "Print Gantry's version."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"gantry {VERSION}")
