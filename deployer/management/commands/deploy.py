"""`manage.py deploy SERVICE REF --env ENV --as ADMIN [--wait]`: an operator's deploy from the server's shell.

Whoever runs it holds the server's settings and database, so it names no one else: `--as` must be a
superuser (it is recorded as theirs). People and CI deploy with the `gantry` command (cli/), which
authenticates with their own token. The same rules as the pages (deploy_request as that superuser). With --wait it
follows the deploy's log until it ends, and the exit status says how it went:
0 succeeded, 1 it ended otherwise (failed, rolled back, tests failed...),
2 the request was refused, 3 --timeout passed first (the deploy goes on).
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from deployer.choices import DeployStatus
from deployer.deploys.request import deploy_request, queue_waiting_message
from deployer.deploys.rules import DeployOptions
from deployer.errors import DeployRefused
from deployer.models import Deploy
from deployer.selectors import environment_named

EXIT_ENDED_BADLY, EXIT_REFUSED, EXIT_TIMEOUT = 1, 2, 3
POLL_SECONDS = 0.5


class Command(BaseCommand):
    help = "Deploy REF (a branch or a full sha) of SERVICE to an environment; --wait follows it to the end."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("service")
        parser.add_argument("ref", help="a branch name or a full 40-character sha")
        parser.add_argument("--env", dest="environment", default="", help="default: the service's first environment")
        parser.add_argument(
            "--as",
            dest="username",
            default=os.environ.get("GANTRY_CLI_USER", ""),
            help="the superuser recorded as deploying (default: $GANTRY_CLI_USER); others use the gantry CLI",
        )
        parser.add_argument(
            "--through-lock", action="store_true", help="an admin deploys although the environment is locked"
        )
        parser.add_argument("--wait", action="store_true", help="print the log until the deploy ends")
        parser.add_argument("--timeout", type=float, default=3600.0, help="seconds --wait waits at most")

    def handle(self, *args: Any, **options: Any) -> None:
        user = _user(options["username"])
        try:
            environment = environment_named(options["service"], options["environment"])
            deploy = deploy_request(
                environment=environment,
                ref=options["ref"],
                user=user,
                options=DeployOptions(override_lock=options["through_lock"]),
            )
        except DeployRefused as exc:
            self.stderr.write(f"refused: {exc}")
            sys.exit(EXIT_REFUSED)
        self.stdout.write(
            f"deploy #{deploy.pk}: {deploy.ref} ({deploy.sha[:12]}) of {environment.service.name} to "
            f"{environment.name}, {DeployStatus(deploy.status).label}"
        )
        if deploy.waits_for_queue:
            self.stderr.write(f"warning: {queue_waiting_message(deploy)}")
        if options["wait"]:
            sys.exit(self._follow(deploy, options["timeout"]))

    def _follow(self, deploy: Deploy, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            deploy.refresh_from_db()
            for line in deploy.log_lines.filter(pk__gt=seen).order_by("pk"):
                seen = line.pk
                host = f" [{line.host}]" if line.host else ""
                self.stdout.write(f"{timezone.localtime(line.at):%H:%M:%S} {line.level:<7}{host} {line.message}")
            if not deploy.is_active:
                return self._ended(deploy)
            if time.monotonic() > deadline:
                self.stderr.write(f"still {deploy.status} after {timeout:.0f} s; it goes on (see deploy #{deploy.pk})")
                return EXIT_TIMEOUT
            time.sleep(POLL_SECONDS)

    def _ended(self, deploy: Deploy) -> int:
        status = DeployStatus(deploy.status)
        took = f" in {deploy.duration.total_seconds():.1f} s" if deploy.duration else ""
        message = f"deploy #{deploy.pk} {status.label}{took}" + (f": {deploy.reason}" if deploy.reason else "")
        if status == DeployStatus.SUCCEEDED:
            self.stdout.write(self.style.SUCCESS(message))
            return 0
        self.stderr.write(self.style.ERROR(message))
        return EXIT_ENDED_BADLY


def _user(username: str) -> User:
    if not username:
        raise CommandError(
            "say who deploys: --as USERNAME (or set GANTRY_CLI_USER); their grants apply", returncode=EXIT_REFUSED
        )
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise CommandError(f"there is no active Gantry user {username!r}", returncode=EXIT_REFUSED)
    if not user.is_superuser:
        # It cannot check who runs it: acting as a person would put their name on a deploy they never asked for.
        raise CommandError(
            f"{username} is not a superuser: manage.py deploy acts only as one; people deploy with the gantry "
            "command and their own token (gantry login)",
            returncode=EXIT_REFUSED,
        )
    return user
