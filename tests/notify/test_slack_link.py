"""The Slack identity links itself from the provider's verified e-mail: at each sign-in through the provider
a worker asks Slack who has that address; while sign-in goes through a provider, an e-mail typed into Gantry
never makes a match."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from deployer.chatops import ChatRequest, request_answer
from deployer.environments.team_identity import provider_person
from deployer.models import SlackIdentity
from deployer.notify.identity import UnknownSlackUser, gantry_user, slack_link
from tests.fakes.slack import FakeSlack

pytestmark = pytest.mark.one_backend  # the database backend makes no difference here

ISSUER = "https://idp.example.com"


def test_signing_in_through_the_provider_links_the_slack_user_with_that_e_mail(
    db: None, slack: FakeSlack, django_capture_on_commit_callbacks: Any
) -> None:
    slack.add_user("ada@example.com", "U0ADA", "ada")

    with django_capture_on_commit_callbacks() as queued:
        ada = provider_person(ISSUER, "ada-sub", "ada@example.com", ["web"])

    assert [callback.__qualname__ for callback in queued] == ["enqueue(gantry.link_slack)"]
    assert slack_link(ada.pk) == f"U0ADA is {ada}"  # what the worker runs
    assert SlackIdentity.objects.get(slack_user_id="U0ADA").user == ada
    assert gantry_user("U0ADA") == ada, "ChatOps knows her without a lookup by hand"


def test_an_admins_pin_is_never_replaced_and_slack_trouble_changes_nothing(
    db: None, slack: FakeSlack, settings: Any
) -> None:
    ada = provider_person(ISSUER, "ada-sub", "ada@example.com", [])
    other = get_user_model().objects.create_user("ops", "ops@example.com")
    SlackIdentity.objects.create(slack_user_id="U0ADA", user=other, pinned=True, checked_at=timezone.now())
    slack.add_user("ada@example.com", "U0ADA", "ada")
    assert slack_link(ada.pk) == "U0ADA is pinned by an admin"
    assert SlackIdentity.objects.get().user == other

    get_user_model().objects.create_user("ada-again", "ada@example.com")  # her e-mail on a second account
    assert slack_link(ada.pk) == "more than one account has ada@example.com: an admin links the Slack user by hand"
    get_user_model().objects.filter(username="ada-again").delete()

    slack.fail("/api/users.lookupByEmail", status=500)
    assert slack_link(ada.pk).startswith("Slack did not answer")
    assert SlackIdentity.objects.get().user == other


def test_with_sign_in_through_a_provider_a_typed_e_mail_never_matches(
    db: None, slack: FakeSlack, settings: Any
) -> None:
    settings.OIDC_ISSUER = ISSUER
    get_user_model().objects.create_user("mallory", "ada@example.com")  # an address typed into Gantry
    slack.add_user("ada@example.com", "U0ADA", "ada")

    with pytest.raises(UnknownSlackUser):
        gantry_user("U0ADA")

    ada = provider_person(ISSUER, "ada-sub", "ada@example.com", [])
    assert gantry_user("U0ADA") == ada, "the account whose e-mail the provider verified"


def test_slack_waits_for_a_fresh_sign_in_as_api_tokens_do(db: None, slack: FakeSlack, settings: Any) -> None:
    ada = provider_person(ISSUER, "ada-sub", "ada@example.com", ["web"])
    slack.add_user("ada@example.com", "U0ADA", "ada")
    slack_link(ada.pk)
    settings.TOKEN_GROUPS_MINUTES = 60
    ada.external_identities.update(checked_at=timezone.now() - timedelta(minutes=61))

    said = request_answer(ChatRequest("U0ADA", "https://hooks.slack.com/x", command={"verb": "status", "service": "x"}))

    assert "sign in to Gantry in a browser and Slack works again" in said
