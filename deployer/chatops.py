"""ChatOps: the /gantry slash command and the buttons on Gantry's Slack messages.

The web view checks Slack's signature, parses the command (a usage mistake is
answered at once) and queues the work; a worker maps the Slack user to a
Gantry user (slack_identity) and calls the same functions the pages call, so
permissions, locks, leases, gates and approval apply unchanged. The answer
goes back to the person through the request's response_url.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from urllib.parse import urlencode

from django.contrib.auth.models import User
from django.utils import timezone

from deployer.apitests.runs import recent_runs
from deployer.choices import DeployStatus
from deployer.deploys.actions import deploy_approve
from deployer.deploys.request import current_deploy, deploy_request, deploy_rollback, queue_waiting_message
from deployer.deploys.schema_changes import RollbackNeedsConfirmation, crossing_summary
from deployer.environments.api_tokens import groups_refusal
from deployer.environments.leases import lease_summary
from deployer.environments.locks import environment_lock, environment_unlock, lock_summary
from deployer.errors import DeployConflict, DeployRefused, PermissionRefused
from deployer.integrations import slack
from deployer.lib.humanize import ago
from deployer.models import Deploy, DeployLog, Environment, Service
from deployer.notify.identity import UnknownSlackUser, gantry_user
from deployer.notify.story import APPROVE, EMOJI, ROLLBACK, UNLOCK, escape, page_url
from deployer.selectors import environment_named, service_named

VERBS = ("deploy", "status", "lock", "unlock", "help")
TEXT_MAX = 1000
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,49}$")  # catalog names of services and environments

USAGE = (
    "*/gantry* — what you can ask:\n"
    "• `/gantry deploy <service> <branch> [environment]` — deploy a branch (default: the first environment)\n"
    "• `/gantry status <service>` — what runs where and what is going on\n"
    "• `/gantry lock <service> <environment> <reason>` — stop deploys there until unlocked\n"
    "• `/gantry unlock <service> <environment> [reason]`"
)

# The buttons on deploy messages (slack_story draws them; the value is a deploy or environment id).
ACTIONS = (APPROVE, ROLLBACK, UNLOCK)


class CommandError(ValueError):
    """The command cannot be understood; the message says how to write it."""


@dataclass(frozen=True)
class Command:
    verb: str
    service: str
    environment: str = ""
    ref: str = ""
    reason: str = ""

    def as_dict(self) -> dict[str, str]:
        return asdict(self)

    def describe(self) -> str:
        """How the acknowledgement names it ("deploying main of app to test")."""
        where = f" to {self.environment}" if self.environment else ""
        return {
            "deploy": f"deploying `{escape(self.ref)}` of *{self.service}*{where or ' (first environment)'}",
            "status": f"looking up *{self.service}*",
            "lock": f"locking *{self.service}* → *{self.environment}*",
            "unlock": f"unlocking *{self.service}* → *{self.environment}*",
        }[self.verb]


def signature_problem(body: bytes, timestamp: str, signature: str, *, secret: str, now: float) -> str:
    """Why a request that claims to come from Slack does not (bad, missing or stale signature); "" if it does."""
    return slack.signature_problem(body, timestamp, signature, secret=secret, now=now)


def command_parse(text: str) -> Command:
    """`deploy app main test` → Command; CommandError (with the usage) when it is not one."""
    if len(text) > TEXT_MAX:
        raise CommandError(f"that is {len(text)} characters; a command is at most {TEXT_MAX}")
    words = text.split()
    if not words or words[0].lower() == "help":
        raise CommandError(USAGE)
    verb, args = words[0].lower(), words[1:]
    if verb not in VERBS:
        raise CommandError(f"`{escape(words[0])}` is not something Gantry does.\n{USAGE}")
    if not args:
        raise CommandError(f"name the service: `/gantry {verb} <service> …`\n{USAGE}")
    service = _name(args[0], "service")
    if verb == "status":
        if len(args) > 1:
            raise CommandError("`/gantry status <service>` takes only the service's name")
        return Command(verb, service)
    if verb == "deploy":
        if len(args) not in (2, 3):
            raise CommandError("write `/gantry deploy <service> <branch> [environment]`: `/gantry deploy app main`")
        environment = _name(args[2], "environment") if len(args) == 3 else ""
        return Command(verb, service, environment, ref=args[1])
    if len(args) < 2:
        raise CommandError(f"name the environment: `/gantry {verb} {service} <environment> <reason>`")
    reason = " ".join(args[2:])
    if verb == "lock" and not reason:
        raise CommandError(f"say why: `/gantry lock {service} {args[1]} <reason>` (the reason shows everywhere)")
    return Command(verb, service, _name(args[1], "environment"), reason=reason)


def _name(word: str, what: str) -> str:
    if not _NAME.match(word.lower()):
        raise CommandError(f"`{escape(word[:60])}` is not a {what} name (lower-case letters, digits, - and _)")
    return word.lower()


@dataclass(frozen=True)
class ChatRequest:
    """A checked request from Slack, as queued for a worker (JSON-friendly)."""

    slack_user: str
    response_url: str
    command: dict[str, str] | None = None  # a slash command (Command fields)
    action_id: str = ""  # or a button press
    value: str = ""

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def request_answer(request: ChatRequest) -> str:
    """Act on a request from Slack as the Gantry user behind the Slack user; the answer to show them."""
    try:
        user = gantry_user(request.slack_user)
    except UnknownSlackUser as exc:
        return f":wave: {escape(str(exc))}"
    if refusal := groups_refusal(user):  # as for an API token: stale groups wait for a sign-in
        return f":wave: {escape(refusal.replace('this token works', 'Slack works'))}"
    if request.command is not None:
        return command_run(Command(**request.command), user)
    return action_run(request.action_id, request.value, user)


def command_run(command: Command, user: User) -> str:
    """Do what the command says as `user`; the answer in Slack mrkdwn. Refusals come back as text."""
    try:
        if command.verb == "status":
            return service_status(service_named(command.service))
        environment = environment_named(command.service, command.environment)
        service = environment.service
        if command.verb == "deploy":
            return _deploy(environment, command.ref, user)
        if command.verb == "lock":
            environment_lock(environment, user=user, reason=command.reason)
            return f":lock: Locked *{service.name}* → *{environment.name}*: {escape(command.reason)}"
        environment_unlock(environment, user=user, reason=command.reason)
        return f":unlock: Unlocked *{service.name}* → *{environment.name}*."
    except DeployRefused as exc:
        return f":no_entry: {escape(str(exc))}"


def action_run(action_id: str, value: str, user: User) -> str:
    """A button on a deploy message was pressed (and confirmed) by `user`."""
    try:
        if action_id == UNLOCK:
            environment = Environment.objects.select_related("service").filter(pk=_id(value)).first()
            if environment is None:
                raise DeployRefused("that environment is no longer in the catalog")
            environment_unlock(environment, user=user, reason="from Slack")
            return f":unlock: Unlocked *{environment.service.name}* → *{environment.name}*."
        deploy = Deploy.objects.select_related("environment__service").filter(pk=_id(value)).first()
        if deploy is None:
            raise DeployRefused("that deploy no longer exists")
        if action_id == APPROVE:
            deploy_approve(deploy=deploy, user=user)
            link = f"<{page_url('deploy', deploy.pk)}|#{deploy.pk}>"
            return f":white_check_mark: You approved deploy {link}; it is queued."
        if action_id == ROLLBACK:
            return _rollback(deploy, user)
        raise DeployRefused(f"Gantry has no button {action_id!r}")
    except DeployRefused as exc:
        return f":no_entry: {escape(str(exc))}"


def _id(value: str) -> int:
    if not value.isdigit():
        raise DeployRefused(f"the button carries {value[:20]!r}, not an id; press a button on a newer message")
    return int(value)


def _deploy(environment: Environment, ref: str, user: User) -> str:
    try:
        deploy = deploy_request(environment=environment, ref=ref, user=user)
    except (PermissionRefused, DeployConflict) as exc:
        return f":no_entry: {escape(str(exc))}"
    except DeployRefused as exc:  # a lock, a gate, a checklist: the plan page shows it all, with what to do
        plan = page_url("deploy-plan", environment.service.name, environment.name) + "?" + urlencode({"ref": ref})
        return f":no_entry: {escape(str(exc))}\n<{plan}|Open the plan in Gantry>"
    DeployLog.objects.create(
        deploy=deploy, at=timezone.now(), level="info", message=f"requested from Slack by {user.get_username()}"
    )
    link = f"<{page_url('deploy', deploy.pk)}|#{deploy.pk}>"
    what = f"`{escape(deploy.ref)}` ({deploy.sha[:8]}) of *{environment.service.name}* to *{environment.name}*"
    if deploy.waits_for_queue:
        return f":warning: Deploy {link} of {what}: {escape(queue_waiting_message(deploy))}."
    if deploy.status == DeployStatus.AWAITING_APPROVAL:
        return f":hourglass: Deploy {link} of {what} awaits approval by a second person (Approve on its message)."
    return f":rocket: Deploy {link} of {what} is queued; its message in the team's channel follows it."


def _rollback(deploy: Deploy, user: User) -> str:
    environment = deploy.environment
    current = current_deploy(environment)
    if current is None or current.pk != deploy.pk:
        now = f"deploy #{current.pk} runs there now" if current else "nothing from Gantry runs there"
        raise DeployRefused(
            f"deploy #{deploy.pk} is not what runs in {environment} ({now}); roll back from the newest message "
            "or from the service page"
        )
    try:
        rollback = deploy_rollback(environment=environment, user=user)
    except RollbackNeedsConfirmation as exc:  # Slack never confirms it: a person reads the list on the page
        raise DeployRefused(
            f"not rolled back: going back to deploy #{exc.target.pk} crosses schema changes "
            f"({crossing_summary(exc.crossed)}). Roll back from the service page, which lists them and asks you "
            f"to confirm: {page_url('service', environment.service.name)}"
        ) from exc
    return (
        f":leftwards_arrow_with_hook: Rolling *{environment.service.name}* → *{environment.name}* back to "
        f"`{escape(rollback.ref)}` ({rollback.sha[:8]}): <{page_url('deploy', rollback.pk)}|#{rollback.pk}>"
    )


def service_status(service: Service) -> str:
    """One line per environment: what runs, what is going on, locks, leases, the last API test run."""
    lines = [f"*{escape(service.name)}* — <{page_url('service', service.name)}|open in Gantry>"]
    for environment in service.environments.select_related("locked_by", "leased_by").order_by("position"):
        current = current_deploy(environment)
        parts = [
            f"runs `{escape(current.ref)}` ({current.sha[:8]}), deployed {ago(current.created_at)}"
            if current
            else "nothing deployed by Gantry yet"
        ]
        active = Deploy.objects.active().filter(environment=environment).first()
        if active:
            status = DeployStatus(active.status)
            parts.append(
                f"{EMOJI[status]} <{page_url('deploy', active.pk)}|#{active.pk}> of `{escape(active.ref)}` "
                f"{status.label}"
            )
        if environment.is_locked:
            parts.append(f":lock: {escape(lock_summary(environment))}")
        if environment.lease_minutes and environment.is_leased:
            parts.append(escape(lease_summary(environment)))
        runs = recent_runs(environment, limit=1)
        if runs:
            parts.append(f"API tests {'passed' if runs[0].ok else 'FAILED'} {ago(runs[0].started_at)}")
        lines.append(f"• *{escape(environment.name)}*: " + " · ".join(parts))
    return "\n".join(lines)
