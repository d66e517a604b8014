from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from deployer.integrations.git import GitError
from deployer.models import Service
from deployer.sources.branches import branch_sync


class Command(BaseCommand):
    help = "Refresh the branches of every service (or the named ones) from their repositories, now."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("services", nargs="*")

    def handle(self, *args: Any, services: list[str], **options: Any) -> None:
        queryset = Service.objects.filter(name__in=services) if services else Service.objects.all()
        failed = 0
        for service in queryset:
            try:
                count = branch_sync(service=service)
            except GitError as exc:
                failed += 1
                self.stderr.write(f"{service.name}: {exc}")
            else:
                self.stdout.write(f"{service.name}: {count} branches")
        if failed:
            raise CommandError(f"{failed} service(s) failed to sync")
