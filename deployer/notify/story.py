"""A deploy's story as one Slack message (Block Kit), rendered from the database.

Built with slack-sdk's block models, whose to_dict() checks Slack's limits
(text lengths, number of fields), so a payload Slack would refuse fails here.
Everything a person typed is escaped for mrkdwn (&, <, >).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import reverse
from slack_sdk.models.blocks import ActionsBlock, ButtonElement, ContextBlock, SectionBlock
from slack_sdk.models.blocks.basic_components import ConfirmObject, MarkdownTextObject

from deployer.choices import DeployStatus, DeployTrigger, HostStatus
from deployer.integrations import github
from deployer.models import AuditEntry, Deploy, Environment

# The buttons' action ids; deployer.chatops carries them out when Slack reports a press.
APPROVE, ROLLBACK, UNLOCK = "gantry_approve", "gantry_rollback", "gantry_unlock"

EMOJI = {
    DeployStatus.AWAITING_APPROVAL: ":hourglass:",
    DeployStatus.QUEUED: ":hourglass_flowing_sand:",
    DeployStatus.RUNNING: ":rocket:",
    DeployStatus.SUCCEEDED: ":white_check_mark:",
    DeployStatus.FAILED: ":x:",
    DeployStatus.CANCELLED: ":black_square_for_stop:",
    DeployStatus.ROLLED_BACK: ":leftwards_arrow_with_hook:",
    DeployStatus.INTERRUPTED: ":warning:",
    DeployStatus.TESTS_FAILED: ":test_tube:",
    DeployStatus.JOINED: ":heavy_plus_sign:",
}
FIELD_MAX = 1900  # Slack: 2000 characters per field
TEXT_MAX = 2900  # Slack: 3000 characters per section text


def escape(text: str) -> str:
    """Slack's control characters, escaped: every text field (mrkdwn, plain_text, the notification text)
    gets every user-controlled string through this (branch names, reasons, names)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def story(deploy: Deploy) -> tuple[str, list[dict[str, Any]]]:
    """(notification text, blocks) for the deploy as it stands now."""
    environment, service = deploy.environment, deploy.environment.service
    status = DeployStatus(deploy.status)
    who = deploy.requested_by.get_username() if deploy.requested_by else "Gantry"
    verb = "rolling back" if deploy.is_rollback else "new hosts join" if deploy.is_join else "deploying"
    headline = (
        f"{EMOJI[status]} *{escape(service.name)}* → *{escape(environment.name)}*: {verb} "
        f"`{escape(deploy.ref)}` ({_commit_link(deploy)}) — *{status.label}*"
    )
    # The notification text is parsed like mrkdwn too: a branch named <!channel> must not ping a channel.
    text = (
        f"{escape(service.name)} → {escape(environment.name)}: {verb} {escape(deploy.ref)} ({deploy.sha[:8]}) "
        f"— {status.label}"
    )
    fields = [
        f"*Requested by*\n{escape(who)}",
        f"*Commits since the previous deploy*\n{_commit_count(deploy)}",
        f"*Hosts*\n{_hosts(deploy)}",
        f"*Deploy*\n<{_deploy_url(deploy)}|#{deploy.pk}>",
    ]
    if deploy.emergency_reason:
        fields.append(f"*Emergency*\n{escape(deploy.emergency_reason)}")
    if deploy.freeze_overridden:
        fields.append(f"*In a freeze window*\n{escape(deploy.freeze_overridden)}")
    if deploy.skipped_hosts:
        fields.append(f"*Without*\n{escape(', '.join(deploy.skipped_hosts))}: {escape(deploy.skip_reason)}")
    if canary := _canary(deploy):
        fields.append(f"*Canary analysis*\n{canary}")
    section = SectionBlock(
        text=MarkdownTextObject(text=headline[:TEXT_MAX]),
        fields=[MarkdownTextObject(text=field[:FIELD_MAX]) for field in fields],
    )
    newest = _is_newest(deploy)
    context = [f"{status.label}{_duration(deploy)}"]
    if deploy.reason:
        context.append(escape(deploy.reason)[:FIELD_MAX])
    context += _actions(deploy)
    if undone := _rolled_back_by(deploy):
        context.append(undone)
    if newest and environment.is_locked:
        context.append(_lock_line(environment))
    blocks: list[SectionBlock | ContextBlock | ActionsBlock] = [
        section,
        ContextBlock(elements=[MarkdownTextObject(text=line) for line in context[:10]]),
    ]
    if buttons := _buttons(deploy, newest):
        blocks.append(ActionsBlock(block_id=f"gantry-{deploy.pk}", elements=buttons))
    return text[:TEXT_MAX], [block.to_dict() for block in blocks]


def page_url(name: str, *args: object) -> str:
    """An absolute link to a Gantry page (GANTRY_BASE_URL + the route)."""
    return settings.GANTRY_BASE_URL + reverse(name, args=args)


def _is_newest(deploy: Deploy) -> bool:
    """Only the environment's newest deploy speaks for it (its lock, Rollback, Unlock)."""
    return not Deploy.objects.filter(environment_id=deploy.environment_id, pk__gt=deploy.pk).exists()


def _lock_line(environment: Environment) -> str:
    who = environment.locked_by.get_username() if environment.locked_by else "Gantry"
    until = (
        f" until <!date^{int(environment.lock_expires_at.timestamp())}^{{date_short}} {{time}}|later>"
        if environment.lock_expires_at
        else ""
    )
    return f":lock: {escape(environment.name)} is locked by {escape(who)}{until}: {escape(environment.lock_reason)}"


def _buttons(deploy: Deploy, newest: bool) -> list[ButtonElement]:
    """Approve, Rollback and Unlock where they apply, each behind a confirm dialog.

    Shown only when Slack can reach Gantry back (SLACK_SIGNING_SECRET set); a
    press is checked again when it arrives (someone may have been first).
    """
    if not settings.SLACK_SIGNING_SECRET:
        return []
    environment = deploy.environment
    name = f"{escape(environment.service.name)} → {escape(environment.name)}"
    buttons = []
    if deploy.status == DeployStatus.AWAITING_APPROVAL:
        buttons.append(
            _button(
                "Approve",
                APPROVE,
                deploy.pk,
                "primary",
                f"Approve deploy #{deploy.pk}?",
                f"{escape(deploy.ref)} ({deploy.sha[:8]}) goes to {name} as soon as you confirm.",
            )
        )
    rollback_applies = deploy.status in DeployStatus.live() and deploy.trigger != DeployTrigger.ROLLBACK
    if newest and rollback_applies and deploy.previous_sha:
        buttons.append(
            _button(
                "Rollback",
                ROLLBACK,
                deploy.pk,
                "danger",
                f"Roll {name} back?",
                f"Every host goes back to the release before {deploy.sha[:8]}, and {escape(environment.name)} "
                "is locked until someone unlocks it.",
            )
        )
    if newest and environment.is_locked:
        buttons.append(
            _button(
                "Unlock",
                UNLOCK,
                environment.pk,
                None,
                f"Unlock {name}?",
                f"Deploys to {escape(environment.name)} are allowed again. Locked because: "
                f"{escape(environment.lock_reason)}"[:290],
            )
        )
    return buttons


def _button(label: str, action_id: str, value: int, style: str | None, title: str, text: str) -> ButtonElement:
    confirm = ConfirmObject(title=title[:100], text=text[:300], confirm=label, deny="Cancel", style=style)
    return ButtonElement(text=label, action_id=action_id, value=str(value), style=style, confirm=confirm)


def _commit_link(deploy: Deploy) -> str:
    short = deploy.sha[:8]
    repo = deploy.environment.service.github_repo
    return f"<{github.commit_url(repo, deploy.sha)}|`{short}`>" if repo else f"`{short}`"


def _canary(deploy: Deploy) -> str:
    """Each metric's latest measurement: "error_rate 0.048 vs baseline 0.001: fail" ("" without an analysis)."""
    latest = {m.metric: m for m in deploy.measurements.all()}
    lines = []
    for name, m in latest.items():
        canary = "no data" if m.canary is None else f"{m.canary:.4g}"
        baseline = (
            "" if not m.baseline_query else f" vs baseline {'no data' if m.baseline is None else f'{m.baseline:.4g}'}"
        )
        lines.append(f"{escape(name)} {canary}{baseline}: {m.verdict}{' (dry run)' if m.dry_run else ''}")
    return "\n".join(lines)


def _deploy_url(deploy: Deploy) -> str:
    return page_url("deploy", deploy.pk)


def _commit_count(deploy: Deploy) -> str:
    if not deploy.previous_sha:
        return "first deploy here"
    if deploy.previous_sha == deploy.sha:
        return "0 (a redeploy)"
    ahead = deploy.commits_total  # recorded by the deploy's worker (its mirror), before the rollout
    if ahead is None:
        return f"since `{deploy.previous_sha[:8]}`"
    return str(ahead) if ahead else f"0 (goes back from `{deploy.previous_sha[:8]}`)"


def _hosts(deploy: Deploy) -> str:
    statuses = list(deploy.hosts.values_list("status", flat=True))
    if not statuses:
        return f"{deploy.environment.hosts.count()} to go"
    live = sum(1 for s in statuses if s == HostStatus.LIVE)
    return f"{live} of {len(statuses)} live" + (
        f", {sum(1 for s in statuses if s == HostStatus.FAILED)} failed" if HostStatus.FAILED in statuses else ""
    )


def _duration(deploy: Deploy) -> str:
    if deploy.started_at is None or deploy.finished_at is None:
        return ""
    return f" in {round((deploy.finished_at - deploy.started_at).total_seconds())} s"


def _actions(deploy: Deploy) -> list[str]:
    """What people did to this deploy in the browser (approve, cancel...), newest last, at most five."""
    entries = (
        AuditEntry.objects.filter(deploy_id=deploy.pk)
        .exclude(action__in=["deploy_requested", "deploy_ended"])
        .order_by("-pk")
    )
    return [f"{escape(entry.actor_name)} {escape(entry.get_action_display())}" for entry in reversed(entries[:5])]


def _rolled_back_by(deploy: Deploy) -> str:
    """A later rollback away from this deploy's release (its own message tells the rest)."""
    rollback = (
        Deploy.objects.filter(
            environment_id=deploy.environment_id,
            pk__gt=deploy.pk,
            trigger=DeployTrigger.ROLLBACK,
            previous_sha=deploy.sha,
        )
        .select_related("requested_by")
        .first()
    )
    if rollback is None:
        return ""
    who = rollback.requested_by.get_username() if rollback.requested_by else "Gantry"
    link = f"<{_deploy_url(rollback)}|#{rollback.pk}>"
    return f":leftwards_arrow_with_hook: {escape(who)} rolled back from this in {link}"


def tests_reply(deploy: Deploy, mentions: list[str]) -> tuple[str, list[dict[str, Any]]]:
    """The thread reply with the deploy's API test results; `mentions` are Slack ids to call on failure."""
    runs = list(deploy.api_test_runs.prefetch_related("steps"))
    failed = [run for run in runs if not run.ok]
    if not failed:
        text = f":test_tube: Post-deploy API tests passed: {len(runs)} run{'s' if len(runs) != 1 else ''}"
        return text, [SectionBlock(text=MarkdownTextObject(text=text)).to_dict()]
    who = " ".join(mentions)
    text = f":x: Post-deploy API tests failed: {len(failed)} of {len(runs)} runs" + (f" — {who}" if who else "")
    blocks = [SectionBlock(text=MarkdownTextObject(text=text[:TEXT_MAX]))]
    for run in failed[:8]:
        where = "" if run.target == "environment" else f" on {escape(run.target)}"
        lines = []
        for step in run.steps.all():
            if step.ok:
                continue
            detail = (
                escape(step.error)
                if step.error
                else "; ".join(
                    f"{escape(a['what'])}: expected `{escape(a['expected'])[:100]}`, got `{escape(a['actual'])[:100]}`"
                    for a in step.assertions
                    if not a["ok"]
                )
            )
            lines.append(f"• `{escape(step.name)}`: {detail}")
        body = f"*{escape(run.suite)}*{where}\n" + "\n".join(lines)
        blocks.append(SectionBlock(text=MarkdownTextObject(text=body[:TEXT_MAX])))
    return text[:TEXT_MAX], [block.to_dict() for block in blocks]


def mention(user_or_group: str) -> str:
    return f"<!subteam^{user_or_group}>" if user_or_group.startswith("S") else f"<@{user_or_group}>"
