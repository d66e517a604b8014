"""Who is signing in from where, for the sign-in lockout (django-axes, configured in settings).

The client's address is REMOTE_ADDR unless GANTRY_PROXY_COUNT says proxies
stand in front: then it is the address the outermost trusted proxy saw, counted
from the right of X-Forwarded-For. Entries left of that are the client's own
words and never trusted (a forged header must not buy fresh attempts).
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str:
    remote = str(request.META.get("REMOTE_ADDR", ""))
    count = settings.PROXY_COUNT
    if count <= 0:
        return remote
    hops = [hop.strip() for hop in str(request.META.get("HTTP_X_FORWARDED_FOR", "")).split(",") if hop.strip()]
    return hops[-count] if len(hops) >= count else remote
