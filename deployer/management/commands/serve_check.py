from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from deployer.models import Service


class Command(BaseCommand):
    help = "What a Gantry of your own (make serve) still needs before a team uses it: the first admin, services."

    def handle(self, *args: Any, **options: Any) -> None:
        todo = []
        if not get_user_model().objects.filter(is_superuser=True, is_active=True).exists():
            todo.append("make the first admin:  .venv/bin/python manage.py createsuperuser")
        if not Service.objects.exists() and settings.CATALOG_REPO:
            todo.append(
                f"the workers follow the catalog in {settings.CATALOG_REPO} ({settings.CATALOG_BRANCH}): "
                f"{settings.GANTRY_BASE_URL}/catalog/ says what they applied or refused "
                "(docs/catalog.md: The catalog in git)"
            )
        elif not Service.objects.exists():
            todo.append(
                "describe your services in a catalog.yml (docs/catalog.md), then  .venv/bin/python manage.py "
                "load_catalog catalog.yml  (print Gantry's SSH key for your hosts with  "
                ".venv/bin/python manage.py ssh_key)"
            )
        if not settings.SECRET_KEY_FROM_ENV:
            todo.append(
                f"SECRET_KEY is the one made for this install in {settings.VAR_DIR / 'secret_key'}: keep a copy "
                "with your database backups (signed links and remembered secrets need it), or set SECRET_KEY in .env"
            )
        where = f"{settings.GANTRY_BASE_URL}/"
        if todo:
            self.stdout.write("Gantry serves at " + where + "; still to do:")
            for item in todo:
                self.stdout.write(f"  - {item}")
        else:
            self.stdout.write(f"Gantry serves at {where}")
