"""The history page: the audit log, filtered by what people pick, paged, and exported as CSV.

The filters live in the URL (a filtered view is a link to share), and the CSV
export takes the same parameters, so it holds exactly the rows the page shows
(all pages of them). Rows come from AuditEntry alone: an entry keeps the names
and shas it was written with, so history outlives deleted services and users.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any

import django_filters
from django import forms
from django.conf import settings
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET

from deployer.choices import AuditAction, DeployStatus
from deployer.models import AuditEntry, Deploy, Service

PAGE_SIZE = 50
CSV_COLUMNS = (
    "at",
    "who",
    "action",
    "team",
    "service",
    "environment",
    "deploy",
    "trigger",
    "ref",
    "sha",
    "previous_sha",
    "outcome",
    "duration_seconds",
    "detail",
    "link",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet would run these as formulas


def _distinct(field: str) -> Any:
    """Choices for a filter: the values the audit log holds (deleted services included)."""

    def choices() -> list[tuple[str, str]]:
        values = AuditEntry.objects.exclude(**{field: ""}).order_by(field).values_list(field, flat=True).distinct()
        return [(value, value) for value in values]

    return choices


class HistoryFilter(django_filters.FilterSet):
    service = django_filters.ChoiceFilter(choices=_distinct("service"), empty_label="any service")
    team = django_filters.ChoiceFilter(choices=_distinct("team"), empty_label="any team")
    environment = django_filters.ChoiceFilter(choices=_distinct("environment"), empty_label="any environment")
    user = django_filters.ChoiceFilter(field_name="actor_name", choices=_distinct("actor_name"), empty_label="anyone")
    action = django_filters.ChoiceFilter(choices=AuditAction.choices, empty_label="any action")
    outcome = django_filters.ChoiceFilter(
        choices=[(s.value, s.label) for s in DeployStatus if s in DeployStatus.finished()], empty_label="any outcome"
    )
    since = django_filters.DateFilter(
        field_name="at", lookup_expr="date__gte", widget=forms.DateInput(attrs={"type": "date"})
    )
    until = django_filters.DateFilter(
        field_name="at", lookup_expr="date__lte", widget=forms.DateInput(attrs={"type": "date"})
    )

    class Meta:
        model = AuditEntry
        fields: list[str] = []

    def is_valid(self) -> bool:
        valid = super().is_valid()
        since, until = self.form.cleaned_data.get("since"), self.form.cleaned_data.get("until")
        if valid and since and until and since > until:
            self.form.add_error("until", f"'until' ({until}) is before 'since' ({since}); swap them")
            return False
        return valid


def history_filter(params: Any) -> HistoryFilter:
    return HistoryFilter(params, queryset=AuditEntry.objects.order_by("-at", "-id"))


def problems(history: HistoryFilter) -> str:
    """What is wrong with the filters, for a person: 'outcome: Select a valid choice…'."""
    return "; ".join(
        f"{name}: {' '.join(str(error) for error in errors)}" for name, errors in history.form.errors.items()
    )


def csv_rows(entries: QuerySet[AuditEntry]) -> Iterator[list[str]]:
    yield list(CSV_COLUMNS)
    base = settings.GANTRY_BASE_URL
    for entry in entries.iterator(chunk_size=2000):
        link = base + reverse("deploy", args=[entry.deploy_id]) if entry.deploy_id else ""
        duration = "" if entry.duration_seconds is None else f"{entry.duration_seconds:.1f}"
        row = [
            entry.at.isoformat(),
            entry.actor_name,
            entry.action,
            entry.team,
            entry.service,
            entry.environment,
            str(entry.deploy_id or ""),
            entry.trigger,
            entry.ref,
            entry.sha,
            entry.previous_sha,
            entry.outcome,
            duration,
            entry.detail,
            link,
        ]
        yield [_cell(value) for value in row]


def _cell(value: str) -> str:
    """Text a spreadsheet shows as text: a leading =, +, -, @ would make it a formula (CSV injection)."""
    return "'" + value if value.startswith(_FORMULA_START) else value


class _Echo:
    """csv.writer needs a file; this one hands each line back for streaming."""

    def write(self, line: str) -> str:
        return line


def csv_lines(rows: Iterable[list[str]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    for row in rows:
        yield writer.writerow(row)


@require_GET
def history_page(request: HttpRequest) -> HttpResponse:
    found = history_filter(request.GET)
    valid = found.is_valid()
    entries = found.qs if valid else AuditEntry.objects.none()
    page = Paginator(entries, PAGE_SIZE).get_page(request.GET.get("page"))
    rows = list(page.object_list)
    # Link only what still exists (entries outlive deploys and services).
    live_deploys = set(
        Deploy.objects.filter(pk__in={e.deploy_id for e in rows if e.deploy_id}).values_list("pk", flat=True)
    )
    live_services = set(Service.objects.filter(name__in={e.service for e in rows}).values_list("name", flat=True))
    context = {
        "filter": found,
        "page": page,
        "error": "" if valid else problems(found),
        "live_deploys": live_deploys,
        "live_services": live_services,
    }
    return render(request, "dashboards/history.html", context, status=200 if valid else 400)


@require_GET
def history_csv(request: HttpRequest) -> HttpResponse | StreamingHttpResponse:
    """Every entry the same filters select (not only one page), streamed."""
    found = history_filter(request.GET)
    if not found.is_valid():
        return HttpResponse(problems(found), status=400, content_type="text/plain; charset=utf-8")
    response = StreamingHttpResponse(csv_lines(csv_rows(found.qs)), content_type="text/csv; charset=utf-8")
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="gantry-history-{stamp}.csv"'
    return response
