"""Catalogs the tests load: a small one, the app repository's handle, and services on the fake GitHub."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deployer.catalog.load import catalog_apply, catalog_parse
from deployer.models import Environment, Service

SMALL_CATALOG = """
teams:
  web: {}
services:
  app:
    team: web
    repo: /srv/git/app.git
    default_branch: main
    environments:
      test:
        deploy_path: /srv/app
        hosts:
          - {address: 10.0.0.1}
          - {address: 10.0.0.2}
"""


@dataclass
class AppRepo:
    path: Path


MakeEnvironment = Callable[..., Environment]


def github_services(*names: str) -> list[Service]:
    """Services whose branches come from the fake GitHub repository acme/<name>."""
    body = "".join(
        f"  {name}:\n    github: acme/{name}\n    environments:\n"
        f"      test: {{deploy_path: /srv/{name}, hosts: [{{address: 10.0.0.1}}]}}\n"
        for name in names
    )
    catalog_apply(catalog_parse("services:\n" + body))
    return [Service.objects.get(name=name) for name in names]
