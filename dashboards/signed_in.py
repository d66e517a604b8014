"""The request a page gets: LoginRequiredMiddleware lets only signed-in people through, so its user is a User.

Views that opt out (login_not_required: hooks, /healthz) take a plain HttpRequest.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import HttpRequest


class SignedInRequest(HttpRequest):
    user: User
