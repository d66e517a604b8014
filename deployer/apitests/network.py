"""Where a post-deploy API test may send a request, and how much of the answer it reads.

A suite can come from a branch (`.gantry/tests.yml`), so every URL it builds is
hostile until checked. A request goes out only when:

- its origin (scheme, host, port) is one the environment allows: the origins of
  its `base_url`, of `host_base_url` for each of its hosts, and of its
  `api_test_origins` in the catalog;
- it does not aim at a link-local or cloud-metadata address, whatever the
  catalog says (lib/guarded_http.py: on the name, what it resolves to, and the
  address the socket connected to);
- a redirect is followed only when the step asks for it, and each hop is checked
  again like the first request.

Answers are read up to MAX_BODY bytes, and a step's exchange ends at its timeout
in all (not only per socket read).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from deployer.lib.guarded_http import (  # noqa: F401 (the API tests' names for them)
    MAX_BODY,
    MAX_REDIRECTS,
    REDIRECT_STATUSES,
    AddressRefused,
    AnswerRefused,
    BlockedConnection,
    Origin,
    blocked_host,
    blocked_reason,
    body_read,
    check_resolution,
    deadline,
    guarded_session,
    origin_of,
    show_origin,
)


class RequestRefused(Exception):
    """The request may not go out; the message says why and what to change."""


@dataclass(frozen=True)
class RequestPolicy:
    """The origins one environment's API tests may call."""

    origins: frozenset[Origin]
    where: str  # "app/test", for messages
    key: str = "api_test_origins"

    @classmethod
    def of(cls, where: str, urls: Iterable[str]) -> RequestPolicy:
        origins = set()
        for url in urls:
            try:
                origins.add(origin_of(url))
            except ValueError:
                continue  # the catalog validated them; an unusable one allows nothing
        return cls(frozenset(origins), where)

    def check(self, url: str) -> None:
        """RequestRefused unless `url` may be requested (before DNS: the origin and the name)."""
        try:
            origin = origin_of(url)
        except ValueError as exc:
            raise RequestRefused(str(exc)) from exc
        if problem := blocked_host(origin[1]):
            raise RequestRefused(f"{show_origin(origin)} is never called by API tests: {problem}")
        if origin not in self.origins:
            allowed = ", ".join(sorted(show_origin(o) for o in self.origins)) or "none"
            raise RequestRefused(
                f"{show_origin(origin)} is not an origin the API tests of {self.where} may call "
                f"(allowed: {allowed}); use {{{{base_url}}}} or {{{{host_base_url}}}}, or add it to {self.key} "
                "of that environment in the catalog"
            )
        try:
            check_resolution(origin[1], origin[2])
        except AddressRefused as exc:
            raise RequestRefused(str(exc)) from exc
