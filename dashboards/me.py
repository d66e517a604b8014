"""A person's own page: their personal API tokens (made here, shown once; listed, revoked here).
deployer/environments/api_tokens.py decides and audits."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from dashboards.signed_in import SignedInRequest
from dashboards.views import form_error
from deployer.choices import TokenScope
from deployer.environments.api_tokens import EXPIRY_DAYS, legacy_until, token_create, token_revoke, tokens_of
from deployer.errors import DeployRefused


class TokenForm(forms.Form):
    name = forms.CharField(max_length=100, strip=True, error_messages={"required": "name the token"})
    scope = forms.ChoiceField(choices=TokenScope.choices)
    targets = forms.CharField(required=False, max_length=2000, help_text="service or service/environment, by commas")
    days = forms.TypedChoiceField(choices=[(d, f"{d} days") for d in EXPIRY_DAYS], coerce=int, initial=90)


@require_GET
def me_page(request: SignedInRequest) -> HttpResponse:
    return _page(request)


def _page(request: SignedInRequest, *, form: TokenForm | None = None, error: str = "", made: str = "") -> HttpResponse:
    personal, legacy = tokens_of(request.user)
    context = {
        "form": form or TokenForm(),
        "personal": personal,
        "legacy": legacy,
        "legacy_until": legacy_until(),
        "error": error,
        "made": made,  # the new token's text: this answer is the only time it is shown
    }
    return render(request, "dashboards/me.html", context, status=400 if error else 200)


@require_POST
def token_create_view(request: SignedInRequest) -> HttpResponse:
    form = TokenForm(request.POST)
    if not form.is_valid():
        return _page(request, form=form, error=form_error(form))
    data = form.cleaned_data
    try:
        _, text = token_create(
            request.user,
            name=data["name"],
            scope=data["scope"],
            targets=data["targets"].split(","),
            days=data["days"],
        )
    except DeployRefused as exc:
        return _page(request, form=form, error=str(exc))
    response = _page(request, made=text)
    response["Cache-Control"] = "no-store"  # the token is in this page: no cache keeps it
    return response


@require_POST
def token_revoke_view(request: SignedInRequest, key: str) -> HttpResponse:
    try:
        messages.info(request, f"{token_revoke(request.user, key)} (recorded in the audit log).")
    except DeployRefused as exc:
        messages.error(request, str(exc))
    return redirect("me")
