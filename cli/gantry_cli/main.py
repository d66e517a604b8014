"""gantry: deploy, plan, roll back, promote, lock and follow deploys from a shell or a CI job.

Every command talks to a Gantry server's REST API with a personal token (see `gantry login`); the server
applies the same rules as its Deploy button. Exit codes: 0 done, 1 the deploy ended otherwise (failed,
rolled back, cancelled, tests failed), 2 Gantry refused the request, 3 --wait timed out (the deploy goes on),
4 Gantry could not be reached or refused the token.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from click.shell_completion import get_completion_class

from gantry_cli.client import EXIT_OK, EXIT_REFUSED, EXIT_UNREACHABLE, Gantry, Stop, refused_unless_ok
from gantry_cli.config import ConfigProblem, Target, target, target_forget, target_save, url_checked
from gantry_cli.follow import follow
from gantry_cli.show import as_json, clean, deploy_line, log_line, moment, plan_text, table

VERSION = "0.1.0"
F = TypeVar("F", bound=Callable[..., Any])

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def output_option(command: F) -> F:
    """-o json: the API's JSON as it is, for scripts (every command)."""
    return click.option(
        "-o",
        "--output",
        type=click.Choice(["text", "json"]),
        default="text",
        show_default=True,
        help="text for people, json for scripts",
    )(command)


def wait_options(command: F) -> F:
    command = click.option(
        "--timeout", type=float, default=3600.0, show_default=True, help="seconds --wait waits at most"
    )(command)
    return click.option("--wait", "-w", is_flag=True, help="print the log as it grows until the deploy ends")(command)


def gantry_call(command: F) -> F:
    """Run the command with a client of the configured server; a Stop ends it with its code and reason."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        try:
            client = Gantry(target(), user_agent=f"gantry-cli/{VERSION}")
            code = command(client, *args, **kwargs)
        except ConfigProblem as exc:
            click.echo(f"gantry: {exc}", err=True)
            sys.exit(EXIT_UNREACHABLE)
        except Stop as exc:
            click.echo(f"gantry: {exc.said}", err=True)
            sys.exit(exc.code)
        sys.exit(code or EXIT_OK)

    return run  # type: ignore[return-value]


def _started(client: Gantry, deploy: dict[str, Any], output: str, wait: bool, timeout: float) -> int:
    """After a request made a deploy: say so, and follow it with --wait."""
    if output == "text":
        click.echo(deploy_line(deploy))
        click.echo(f"  {deploy['url']}")
    elif not wait:
        as_json(deploy)
    return follow(client, deploy, timeout=timeout, json_out=output == "json") if wait else EXIT_OK


def _complete_service(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    try:
        services = Gantry(target(), user_agent="gantry-cli").get("services/", limit=500)["results"]
    except (ConfigProblem, Stop):
        return []
    return [s["name"] for s in services if s["name"].startswith(incomplete)]


def _complete_environment(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    service = ctx.params.get("service")
    if not service:
        return []
    try:
        found = Gantry(target(), user_agent="gantry-cli").get(f"services/{service}/")
    except (ConfigProblem, Stop):
        return []
    return [e["name"] for e in found["environments"] if e["name"].startswith(incomplete)]


SERVICE = click.argument("service", shell_complete=_complete_service)
ENVIRONMENT = click.argument("environment", shell_complete=_complete_environment)


@click.group(context_settings=CONTEXT, epilog="Docs: the server's /api/docs/ page; `gantry COMMAND -h` for one.")
@click.version_option(VERSION, prog_name="gantry")
def cli() -> None:
    """Work with Gantry deploys from the command line.

    \b
    Start with:  gantry login
    Then e.g.:   gantry deploy shop prod v1.4.2 --wait
                 gantry status shop
                 gantry rollback shop prod

    \b
    Exit codes: 0 done, 1 the deploy ended otherwise (failed, rolled back,
    cancelled), 2 Gantry refused the request, 3 --wait timed out (the deploy
    goes on), 4 Gantry could not be reached or refused the token.
    """


@cli.command(short_help="Save the server's URL and your token")
@click.option("--url", help="the Gantry server, e.g. https://gantry.example.com")
@click.option("--with-token", is_flag=True, help="read the token from standard input (for scripts)")
def login(url: str | None, with_token: bool) -> None:
    """Save the server's URL and a personal token (made on the server's /me/ page: works with single sign-on).

    The token is checked against the server, then kept in ~/.config/gantry/config.json (mode 0600).
    GANTRY_URL and GANTRY_TOKEN in the environment win over the file.
    """
    try:
        url = url_checked(url or click.prompt("Gantry URL"))
    except ConfigProblem as exc:
        click.echo(f"gantry: {exc}", err=True)
        sys.exit(EXIT_REFUSED)
    if with_token:
        token = sys.stdin.readline().strip()
    else:
        click.echo(f"Make a personal token on {url}/me/ and paste it here.")
        token = click.prompt("Token", hide_input=True).strip()
    saved = Target(url=url, token=token)
    try:
        me = Gantry(saved, user_agent=f"gantry-cli/{VERSION}").get("me/")
    except Stop as exc:
        click.echo(f"gantry: {exc.said}; nothing was saved", err=True)
        sys.exit(exc.code)
    path = target_save(saved)
    click.echo(f"Signed in to {url} as {me['username']} (saved in {path}).")


@cli.command(short_help="Forget the saved URL and token")
def logout() -> None:
    """Forget the saved URL and token (revoke the token itself on the server's /me/ page)."""
    click.echo("Forgotten." if target_forget() else "Nothing was saved.")


@cli.command(short_help="List services and what runs where")
@output_option
@gantry_call
def services(client: Gantry, output: str) -> int:
    """Every service and what runs in each of its environments."""
    found = client.get("services/", limit=500)["results"]
    if output == "json":
        as_json(found)
        return EXIT_OK
    rows = []
    for service in found:
        for env in service["environments"]:
            state = "locked" if env["locked"] else ("frozen" if env["frozen"] else "")
            current = f"#{env['current_deploy']}" if env["current_deploy"] else "-"
            rows.append((service["name"], env["name"], current, state))
    table(rows, ["SERVICE", "ENVIRONMENT", "RUNNING", "STATE"])
    return EXIT_OK


@cli.command(short_help="Show a service's environments and deploys")
@SERVICE
@click.argument("environment", required=False, shell_complete=_complete_environment)
@output_option
@gantry_call
def status(client: Gantry, service: str, environment: str | None, output: str) -> int:
    """What runs in a service's environments, their locks and freezes, and its last deploys."""
    environments = (
        [client.get(f"services/{service}/{environment}/")]
        if environment
        else [
            client.get(f"services/{service}/{e['name']}/") for e in client.get(f"services/{service}/")["environments"]
        ]
    )
    recent = client.get("deploys/", service=service, environment=environment, limit=5)["results"]
    if output == "json":
        as_json({"environments": environments, "recent_deploys": recent})
        return EXIT_OK
    for env in environments:
        running = next((d for d in recent if d["id"] == env["current_deploy"]), None)
        now = f"#{env['current_deploy']}" if env["current_deploy"] else "nothing deployed yet"
        if running:
            now = f"#{running['id']} {running['ref']} ({running['sha'][:12]}) by {running['requested_by']}"
        click.echo(click.style(f"{service}/{env['name']}", bold=True) + clean(f"  {now}"))
        if env["locked"]:
            click.echo(clean(f"  locked by {env['locked_by']}: {env['lock_reason']}"))
        for freeze in env["freezes"]:
            click.echo(clean(f"  {freeze['summary']}"))
        if env["checklist"]:
            click.echo(clean("  checklist: " + "; ".join(env["checklist"])))
    if recent:
        click.echo()
        rows = [
            (f"#{d['id']}", d["environment"], d["ref"], d["status"], d["requested_by"], moment(d["created_at"]))
            for d in recent
        ]
        table(rows, ["DEPLOY", "ENV", "REF", "STATUS", "BY", "ASKED"])
    return EXIT_OK


@cli.command(short_help="Deploy a branch, tag or sha")
@SERVICE
@ENVIRONMENT
@click.argument("ref")
@click.option("--tick", multiple=True, metavar="ITEM", help="a checklist item ticked (repeat for each)")
@click.option("--force", is_flag=True, help="confirm a schema change the plan asks about (recorded)")
@click.option("--expect-sha", default="", metavar="SHA", help="refuse if REF no longer points at this sha")
@wait_options
@output_option
@gantry_call
def deploy(
    client: Gantry,
    service: str,
    environment: str,
    ref: str,
    tick: tuple[str, ...],
    force: bool,
    expect_sha: str,
    wait: bool,
    timeout: float,
    output: str,
) -> int:
    """Deploy REF (a branch, tag or full sha) of SERVICE to ENVIRONMENT.

    The sha is pinned when Gantry accepts the request. With --wait the log is printed as it grows and the
    exit code says how the deploy ended.
    """
    body = {
        "service": service,
        "environment": environment,
        "ref": ref,
        "checklist": list(tick),
        "force": force,
        "expected_sha": expect_sha,
    }
    made = refused_unless_ok(client.post("deploys/", body))
    return _started(client, made, output, wait, timeout)


@cli.command(short_help="Show what a deploy would do")
@SERVICE
@ENVIRONMENT
@click.argument("ref", required=False, default="")
@click.option("--promote", is_flag=True, help="plan a promotion of what runs in the environment before")
@output_option
@gantry_call
def plan(client: Gantry, service: str, environment: str, ref: str, promote: bool, output: str) -> int:
    """What a deploy of REF (or --promote) would do, and whether the rules allow it now. Changes nothing.

    Exits 0 when a deploy would be allowed now, 2 when a rule would refuse it.
    """
    if not ref and not promote:
        raise click.UsageError("say what to plan: a REF, or --promote")
    found = client.get(f"services/{service}/{environment}/plan/", ref=ref, promote="true" if promote else None)
    if output == "json":
        as_json(found)
    else:
        plan_text(found)
    return EXIT_REFUSED if found["blocked"] else EXIT_OK


@cli.command(short_help="Roll an environment back")
@SERVICE
@ENVIRONMENT
@click.option("--to", "to", type=int, help="the deploy to go back to (default: the release before)")
@click.option("--force", is_flag=True, help="go back across deploys that shipped migrations (recorded)")
@wait_options
@output_option
@gantry_call
def rollback(
    client: Gantry, service: str, environment: str, to: int | None, force: bool, wait: bool, timeout: float, output: str
) -> int:
    """Roll ENVIRONMENT back to a release its hosts keep; it stays locked afterwards until unlocked."""
    body = {"force": force, **({"to": to} if to else {})}
    made = refused_unless_ok(client.post(f"services/{service}/{environment}/rollback/", body))
    return _started(client, made, output, wait, timeout)


@cli.command(short_help="Ship what runs in the environment before")
@SERVICE
@ENVIRONMENT
@click.option("--tick", multiple=True, metavar="ITEM", help="a checklist item ticked (repeat for each)")
@click.option("--expect-sha", default="", metavar="SHA", help="refuse if the environment before now runs another")
@wait_options
@output_option
@gantry_call
def promote(
    client: Gantry,
    service: str,
    environment: str,
    tick: tuple[str, ...],
    expect_sha: str,
    wait: bool,
    timeout: float,
    output: str,
) -> int:
    """Deploy to ENVIRONMENT exactly what runs in the environment before it (test → prod)."""
    body = {"checklist": list(tick), "expected_sha": expect_sha}
    made = refused_unless_ok(client.post(f"services/{service}/{environment}/promote/", body))
    return _started(client, made, output, wait, timeout)


@cli.command(short_help="Lock an environment")
@SERVICE
@ENVIRONMENT
@click.option("--reason", "-r", required=True, help="why (shown to whoever tries to deploy)")
@click.option("--hours", type=int, default=0, help="unlock by itself after this many hours (0: never)")
@output_option
@gantry_call
def lock(client: Gantry, service: str, environment: str, reason: str, hours: int, output: str) -> int:
    """Lock ENVIRONMENT: no deploys (rollbacks still go) until it is unlocked."""
    found = refused_unless_ok(
        client.post(f"services/{service}/{environment}/lock/", {"reason": reason, "hours": hours})
    )
    if output == "json":
        as_json(found)
    else:
        click.echo(f"Locked {service}/{environment}.")
    return EXIT_OK


@cli.command(short_help="Unlock an environment")
@SERVICE
@ENVIRONMENT
@click.option("--reason", "-r", default="", help="why (recorded)")
@output_option
@gantry_call
def unlock(client: Gantry, service: str, environment: str, reason: str, output: str) -> int:
    """Unlock ENVIRONMENT."""
    found = refused_unless_ok(client.post(f"services/{service}/{environment}/unlock/", {"reason": reason}))
    if output == "json":
        as_json(found)
    else:
        click.echo(f"Unlocked {service}/{environment}.")
    return EXIT_OK


def _deploy_action(client: Gantry, deploy_id: int, verb: str, body: dict[str, Any], output: str) -> int:
    found = refused_unless_ok(client.post(f"deploys/{deploy_id}/{verb}/", body))
    if output == "json":
        as_json(found)
    else:
        click.echo(deploy_line(found))
    return EXIT_OK


@cli.command(short_help="Approve a deploy")
@click.argument("deploy_id", type=int, metavar="DEPLOY")
@output_option
@gantry_call
def approve(client: Gantry, deploy_id: int, output: str) -> int:
    """Approve a deploy awaiting approval (someone other than who asked for it)."""
    return _deploy_action(client, deploy_id, "approve", {}, output)


@cli.command(short_help="Reject a deploy")
@click.argument("deploy_id", type=int, metavar="DEPLOY")
@click.option("--reason", "-r", default="", help="told to whoever asked for it")
@output_option
@gantry_call
def reject(client: Gantry, deploy_id: int, reason: str, output: str) -> int:
    """Reject a deploy awaiting approval."""
    return _deploy_action(client, deploy_id, "reject", {"reason": reason}, output)


@cli.command(short_help="Cancel a deploy")
@click.argument("deploy_id", type=int, metavar="DEPLOY")
@click.option("--stop", is_flag=True, help="stop the commands running on hosts now (nothing is rolled back)")
@output_option
@gantry_call
def cancel(client: Gantry, deploy_id: int, stop: bool, output: str) -> int:
    """Cancel a deploy: at once if it has not started, else between batches (or --stop now)."""
    return _deploy_action(client, deploy_id, "cancel", {"stop": stop}, output)


@cli.command(short_help="Answer a paused rollout")
@click.argument("deploy_id", type=int, metavar="DEPLOY")
@click.argument("choice", type=click.Choice(["retry", "skip", "abort"]))
@output_option
@gantry_call
def decide(client: Gantry, deploy_id: int, choice: str, output: str) -> int:
    """Answer a paused rollout: retry (look again), skip (go on), or abort and roll back."""
    return _deploy_action(client, deploy_id, "decide", {"choice": choice}, output)


@cli.command(short_help="Print (or follow) a deploy's log")
@click.argument("deploy_id", type=int, metavar="DEPLOY")
@click.option("--follow", "-f", is_flag=True, help="keep printing until the deploy ends")
@click.option("--timeout", type=float, default=3600.0, show_default=True, help="seconds --follow waits at most")
@output_option
@gantry_call
def log(client: Gantry, deploy_id: int, follow: bool, timeout: float, output: str) -> int:
    """Print a deploy's log (-f: as it grows, then exit as --wait does)."""
    found = client.get(f"deploys/{deploy_id}/")
    if follow:
        return _follow(client, found, timeout, output)
    lines, since = [], 0
    while True:
        page = client.get(f"deploys/{deploy_id}/log/", since=since, limit=1000)
        lines += page["lines"]
        since = page["next"]
        if not page["more"]:
            break
    if output == "json":
        as_json(lines)
    else:
        for line in lines:
            click.echo(log_line(line))
    return EXIT_OK


def _follow(client: Gantry, deploy: dict[str, Any], timeout: float, output: str) -> int:
    return follow(client, deploy, timeout=timeout, json_out=output == "json")


@cli.command(short_help="Show one deploy")
@click.argument("deploy_id", type=int, metavar="DEPLOY")
@output_option
@gantry_call
def show(client: Gantry, deploy_id: int, output: str) -> int:
    """One deploy: its state, who asked, when, and why it ended."""
    found = client.get(f"deploys/{deploy_id}/")
    if output == "json":
        as_json(found)
        return EXIT_OK
    click.echo(deploy_line(found))
    click.echo(f"  asked by {found['requested_by'] or 'Gantry'} at {moment(found['created_at'])} ({found['trigger']})")
    if found["reason"]:
        click.echo(clean(f"  {found['reason']}"))
    if found["waiting_for_decision"]:
        click.echo(clean(f"  paused: {found['waiting_for_decision']} (gantry decide {found['id']} retry|skip|abort)"))
    click.echo(f"  {found['url']}")
    return EXIT_OK


@cli.command(short_help="Search the audit history")
@click.option("--service", "-s", help="only this service")
@click.option("--env", "-e", "environment", help="only this environment")
@click.option("--user", "-u", help="only what this person did")
@click.option("--action", "-a", help="e.g. deployed, locked, rolled_back, approved")
@click.option("--outcome", help="e.g. succeeded, failed, rolled_back")
@click.option("--since", metavar="YYYY-MM-DD", help="from this day")
@click.option("--until", metavar="YYYY-MM-DD", help="to this day")
@click.option("--limit", "-L", type=click.IntRange(1, 500), default=30, show_default=True)
@output_option
@gantry_call
def history(
    client: Gantry,
    service: str | None,
    environment: str | None,
    user: str | None,
    action: str | None,
    outcome: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    output: str,
) -> int:
    """Who did what, where, and how it ended (the audit log, newest first)."""
    params = {"service": service, "environment": environment, "user": user, "action": action}
    found = client.get("history/", **params, outcome=outcome, since=since, until=until, limit=limit)["results"]
    if output == "json":
        as_json(found)
        return EXIT_OK
    rows = [
        (
            moment(e["at"]),
            e["who"],
            e["action"],
            f"{e['service']}/{e['environment']}".strip("/"),
            e["ref"],
            e["outcome"],
            e["detail"][:80],
        )
        for e in found
    ]
    table(rows, ["AT", "WHO", "ACTION", "WHERE", "REF", "OUTCOME", "DETAIL"])
    return EXIT_OK


@cli.command(short_help="Sync a service's branches, tags and builds now")
@SERVICE
@output_option
@gantry_call
def refresh(client: Gantry, service: str, output: str) -> int:
    """Ask Gantry to sync SERVICE's branches, tags and builds now (a just-pushed branch or tag)."""
    found = refused_unless_ok(client.post(f"services/{service}/refresh/"))
    if output == "json":
        as_json(found)
    else:
        click.echo(clean(found["said"][:1].upper() + found["said"][1:] + "."))
    return EXIT_OK


@cli.group(short_help="Run API test suites")
def tests() -> None:
    """The environments' API test suites."""


@tests.command("run", short_help="Run an environment's API tests now")
@SERVICE
@ENVIRONMENT
@output_option
@gantry_call
def tests_run(client: Gantry, service: str, environment: str, output: str) -> int:
    """Run ENVIRONMENT's API test suites now (results on the service page and in Slack)."""
    found = refused_unless_ok(client.post(f"services/{service}/{environment}/api-tests/"))
    if output == "json":
        as_json(found)
    else:
        click.echo(found["said"][:1].upper() + found["said"][1:] + ".")
    return EXIT_OK


@cli.command(short_help="Print shell completion")
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print shell completion for SHELL (commands, options, and service and environment names).

    \b
    bash:  eval "$(gantry completion bash)"   (in ~/.bashrc)
    zsh:   eval "$(gantry completion zsh)"    (in ~/.zshrc)
    fish:  gantry completion fish > ~/.config/fish/completions/gantry.fish
    """
    completer = get_completion_class(shell)
    assert completer is not None  # (the three shells click knows)
    click.echo(completer(cli, {}, "gantry", "_GANTRY_COMPLETE").source())
