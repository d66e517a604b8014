from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from deployer.catalog.load import ApplyReport, CatalogError, catalog_apply, catalog_diff, catalog_read
from deployer.catalog.schema import CatalogSpec


class Command(BaseCommand):
    help = (
        "Create or update services, environments and hosts from a catalog.yml (idempotent). --check only "
        "validates (no database needed: for a CI job on the catalog's repository); --diff lists what a load "
        "would change and writes nothing."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", type=Path)
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--check", action="store_true", help="validate only; exit 1 with every problem")
        mode.add_argument("--diff", action="store_true", help="what a load would change; nothing is written")

    def handle(self, *args: Any, file: Path, check: bool, diff: bool, **options: Any) -> None:
        spec = self._read(file)
        if check:
            self.stdout.write(self.style.SUCCESS(f"{file} is valid: {len(spec.services)} service(s)"))
            return
        report = catalog_diff(spec) if diff else catalog_apply(spec)
        self._report(report, would=diff)
        if diff:
            self.stdout.write(f"nothing was written; `load_catalog {file}` applies it")
        else:
            self.stdout.write(self.style.SUCCESS(f"loaded {file}: {len(spec.services)} service(s)"))

    def _read(self, file: Path) -> CatalogSpec:
        try:
            return catalog_read(file)
        except CatalogError as exc:
            count = len(exc.problems)
            raise CommandError(
                f"{file} is invalid ({count} problem{'s' * (count > 1)}), nothing changed:\n{exc}"
            ) from None

    def _report(self, report: ApplyReport, *, would: bool) -> None:
        verbs = ("would create", "would update", "would remove") if would else ("created", "updated", "removed")
        for verb, items in zip(verbs, [report.created, report.updated, report.removed], strict=True):
            for item in items:
                self.stdout.write(f"{verb}: {item}")
        for item in report.not_in_file:
            self.stdout.write(self.style.WARNING(f"not in the file, left as is: {item} (remove it in the admin)"))
        if not (report.created or report.updated or report.removed):
            self.stdout.write("catalog already up to date")
