from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from deployer.ops.backup import BackupError, backup_restore


class Command(BaseCommand):
    help = (
        "Restore a backup made by `manage.py backup` into this (fresh) Gantry, then migrate. Stop Gantry's "
        "processes first; start them again after."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("backup", type=Path, help="the backup directory (gantry-backup-...)")
        parser.add_argument("--force", action="store_true", help="replace a database that has data already")

    def handle(self, *args: Any, backup: Path, force: bool, **options: Any) -> None:
        try:
            done = backup_restore(backup, force=force)
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        for line in done:
            self.stdout.write(line)
        call_command("migrate", "--noinput", verbosity=0)
        self.stdout.write(self.style.SUCCESS(f"restored {backup}; start Gantry's processes again"))
