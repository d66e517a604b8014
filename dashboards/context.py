"""What every page's template may use besides the request: Gantry's version (the footer)."""

from __future__ import annotations

from django.http import HttpRequest

from deployer.version import VERSION


def gantry(request: HttpRequest) -> dict[str, str]:
    return {"gantry_version": VERSION}
