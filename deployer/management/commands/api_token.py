from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from knox.models import AuthToken

from deployer.choices import TokenScope
from deployer.environments.api_tokens import EXPIRY_DAYS, legacy_refusal, token_create
from deployer.errors import DeployRefused


class Command(BaseCommand):
    help = (
        "Make a personal API token for USER and print it once (Gantry keeps only its digest), as /me/ makes them: "
        "read only, or --deploy to services or service/environments (never more than USER may), expiring after "
        "--days. It is audited as USER's. --legacy makes an unscoped token of the old kind (it works until "
        "GANTRY_LEGACY_TOKENS_UNTIL)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="made with manage.py api_token", help="what holds it, e.g. 'ci: web'")
        parser.add_argument(
            "--deploy",
            action="append",
            default=[],
            metavar="TARGET",
            help="may deploy to SERVICE or SERVICE/ENVIRONMENT (repeat for more); without it: read only",
        )
        parser.add_argument(
            "--days", type=int, default=None, help=f"expires after {', '.join(map(str, EXPIRY_DAYS))} days (90)"
        )
        parser.add_argument("--legacy", action="store_true", help="an unscoped legacy token (--days 0: no expiry)")

    def handle(self, *args: Any, username: str, name: str, deploy: list[str], days: int | None, **options: Any) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None or not user.is_active:
            raise CommandError(f"no active user {username!r}; make one in the admin first")
        if options["legacy"]:
            self.stdout.write(self._legacy(user, days or 0))
            return
        scope = TokenScope.DEPLOY if deploy else TokenScope.READ
        try:
            _, text = token_create(user, name=name, scope=scope, targets=deploy, days=90 if days is None else days)
        except DeployRefused as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(text)

    def _legacy(self, user: Any, days: int) -> str:
        if refusal := legacy_refusal():
            raise CommandError(f"{refusal}; --legacy makes such tokens")
        if days < 0:
            raise CommandError("--days takes a number of days from 1 on (leave it out for no expiry)")
        _, token = AuthToken.objects.create(user=user, expiry=timedelta(days=days) if days else None)
        return str(token)
