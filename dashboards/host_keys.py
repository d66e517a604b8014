"""Trusting a host's new key from its service's page: a person who may deploy to every environment of the
host types the fingerprint its owner reads to them (deployer/environments/host_keys.py checks and audits)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from dashboards.signed_in import SignedInRequest
from dashboards.views import form_error, service_page
from deployer.environments.host_keys import host_key_retrust
from deployer.errors import DeployRefused
from deployer.models import Service


class HostKeyTrustForm(forms.Form):
    name = forms.CharField(max_length=300, help_text='The host as known_hosts names it: "10.0.0.5" or "[h]:2222".')
    fingerprint = forms.CharField(max_length=100, strip=True, error_messages={"required": "type the fingerprint"})


@require_POST
def host_key_trust_view(request: SignedInRequest, name: str) -> HttpResponse:
    service = get_object_or_404(Service, name=name)
    form = HostKeyTrustForm(request.POST)
    if not form.is_valid():
        return service_page(request, service, error=form_error(form), status=400)
    try:
        done = host_key_retrust(
            name=form.cleaned_data["name"], fingerprint=form.cleaned_data["fingerprint"], user=request.user
        )
    except DeployRefused as exc:
        return service_page(request, service, error=str(exc), status=exc.status_code)
    messages.info(request, f"{done} (recorded in the audit log).")
    return redirect("service", name=service.name)
