"""Which deploy a log line is about, on every line of every logger.

A context variable holds the deploy being worked on (set around running,
publishing or announcing a deploy, and by the web middleware for deploy
pages); a filter on the handler stamps it onto each record as `deploy_id`
("-" when none), so the plain and JSON formats can both print it and
`grep deploy=42` finds everything about deploy 42, from any module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, copy_context
from typing import TypeVar

from django.http import HttpRequest, HttpResponse

_deploy_id: ContextVar[int | None] = ContextVar("gantry_deploy_id", default=None)
T = TypeVar("T")
R = TypeVar("R")


@contextmanager
def deploy_context(deploy_id: int) -> Iterator[None]:
    token = _deploy_id.set(deploy_id)
    try:
        yield
    finally:
        _deploy_id.reset(token)


def in_this_context(function: Callable[[T], R]) -> Callable[[T], R]:
    """`function` to run in pool threads with the caller's context (threads start with an empty one)."""
    parent = copy_context()

    def run(argument: T) -> R:
        return parent.copy().run(function, argument)

    return run


class DeployIdFilter(logging.Filter):
    """Adds `deploy_id` to every record: the one the record names (deploy_logger), the context's, or "-"."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "deploy_id", None) is None:
            current = _deploy_id.get()
            record.deploy_id = current if current is not None else "-"
        return True


class DeployContextMiddleware:
    """Requests for a deploy's pages log with its id (routes named deploy* with a `pk`)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = _deploy_id.set(None)
        try:
            return self.get_response(request)
        finally:
            _deploy_id.reset(token)  # also undoes what process_view set

    def process_view(
        self,
        request: HttpRequest,
        view: Callable[..., HttpResponse],
        args: tuple[object, ...],
        kwargs: dict[str, object],
    ) -> None:
        match = request.resolver_match
        pk = kwargs.get("pk")
        if match and (match.url_name or "").startswith("deploy") and isinstance(pk, int):
            _deploy_id.set(pk)
