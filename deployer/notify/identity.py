"""Who a Slack user is in Gantry: the active account with the e-mail of their Slack profile.

ChatOps acts as that person, so the same grants, locks and approval rules
apply as in the browser. The match is kept (SlackIdentity) for
SLACK_IDENTITY_SECONDS; an admin may pin one by hand in the admin. A person
who signs in through the team's identity provider is linked at once
(`slack_link`, from the provider's verified e-mail); while sign-in goes
through a provider, only such accounts match, never an e-mail typed into
Gantry.
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


def slack_link(user_id: int) -> str:
    """Link the Slack user whose profile has this person's e-mail (the provider's verified one: called at each
    sign-in through it), so ChatOps and mentions know them without anyone typing an address. What happened."""
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None or not user.email or not slack.enabled():
        return "nothing to link"
    if get_user_model().objects.filter(email__iexact=user.email, is_active=True).count() > 1:
        return f"more than one account has {user.email}: an admin links the Slack user by hand"
    try:
        slack_user_id = slack.user_by_email(user.email)
        person = slack.user_info(slack_user_id) if slack_user_id else None
    except slack.SlackError as exc:  # the next sign-in, or the first ChatOps request, looks again
        return f"Slack did not answer: {exc}"
    if slack_user_id is None or person is None or not person.active:
        return f"Slack has no active person with {user.email}"
    known = SlackIdentity.objects.filter(slack_user_id=slack_user_id).first()
    if known is not None and known.pinned:
        return f"{slack_user_id} is pinned by an admin"
    SlackIdentity.objects.update_or_create(
        slack_user_id=slack_user_id, defaults={"email": user.email, "user": user, "checked_at": timezone.now()}
    )
    return f"{slack_user_id} is {user}"


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
    people = get_user_model().objects.filter(email__iexact=person.email, is_active=True)
    if settings.OIDC_ISSUER or settings.GITHUB_SIGN_IN_ORG:  # e-mails the provider verified, and only those
        people = people.filter(external_identities__isnull=False).distinct()
    matches = list(people[:2])
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
