"""What every page's template may use besides the request: Gantry's version (the footer)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

from deployer.environments.github_sign_in import github_enabled
from deployer.environments.team_identity import oidc_enabled
from deployer.version import VERSION


def gantry(request: HttpRequest) -> dict[str, str | bool]:
    return {
        "gantry_version": VERSION,
        "sso_name": settings.OIDC_PROVIDER_NAME if oidc_enabled() else "",
        "github_sign_in": github_enabled(),
        "passwords_off": not settings.LOCAL_PASSWORDS,
    }
