"""What the commands print: a line or a small table for people, the API's JSON as it is for scripts."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import click

# C0 and C1 control characters but tab: a log line or a commit subject comes from a branch's author, and an
# escape sequence in it would move the cursor, retitle or rewrite the reader's terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f]")


def clean(text: object) -> str:
    """`text` safe to print on a terminal: control characters shown as U+FFFD."""
    return _CONTROL.sub("\ufffd", str(text))


def as_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True))


def table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> None:
    """Columns as wide as their widest cell; the last one is left to run on."""
    cells = [[str(h) for h in headers]] + [["" if c is None else clean(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers) - 1)]
    for n, row in enumerate(cells):
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1]
        click.echo(click.style(line.rstrip(), bold=True) if n == 0 else line.rstrip())


def moment(value: str | None) -> str:
    """An API timestamp in the reader's local time, to the minute."""
    if not value:
        return ""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone().strftime("%Y-%m-%d %H:%M")


def deploy_line(deploy: dict[str, Any]) -> str:
    """e.g. "deploy #12: main (0123456789ab) of app to test, queued"."""
    sha = (deploy.get("sha") or "")[:12]
    said = f"deploy #{deploy['id']}: {deploy['ref']} ({sha}) of {deploy['service']} to {deploy['environment']}"
    return clean(f"{said}, {deploy['status'].replace('_', ' ')}")


def deploy_ending(deploy: dict[str, Any]) -> str:
    took = f" in {deploy['duration_seconds']:.1f} s" if deploy.get("duration_seconds") else ""
    reason = f": {deploy['reason']}" if deploy.get("reason") else ""
    return clean(f"deploy #{deploy['id']} {deploy['status'].replace('_', ' ')}{took}{reason}")


def log_line(line: dict[str, Any]) -> str:
    at = datetime.fromisoformat(line["at"].replace("Z", "+00:00")).astimezone().strftime("%H:%M:%S")
    host = f" [{line['host']}]" if line.get("host") else ""
    return clean(f"{at} {line['level']:<7}{host} {line['message']}")


def plan_text(plan: dict[str, Any]) -> None:
    current = f"#{plan['current_deploy']} ({plan['current_sha'][:12]})" if plan["current_deploy"] else "nothing yet"
    click.echo(clean(f"{plan['service']}/{plan['environment']}: {plan['ref']} ({plan['sha'][:12]}), now {current}"))
    ahead = plan["commits_ahead"]
    if ahead is None:
        click.echo("commits: a worker is still listing them (ask again in a moment)")
    else:
        behind = f", {plan['commits_behind']} taken away" if plan["commits_behind"] else ""
        click.echo(clean(f"commits: {ahead} new{behind}"))
        for commit in plan["commits"][:20]:
            click.echo(clean(f"  {commit['sha'][:12]} {commit['author']}: {commit['subject']}"))
    for migration in plan["migrations"]:
        click.echo(clean(f"migration {migration.get('change', '')} {migration.get('path', '')}"))
    sizes = ", ".join(str(len(batch)) for batch in plan["batches"]) or "no hosts"
    eta = f"~{plan['eta_seconds']} s (from {plan['eta_basis']} deploys)" if plan["eta_seconds"] else "unknown"
    click.echo(clean(f"batches: {sizes}; takes {eta}"))
    for label in ("build", "secrets", "analysis"):
        if plan[label]:
            click.echo(clean(f"{label}: {plan[label]}"))
    if plan["config_changes"]:
        click.echo(clean(f"config changes: {', '.join(plan['config_changes'])}"))
    if plan["checklist"]:
        click.echo(clean("checklist (tick with --tick): " + "; ".join(plan["checklist"])))
    for check in plan["checks"]:
        mark = "ok " if check["ok"] else ("NO " if check["blocking"] else "!  ")
        click.echo(clean(f"  {mark}{check['label']}: {check['detail']}"))
    if plan["needs_confirmation"]:
        click.echo(clean(f"asks for --force: {plan['needs_confirmation']}"))
    click.echo("blocked: a deploy now would be refused" if plan["blocked"] else "allowed now")
