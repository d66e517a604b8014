from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from deployer.catalog.load import catalog_json_schema
from deployer.catalog.reference import catalog_reference


class Command(BaseCommand):
    help = (
        "Print the catalog reference (Markdown: every key, its type, default and description) from the catalog's "
        "schema. The repository keeps it in docs/catalog-reference.md: "
        "python manage.py catalog_reference > docs/catalog-reference.md"
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(catalog_reference(catalog_json_schema()), ending="")
