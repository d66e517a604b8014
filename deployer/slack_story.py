"""A deploy's story as one Slack message (Block Kit), rendered from the database.

Built with slack-sdk's block models, whose to_dict() checks Slack's limits
(text lengths, number of fields), so a payload Slack would refuse fails here.
Everything a person typed is escaped for mrkdwn (&, <, >).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.urls import reverse
from slack_sdk.models.blocks import ContextBlock, SectionBlock
from slack_sdk.models.blocks.basic_components import MarkdownTextObject

from deployer import gitrepo
from deployer.choices import DeployStatus, HostStatus
from deployer.integrations import github
from deployer.models import AuditEntry, Deploy

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
}
FIELD_MAX = 1900  # Slack: 2000 characters per field
TEXT_MAX = 2900  # Slack: 3000 characters per section text


def escape(text: str) -> str:
    """Slack mrkdwn needs only these three escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def story(deploy: Deploy) -> tuple[str, list[dict[str, Any]]]:
    """(notification text, blocks) for the deploy as it stands now."""
    environment, service = deploy.environment, deploy.environment.service
    status = DeployStatus(deploy.status)
    who = deploy.requested_by.get_username() if deploy.requested_by_id else "Gantry"
    verb = "rolling back" if deploy.is_rollback else "deploying"
    headline = (
        f"{EMOJI[status]} *{escape(service.name)}* → *{escape(environment.name)}*: {verb} "
        f"`{escape(deploy.ref)}` ({_commit_link(deploy)}) — *{status.label}*"
    )
    text = f"{service.name} → {environment.name}: {verb} {deploy.ref} ({deploy.sha[:8]}) — {status.label}"
    fields = [
        f"*Requested by*\n{escape(who)}",
        f"*Commits since the previous deploy*\n{_commit_count(deploy)}",
        f"*Hosts*\n{_hosts(deploy)}",
        f"*Deploy*\n<{_deploy_url(deploy)}|#{deploy.pk}>",
    ]
    if deploy.emergency_reason:
        fields.append(f"*Emergency*\n{escape(deploy.emergency_reason)}")
    section = SectionBlock(
        text=MarkdownTextObject(text=headline[:TEXT_MAX]),
        fields=[MarkdownTextObject(text=field[:FIELD_MAX]) for field in fields],
    )
    context = [f"{status.label}{_duration(deploy)}"]
    if deploy.reason:
        context.append(escape(deploy.reason)[:FIELD_MAX])
    context += _actions(deploy)
    blocks = [section, ContextBlock(elements=[MarkdownTextObject(text=line) for line in context[:10]])]
    return text[:TEXT_MAX], [block.to_dict() for block in blocks]


def _commit_link(deploy: Deploy) -> str:
    short = deploy.sha[:8]
    repo = deploy.environment.service.github_repo
    return f"<{github.commit_url(repo, deploy.sha)}|`{short}`>" if repo else f"`{short}`"


def _deploy_url(deploy: Deploy) -> str:
    return settings.GANTRY_BASE_URL + reverse("deploy", args=[deploy.pk])


def _commit_count(deploy: Deploy) -> str:
    if not deploy.previous_sha:
        return "first deploy here"
    if deploy.previous_sha == deploy.sha:
        return "0 (a redeploy)"
    try:
        ahead, _ = gitrepo.commit_log(deploy.environment.service.name, deploy.previous_sha, deploy.sha, limit=0)
    except gitrepo.GitError:
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
    entries = AuditEntry.objects.filter(deploy_id=deploy.pk).exclude(action__in=["deploy_requested"]).order_by("-pk")
    return [f"{escape(entry.actor_name)} {escape(entry.get_action_display())}" for entry in reversed(entries[:5])]


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
