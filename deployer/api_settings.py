"""The REST API's settings (Django REST framework, knox tokens, the OpenAPI schema); settings.py takes them."""

from __future__ import annotations

# The REST API (/api/v1/): tokens or the session, JSON only, errors as {"error": ...}.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "dashboards.api.auth.GantryTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "dashboards.api.auth.TokenScopeAllows",
    ],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser", "rest_framework.parsers.FormParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "dashboards.api.answers.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
# API tokens never expire unless whoever makes one says when (CI jobs hold them); revoke by deleting.
REST_KNOX = {"TOKEN_TTL": None}
KNOX_TOKEN_MODEL = "knox.AuthToken"  # knox's own (personal tokens point at it: deployer.models.PersonalToken)
SPECTACULAR_SETTINGS = {
    "TITLE": "Gantry API",
    "DESCRIPTION": "Everything the pages do: services, environments, branches, builds, deploys and their logs, "
    "plans, history; deploy, promote, approve, reject, answer a paused rollout, cancel, roll back, lock, unlock. "
    "Send a personal token (made on /me/) as `Authorization: Bearer <token>`.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PUBLIC": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "PREPROCESSING_HOOKS": ["dashboards.api.urls.slashed_only"],
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "dashboards.api.urls.readable",
    ],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}
