"""`defaults:` (for the whole catalog, and per team): environment keys every environment gets unless it sets
them itself, or its service sets them (the release keys a service may set for all its environments); freeze
windows add up instead. A team's defaults come before the catalog's. Applied to the file's data before it
is validated as a whole, so an environment is checked with what it really gets; the defaults block itself
is validated where it is written first, so a bad default is reported at its own line."""

from __future__ import annotations

import copy
from typing import Any

from deployer.catalog.schema import ReleaseSpec

RELEASE_KEYS = frozenset(ReleaseSpec.model_fields)
# Lists that add up instead: a team's freeze windows hold in an environment that declares windows of its own,
# and a team's webhooks hear from it.
ADDITIVE_KEYS = frozenset({"freeze", "webhooks"})


def has_defaults(data: dict[str, Any]) -> bool:
    teams = _mapping(data.get("teams"))
    return bool(data.get("defaults")) or any(isinstance(t, dict) and t.get("defaults") for t in teams.values())


def defaults_applied(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of the catalog's data with each environment's defaults filled in."""
    out = copy.deepcopy(data)
    everywhere = _mapping(out.get("defaults"))
    teams = _mapping(out.get("teams"))
    for service in _mapping(out.get("services")).values():
        if not isinstance(service, dict):
            continue
        team = teams.get(service.get("team")) if isinstance(service.get("team"), str) else None
        layers = [_mapping(team.get("defaults")) if isinstance(team, dict) else {}, everywhere]
        for environment in _mapping(service.get("environments")).values():
            if not isinstance(environment, dict):
                continue
            for layer in layers:
                for key, value in layer.items():
                    if key in ADDITIVE_KEYS and isinstance(environment.get(key), list) and isinstance(value, list):
                        environment[key] = environment[key] + copy.deepcopy(value)
                    elif key not in environment and not (key in RELEASE_KEYS and key in service):
                        environment[key] = copy.deepcopy(value)
    return out


def _mapping(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}
