"""The services matrix as HTML rows, and its short-lived cache.

At 500 services the matrix has 1,500 cells. Django's template engine needs
~100 ms for that many cells, and format_html ~60 ms; f-strings with every
interpolated value passed through html.escape take a few ms. Each row is
marked safe once, after all its values were escaped. The page around it stays
a template. Measured by bench/scale.py.

The rendered rows are cached for at most GANTRY_MATRIX_CACHE_SECONDS, under a
key holding the services generation: whatever changes what the matrix shows
bumps it (deployer.lib.generations), so no process serves a stale matrix.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from html import escape

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe

from dashboards.templatetags.gantry import age
from deployer.choices import BuildResult
from deployer.lib import generations
from deployer.selectors import DeploySummary, Matrix, MatrixCell, MatrixRow

_BUILD_STYLE = {result.value: (result.colour, result.label) for result in BuildResult}
_RED = {BuildResult.FAILURE.value, BuildResult.UNSTABLE.value}


class _Urls:
    """reverse() once per kind of link, then fill in (escaped) names; reverse() per cell is slow."""

    def __init__(self) -> None:
        self.service = reverse("service", args=["SERVICE"])
        self.promote = reverse("deploy-plan", args=["SERVICE", "ENV"]) + "?promote=1"
        self.deploy = reverse("deploy", args=[999999999])

    def for_service(self, name: str) -> str:
        return escape(self.service.replace("SERVICE", name))

    def for_promote(self, name: str, environment: str) -> str:
        return escape(self.promote.replace("SERVICE", name).replace("ENV", environment))

    def for_deploy(self, pk: int) -> str:
        return self.deploy.replace("999999999", str(int(pk)))


def matrix_rows(matrix: Matrix) -> list[SafeString]:
    urls, now = _Urls(), timezone.now()
    return [_row(row, urls, now) for row in matrix.rows]


def _row(row: MatrixRow, urls: _Urls, now: datetime) -> SafeString:
    name = escape(row.service)
    cells = "".join(f'<td class="cell">{_cell(c, row.service, urls, now)}</td>' for c in row.cells)
    team = escape(row.team or "—")
    html = f'<tr data-service="{name}" data-states="{" ".join(_states(row))}">'
    html += f'<td><a href="{urls.for_service(row.service)}"><strong>{name}</strong></a>'
    if row.budget:
        colour = "red" if row.budget_bad else "grey"
        html += f' <span class="badge badge-{colour}" data-budget title="error budget">{escape(row.budget)}</span>'
    html += "</td>"
    return mark_safe(f"{html}<td>{team}</td>{cells}</tr>")  # every value above went through escape()


def _states(row: MatrixRow) -> list[str]:
    """What the services page's state filter matches a row by (static/js/gantry.js)."""
    cells = [cell for cell in row.cells if cell is not None]
    found = {
        "deploying": any(cell.active for cell in cells),
        "locked": any(cell.lock or cell.freeze for cell in cells),
        "drifted": any(cell.ahead_of_next or cell.promote_from or cell.behind for cell in cells),
        "failing": row.budget_bad or any(cell.build and cell.build.result in _RED for cell in cells),
    }
    return [state for state, on in found.items() if on]


def _cell(cell: MatrixCell | None, service: str, urls: _Urls, now: datetime) -> str:
    if cell is None:
        return ""
    html = _current(cell.current, now)
    if cell.build:
        colour, label = _BUILD_STYLE[cell.build.result]
        html += f' <span class="badge badge-{colour}" title="build #{int(cell.build.number)}">{escape(label)}</span>'
    if cell.ahead_of_next:
        ahead = f"{int(cell.ahead_of_next)} ahead of {escape(cell.next_name)}"
        html += f' <span class="badge badge-amber">{ahead}</span>'
    if cell.lock:
        html += f' <span class="badge badge-red" data-locked title="{escape(cell.lock)}">locked</span>'
    if cell.freeze:
        html += f' <span class="badge badge-red" data-frozen title="{escape(cell.freeze)}">frozen</span>'
    if cell.behind:
        hosts, count = escape(", ".join(cell.behind)), len(cell.behind)
        html += f' <span class="badge badge-amber" data-behind title="not on this release: {hosts}">'
        html += f"{count} behind</span>"
    if cell.lease:
        html += f' <span class="badge badge-blue" data-leased title="leased by {escape(cell.lease)}">leased</span>'
    if cell.active:
        label = f"{escape(cell.active.status)} #{int(cell.active.pk)}"
        html += f' <a href="{urls.for_deploy(cell.active.pk)}"><span class="badge badge-blue">{label}</span></a>'
    elif cell.promote_from and not cell.lock:
        action = urls.for_promote(service, cell.environment)
        source = escape(cell.promote_from)
        html += f' <a class="button small" data-promote href="{action}">Promote from {source}…</a>'
    return html


def _current(deploy: DeploySummary | None, now: datetime) -> str:
    if deploy is None:
        return '<span class="muted">—</span>'
    sha = escape(deploy.sha)
    who = escape(deploy.requested_by or "Gantry")
    return (
        f'<div><code title="{sha}">{sha[:8]}</code> {escape(deploy.ref)}</div>'
        f'<div class="muted small">{age(deploy.finished_at, now)} by {who}</div>'
    )


def cache_key(team: str, query: str, first_teams: frozenset[int], page: int | None) -> str:
    """`page` None is the whole matrix; whose teams come first is part of what a page shows."""
    mine = ",".join(str(t) for t in sorted(first_teams))
    digest = hashlib.sha256(f"{team}\0{query}\0{mine}\0{page}".encode()).hexdigest()[:16]
    return f"gantry:matrix:{generations.current(generations.SERVICES)}:{digest}"


@dataclass(frozen=True)
class Paging:
    total: int
    first: int  # 1-based position of the first service shown (0 when none)
    last: int
    page: int
    previous: int | None
    next: int | None
    show_all: bool


def services_paging(total: int, page: int, size: int, *, show_all: bool) -> Paging:
    """Where a page of the services list is in the whole; a page past the end shows none and links back."""
    if show_all:
        return Paging(total, 1 if total else 0, total, 1, None, None, show_all=True)
    first = (page - 1) * size + 1
    last = min(page * size, total)
    pages = max(1, -(-total // size))
    return Paging(
        total,
        first if first <= total else 0,
        last if first <= total else 0,
        page,
        min(page - 1, pages) if page > 1 else None,
        page + 1 if page < pages else None,
        show_all=False,
    )


def cache_enabled() -> bool:
    return settings.MATRIX_CACHE_SECONDS > 0
