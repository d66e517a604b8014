from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from knox.models import AuthToken

from deployer.environments.api_tokens import legacy_refusal


class Command(BaseCommand):
    help = (
        "Make a legacy API token (no scope; it works until GANTRY_LEGACY_TOKENS_UNTIL: people make personal, "
        "scoped tokens on /me/) for USER and print it once (Gantry keeps only its digest: a lost token is revoked in "
        "the admin and made again). It acts as USER, with USER's grants."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--days", type=int, default=0, help="expires after this many days (default: never)")

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None or not user.is_active:
            raise CommandError(f"no active user {options['username']!r}; make one in the admin first")
        if refusal := legacy_refusal():
            raise CommandError(f"{refusal}; this command makes legacy tokens")
        if options["days"] < 0:
            raise CommandError("--days takes a number of days from 1 on (leave it out for no expiry)")
        expiry = timedelta(days=options["days"]) if options["days"] else None
        _, token = AuthToken.objects.create(user=user, expiry=expiry)
        self.stdout.write(token)
