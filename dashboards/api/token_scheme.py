"""How the OpenAPI schema tells clients to send a token (drf-spectacular knows knox's own class only)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class GantryTokenScheme(OpenApiAuthenticationExtension):
    target_class = "dashboards.api.auth.GantryTokenAuthentication"
    name = "gantryToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "A personal token (made on your page, /me/): Authorization: Bearer gantry_... . Legacy tokens "
                "(Token ...) work until GANTRY_LEGACY_TOKENS_UNTIL."
            ),
        }
