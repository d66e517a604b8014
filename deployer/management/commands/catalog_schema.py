from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from deployer.catalog.load import catalog_json_schema


class Command(BaseCommand):
    help = (
        "Print the catalog's JSON Schema (for editors: keys complete and typos underline while typing). The "
        "repository keeps it in docs/catalog.schema.json: python manage.py catalog_schema > docs/catalog.schema.json"
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(catalog_json_schema(), ending="")
