"""Slack: the outbox of messages (each attempt recorded) and Slack users linked to Gantry accounts; the outbox
of outgoing webhook events."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from deployer.models.catalog import Environment
from deployer.models.deploys import Deploy


class SlackMessage(models.Model):
    """A Slack message Gantry owns, sent through this outbox: a deploy's story (posted once, then
    updated in place) or a reply in its thread. Deploys only write rows here; workers send them."""

    class Kind(models.TextChoices):
        STORY = "story", "the deploy's message"
        REPLY = "reply", "a reply in its thread"
        NOTICE = "notice", "a notice about no deploy (a refused catalog commit, a break-glass sign-in)"

    class State(models.TextChoices):
        PENDING = "pending", "waiting to be sent"
        SENT = "sent", "sent"
        FAILED = "failed", "Slack refused it"
        LOGGED = "logged", "no Slack token: logged instead"

    deploy = models.ForeignKey(
        Deploy, on_delete=models.CASCADE, null=True, blank=True, related_name="slack_messages"
    )  # none for a notice
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.STORY)
    channel = models.CharField(max_length=100)
    ts = models.CharField(max_length=30, blank=True, help_text="Slack's id of the message, once posted.")
    text = models.TextField(help_text="The notification text (and what is logged without a token).")
    blocks = models.JSONField(default=list, blank=True)
    version = models.PositiveIntegerField(default=1, help_text="Bumped by every change to text or blocks.")
    sent_version = models.PositiveIntegerField(default=0)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True, help_text="A worker is sending it (since).")
    last_sent_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["deploy"], condition=Q(kind="story"), name="slack_one_story_per_deploy")
        ]

    def __str__(self) -> str:
        return f"{self.kind} of deploy #{self.deploy_id} in {self.channel} ({self.state})"


class SlackAttempt(models.Model):
    """Every call Gantry made to Slack for a message, and Slack's answer."""

    message = models.ForeignKey(SlackMessage, on_delete=models.CASCADE, related_name="attempts_made")
    at = models.DateTimeField(auto_now_add=True)
    method = models.CharField(max_length=30)
    version = models.PositiveIntegerField()
    ok = models.BooleanField()
    answer = models.CharField(max_length=300, blank=True, help_text="Slack's error code, or what went wrong.")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.method} v{self.version}: {'ok' if self.ok else self.answer}"


class SlackIdentity(models.Model):
    """Which Gantry user a Slack user is (matched by the e-mail of their Slack profile).

    Looked up once and kept for SLACK_IDENTITY_SECONDS, so a ChatOps request
    costs no Slack call; an admin may also set `user` by hand (then `pinned`).
    """

    slack_user_id = models.CharField(max_length=30, unique=True)
    slack_name = models.CharField(max_length=100, blank=True)
    email = models.EmailField(blank=True, help_text="The e-mail of the Slack profile when last looked up.")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="slack_identities"
    )
    pinned = models.BooleanField(default=False, help_text="Set by an admin: never replaced by a lookup.")
    checked_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "Slack identities"

    def __str__(self) -> str:
        return f"{self.slack_user_id} ({self.slack_name}) → {self.user or 'nobody'}"


class HookDelivery(models.Model):
    """One event for one webhook (the catalog's `webhooks:`), kept until the receiver took it. Writers add
    rows in the transaction of the change they tell; workers send them (notify/hooks_out.py)."""

    class State(models.TextChoices):
        PENDING = "pending", "waiting to be sent"
        DELIVERED = "delivered", "the receiver answered 2xx"
        FAILED = "failed", "given up (the last error says why)"

    delivery_id = models.UUIDField(unique=True, help_text="X-Gantry-Delivery: the same on every retry.")
    environment = models.ForeignKey(Environment, on_delete=models.CASCADE, related_name="+")
    deploy = models.ForeignKey(Deploy, on_delete=models.CASCADE, null=True, blank=True, related_name="+")
    url = models.CharField(max_length=500)
    secret_env = models.CharField(max_length=80)
    event = models.CharField(max_length=40)
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_index=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    last_status = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["state", "next_attempt_at"], name="hook_due")]

    def __str__(self) -> str:
        return f"{self.event} → {self.url} ({self.state})"
