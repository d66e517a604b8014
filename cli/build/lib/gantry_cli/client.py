"""Talking to Gantry's REST API: one session with the token, answers as values, and the exit codes the
command ends with when a request does not go through."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import click
import requests

from gantry_cli.config import Target
from gantry_cli.show import clean

EXIT_OK, EXIT_ENDED_BADLY, EXIT_REFUSED, EXIT_TIMEOUT, EXIT_UNREACHABLE = 0, 1, 2, 3, 4
TIMEOUT = (5.0, 30.0)  # connect, read (seconds)


class Stop(Exception):
    """The command cannot go on: `said` for the person, `code` for the shell."""

    def __init__(self, said: str, code: int) -> None:
        super().__init__(said)
        self.said = said
        self.code = code


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any  # the JSON Gantry answered (a dict or a list)

    @property
    def error(self) -> str:
        return str(self.body.get("error", "")) if isinstance(self.body, dict) else ""


class Gantry:
    def __init__(self, target: Target, user_agent: str) -> None:
        self.url = target.url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {target.token}"
        self.session.headers["User-Agent"] = user_agent
        self.session.headers["Accept"] = "application/json"

    def call(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None) -> Answer:
        """One request; Stop when Gantry cannot be reached, refuses the token or breaks."""
        url = f"{self.url}/api/v1/{path.lstrip('/')}"
        try:
            response = self.session.request(method, url, params=params, json=body, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise Stop(f"cannot reach Gantry at {self.url}: {_reason(exc)}", EXIT_UNREACHABLE) from exc
        try:
            answer = Answer(response.status_code, response.json())
        except ValueError:
            answer = Answer(response.status_code, {"error": response.text[:300].strip()})
        if response.status_code == 401:
            raise Stop(
                f"Gantry at {self.url} refused the token: {answer.error}; run gantry login with a token from /me/",
                EXIT_UNREACHABLE,
            )
        if response.status_code >= 500 and response.status_code != 503:
            raise Stop(f"Gantry at {self.url} answered {response.status_code}: {clean(answer.error)}", EXIT_UNREACHABLE)
        return answer

    def get(self, path: str, **params: Any) -> Any:
        return _ok(self.call("GET", path, params={k: v for k, v in params.items() if v not in (None, "")}))

    def post(self, path: str, body: dict[str, Any] | None = None) -> Answer:
        return self.call("POST", path, body=body or {})


def _ok(answer: Answer) -> Any:
    if answer.status >= 400:
        raise Stop(clean(answer.error) or f"Gantry answered {answer.status}", EXIT_REFUSED)
    return answer.body


def refused_unless_ok(answer: Answer) -> Any:
    """The body of an answer that went through; Stop (exit 2) with Gantry's reason otherwise. A 503 whose
    deploy was recorded goes through: it starts when Gantry's queue is back."""
    if answer.status == 503 and isinstance(answer.body, dict) and "deploy" in answer.body:
        click.echo(f"warning: {clean(answer.error)}", err=True)  # recorded: it starts when the queue is back
        return answer.body["deploy"]
    return _ok(answer)


def _reason(exc: requests.RequestException) -> str:
    """The innermost cause, not urllib3's wrapping ("Connection refused", "timed out")."""
    cause: BaseException = exc
    while cause.__context__ is not None and len(str(cause.__context__)) < len(str(cause)):
        cause = cause.__context__
    return str(cause) or type(exc).__name__
