"""The delivery metrics page: DORA figures and their charts, per team, service or overall."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from deployer.delivery.dora import Figures, Scope, figures
from deployer.deploys.error_budget import budget_badges
from deployer.models import Service, Team

DEFAULT_DAYS = 30
MAX_DAYS = 400


class ScopeForm(forms.Form):
    team = forms.ChoiceField(required=False)
    service = forms.ChoiceField(required=False)
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        teams = Team.objects.order_by("name").values_list("name", flat=True)
        services = Service.objects.order_by("name").values_list("name", flat=True)
        self._choices("team", [("", "every team"), *((t, t) for t in teams)])
        self._choices("service", [("", "every service"), *((s, s) for s in services)])

    def _choices(self, name: str, choices: list[tuple[str, str]]) -> None:
        field = self.fields[name]
        assert isinstance(field, forms.ChoiceField)
        field.choices = choices

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        today = timezone.localdate()
        until = data.get("until") or today
        since = data.get("since") or until - timedelta(days=DEFAULT_DAYS - 1)
        if since > until:
            raise forms.ValidationError(f"'since' ({since}) is after 'until' ({until}); swap them")
        if (until - since).days + 1 > MAX_DAYS:
            raise forms.ValidationError(f"pick at most {MAX_DAYS} days; this range has {(until - since).days + 1}")
        data["since"], data["until"] = since, until
        return data


@require_GET
def delivery(request: HttpRequest) -> HttpResponse:
    form = ScopeForm(request.GET)
    if not form.is_valid():
        error = "; ".join(" ".join(str(e) for e in errors) for errors in form.errors.values())
        return render(request, "dashboards/delivery.html", {"form": form, "error": error}, status=400)
    data = form.cleaned_data
    scope = Scope(since=data["since"], until=data["until"], team=data["team"], service=data["service"])
    shown = QueryDict(mutable=True)  # show the range used, defaults included
    shown.update(form.data)
    shown["since"], shown["until"] = scope.since.isoformat(), scope.until.isoformat()
    form.data = shown
    found = figures(scope)
    chart_list = [
        ("per_day", "Deploys per day", "Day", found.per_day),
        ("per_week", "Deploys per week", "Week of", found.per_week),
        ("by_weekday", "Deploys by weekday", "Weekday", found.by_weekday),
        ("by_hour", "Deploys by hour of the day", "Hour", found.by_hour),
    ]
    context = {
        "form": form,
        "figures": found,
        "charts": _charts(found),
        "chart_list": chart_list,
        "budgets": _budgets(scope),
    }
    return render(request, "dashboards/delivery.html", context)


def _budgets(scope: Scope) -> list[tuple[str, str, bool]]:
    """The error budget of each service in scope that declares an SLO, as it stands now: (service, text, bad)."""
    services = Service.objects.exclude(slo={})
    if scope.team:
        services = services.filter(team__name=scope.team)
    if scope.service:
        services = services.filter(name=scope.service)
    names = dict(services.values_list("pk", "name"))
    badges = budget_badges(list(names))
    return [(names[pk], *badges.get(pk, ("not read yet", False))) for pk in sorted(names, key=names.__getitem__)]


def _charts(found: Figures) -> dict[str, Any]:
    """What static/js/delivery.js draws (each chart's table on the page holds the same numbers)."""
    return {
        "per_day": {"labels": [d.isoformat() for d, _ in found.per_day], "values": [n for _, n in found.per_day]},
        "per_week": {"labels": [d.isoformat() for d, _ in found.per_week], "values": [n for _, n in found.per_week]},
        "by_weekday": {"labels": [d for d, _ in found.by_weekday], "values": [n for _, n in found.by_weekday]},
        "by_hour": {"labels": [f"{h:02d}" for h, _ in found.by_hour], "values": [n for _, n in found.by_hour]},
    }
