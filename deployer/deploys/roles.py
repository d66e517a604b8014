"""Process roles: the kinds of process a service runs (web, worker, ...) and which host runs which.

An environment that declares no roles has one, `app`, made of its own
restart_command and health checks: every environment is deployed the same way.
A host runs the roles it names, or every role when it names none. Roles restart
in `order` (lower first; catalog order breaks ties), each followed by its own
health check, and the hosts are switched in the order of their first role, so
dedicated worker hosts follow the web hosts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from deployer.models import Environment, Host

IMPLICIT_ROLE = "app"


@dataclass(frozen=True)
class ProcessRole:
    name: str
    restart_command: str
    health_check_url: str
    health_check_command: str
    health_check_timeout: int
    restart_timeout: int
    healthy_for: int
    order: int
    serves_traffic: bool
    unchecked_on_purpose: bool = False  # the catalog says health_check: none

    @property
    def has_health_check(self) -> bool:
        return bool(self.health_check_url or self.health_check_command)


def roles_unchecked(environment: Environment) -> list[ProcessRole]:
    """The roles whose restart starts processes nothing checks, unless the catalog says that is meant
    (health_check: none). A role that restarts nothing (files served as they are) has nothing to check."""
    return [
        role
        for role in environment_roles(environment)
        if role.restart_command.strip() and not role.has_health_check and not role.unchecked_on_purpose
    ]


def environment_roles(environment: Environment) -> list[ProcessRole]:
    """The environment's roles, in the order they restart."""
    if not environment.roles:
        return [
            ProcessRole(
                name=IMPLICIT_ROLE,
                restart_command=environment.restart_command,
                health_check_url=environment.health_check_url,
                health_check_command=environment.health_check_command,
                health_check_timeout=environment.health_check_timeout,
                restart_timeout=environment.restart_timeout,
                healthy_for=environment.healthy_for,
                order=0,
                serves_traffic=True,
                unchecked_on_purpose=environment.health_check == "none",
            )
        ]
    roles = [_role(environment, index, spec) for index, spec in enumerate(environment.roles)]
    return [role for _, role in sorted(enumerate(roles), key=lambda pair: (pair[1].order, pair[0]))]


def _role(environment: Environment, index: int, spec: dict[str, Any]) -> ProcessRole:
    url = spec.get("health_check_url") or ""
    traffic = spec.get("serves_traffic")
    return ProcessRole(
        name=str(spec.get("name") or f"role{index}"),
        restart_command=spec.get("restart_command") or "",
        health_check_url=url,
        health_check_command=spec.get("health_check_command") or "",
        health_check_timeout=spec.get("health_check_timeout") or environment.health_check_timeout,
        restart_timeout=spec.get("restart_timeout") or environment.restart_timeout,
        healthy_for=environment.healthy_for if spec.get("healthy_for") is None else int(spec["healthy_for"]),
        order=int(spec.get("order") or 0),
        serves_traffic=bool(url) if traffic is None else bool(traffic),
        unchecked_on_purpose=spec.get("health_check") == "none",
    )


def host_roles(host: Host, roles: list[ProcessRole]) -> list[ProcessRole]:
    """The roles `host` runs, in restart order."""
    if not host.roles:
        return roles
    return [role for role in roles if role.name in host.roles]


def serves_traffic(host: Host, roles: list[ProcessRole]) -> bool:
    """Whether the load balancer sends it requests (it is drained while it restarts)."""
    return any(role.serves_traffic for role in host_roles(host, roles))


def switch_order(hosts: list[Host], roles: list[ProcessRole]) -> list[Host]:
    """Hosts in the order they are switched: by their first role (stable: catalog order within a role)."""
    rank = {role.name: position for position, role in enumerate(roles)}

    def first_role(host: Host) -> int:
        return min((rank[role.name] for role in host_roles(host, roles)), default=len(rank))

    return sorted(hosts, key=first_role)


def default_release_host(hosts: list[Host], roles: list[ProcessRole]) -> Host:
    """Where release_command runs when the catalog names no release_host: the first host of the first role."""
    for role in roles:
        for host in hosts:
            if role in host_roles(host, roles):
                return host
    return hosts[0]
