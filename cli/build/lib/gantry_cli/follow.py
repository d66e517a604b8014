"""`--wait`: follow a deploy's log as it grows (the API's `since=` cursor) until it ends, and say how."""

from __future__ import annotations

import time
from typing import Any

import click

from gantry_cli.client import EXIT_ENDED_BADLY, EXIT_OK, EXIT_TIMEOUT, EXIT_UNREACHABLE, Gantry, Stop
from gantry_cli.show import as_json, clean, deploy_ending, log_line

POLL_SECONDS = 1.0


def follow(gantry: Gantry, deploy: dict[str, Any], *, timeout: float, json_out: bool) -> int:
    """Print the log until the deploy ends (or `timeout` passes: it goes on); the exit code says how it went.
    Gantry unreachable for a while (a restart) is waited out until the timeout."""
    deadline = time.monotonic() + timeout
    since, told_pause, told_gone = 0, "", False
    while True:
        try:
            page = gantry.get(f"deploys/{deploy['id']}/log/", since=since, limit=500)
        except Stop as exc:
            if exc.code != EXIT_UNREACHABLE or time.monotonic() > deadline:
                raise
            if not told_gone:
                click.echo(f"{exc.said}; trying again until the timeout", err=True)
                told_gone = True
            time.sleep(POLL_SECONDS)
            continue
        told_gone = False
        deploy = page["deploy"]
        if not json_out:
            for line in page["lines"]:
                click.echo(log_line(line))
        since = page["next"]
        paused = deploy.get("waiting_for_decision", "")
        if paused and paused != told_pause and not json_out:
            click.echo(clean(f"paused: {paused}; answer with: gantry decide {deploy['id']} retry|skip|abort"), err=True)
        told_pause = paused
        if deploy["finished"] and not page["more"]:
            return _ended(deploy, json_out)
        if time.monotonic() > deadline:
            click.echo(f"still {deploy['status']} after {timeout:.0f} s; it goes on (deploy #{deploy['id']})", err=True)
            return EXIT_TIMEOUT
        if not page["more"]:
            time.sleep(POLL_SECONDS)


def _ended(deploy: dict[str, Any], json_out: bool) -> int:
    if json_out:
        as_json(deploy)
    elif deploy["status"] == "succeeded":
        click.echo(click.style(deploy_ending(deploy), fg="green"))
    else:
        click.echo(click.style(deploy_ending(deploy), fg="red"), err=True)
    return EXIT_OK if deploy["status"] == "succeeded" else EXIT_ENDED_BADLY
