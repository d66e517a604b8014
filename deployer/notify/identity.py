"""Who a Slack user is in Gantry: the active account with the e-mail of their Slack profile.

ChatOps acts as that person, so the same grants, locks and approval rules
apply as in the browser. The match is kept (SlackIdentity) for
SLACK_IDENTITY_SECONDS; an admin may pin one by hand in the admin.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.utils import timezone

from deployer.integrations import slack
from deployer.models import SlackIdentity


class UnknownSlackUser(Exception):
    """Gantry cannot tell which of its users this Slack user is; the message says what to do."""


def gantry_user(slack_user_id: str) -> User:
    """The Gantry user behind `slack_user_id`, or UnknownSlackUser with what to do about it."""
    identity = SlackIdentity.objects.select_related("user").filter(slack_user_id=slack_user_id).first()
    if identity is None or not _fresh(identity):
        identity = _look_up(slack_user_id, identity)
    user = identity.user
    if user is None or not user.is_active:
        where = f" ({identity.email})" if identity.email else ""
        raise UnknownSlackUser(
            f"Gantry does not know you: no active Gantry account has the e-mail of your Slack profile{where}. "
            "Ask a Gantry admin to give your account that e-mail (or to link your Slack user), then try again."
        )
    return user


def _fresh(identity: SlackIdentity) -> bool:
    if identity.pinned:
        return True
    # A miss is never kept: whoever gets an account a minute later is recognised at once.
    return identity.user_id is not None and identity.checked_at > timezone.now() - timedelta(
        seconds=settings.SLACK_IDENTITY_SECONDS
    )


def _look_up(slack_user_id: str, known: SlackIdentity | None) -> SlackIdentity:
    try:
        person = slack.user_info(slack_user_id)
    except slack.SlackError as exc:
        if known is not None and known.user_id is not None:
            return known  # Slack is down: the last match is better than refusing everyone
        raise UnknownSlackUser(f"Gantry could not ask Slack who you are ({exc}); try again in a minute") from exc
    if person is None or not person.active:
        raise UnknownSlackUser("Slack says your user is deactivated or unknown, so Gantry cannot act for you")
    if not person.email:
        raise UnknownSlackUser(
            "Gantry cannot see the e-mail of your Slack profile (the Slack app needs the users:read.email scope); "
            "ask a Gantry admin to link your Slack user to your account"
        )
    matches = list(get_user_model().objects.filter(email__iexact=person.email, is_active=True)[:2])
    if len(matches) > 1:
        raise UnknownSlackUser(
            f"more than one Gantry account has the e-mail {person.email}; ask a Gantry admin to link your "
            "Slack user to the right one"
        )
    identity, _ = SlackIdentity.objects.update_or_create(
        slack_user_id=slack_user_id,
        defaults={
            "slack_name": person.name[:100],
            "email": person.email,
            "user": matches[0] if matches else None,
            "checked_at": timezone.now(),
        },
    )
    return identity
