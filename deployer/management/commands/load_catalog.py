from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from deployer.catalog.load import CatalogError, catalog_apply, catalog_read


class Command(BaseCommand):
    help = "Create or update services, environments and hosts from a catalog.yml (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)

    def handle(self, *args: Any, file: Path, **options: Any) -> None:
        try:
            spec = catalog_read(file)
        except CatalogError as exc:
            count = len(exc.problems)
            raise CommandError(
                f"{file} is invalid ({count} problem{'s' * (count > 1)}), nothing changed:\n{exc}"
            ) from None
        report = catalog_apply(spec)
        for label, items in [("created", report.created), ("updated", report.updated), ("removed", report.removed)]:
            for item in items:
                self.stdout.write(f"{label}: {item}")
        for item in report.not_in_file:
            self.stdout.write(self.style.WARNING(f"not in the file, left as is: {item} (remove it in the admin)"))
        if not (report.created or report.updated or report.removed):
            self.stdout.write("catalog already up to date")
        self.stdout.write(self.style.SUCCESS(f"loaded {file}: {len(spec.services)} service(s)"))
