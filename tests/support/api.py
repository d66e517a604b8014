"""The REST API as a token holder calls it."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.test import Client
from knox.models import AuthToken


def post(client: Client, url: str, body: dict[str, Any] | None = None) -> Any:
    return client.post(url, body or {}, content_type="application/json")


def api(user: AbstractBaseUser | None = None) -> Client:
    """A client that authenticates with the user's API token (no session, no CSRF)."""
    if user is None:
        return Client()
    key = AuthToken.objects.create(user=user)[1]
    return Client(headers={"Authorization": f"Token {key}"})
