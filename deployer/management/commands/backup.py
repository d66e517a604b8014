from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from deployer.ops.backup import BackupError, backup_write


class Command(BaseCommand):
    help = (
        "Write a consistent backup of this Gantry into a new directory under DIR, while it runs: the database "
        "(history, audit log, host keys, grants, tokens), the generated SECRET_KEY and the SSH key file."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("dir", type=Path, help="where the backup directory is made (e.g. /var/backups/gantry)")

    def handle(self, *args: Any, dir: Path, **options: Any) -> None:
        try:
            made = backup_write(dir)
        except BackupError as exc:
            raise CommandError(str(exc)) from exc
        for note in made.notes:
            self.stdout.write(self.style.WARNING(note))
        self.stdout.write(self.style.SUCCESS(f"backup written: {made.path} ({', '.join(made.files)})"))
