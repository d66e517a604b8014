"""Who may do what where.

- Everyone signed in sees everything (a viewer).
- A `deployer` grant lets its holder deploy to non-production environments
  (and lock, unlock and cancel there); `prod_deployer` adds production.
- An `approver` (or a prod deployer) may approve production deploys that need
  approval, but never their own.
- Grants apply within a team, a service, or everywhere; they name a user or a
  Django group (`@group`). Superusers are Gantry's admins: they may do
  anything, deploy through a lock (after confirming) and make emergency deploys.
- GANTRY_DEFAULT_ROLE=deployer makes every signed-in user a deployer.

One Access per request: its grants are read in one query, then every check is
a lookup (the services page asks for hundreds).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import Q

from deployer.choices import Role
from deployer.errors import PermissionRefused
from deployer.models import Deploy, Environment, Grant

SYSTEM_USERNAME = "gantry"

_Scope = tuple[str, int | None]  # ("team", id), ("service", id) or ("all", None)


@dataclass
class Access:
    username: str
    is_admin: bool = False
    is_system: bool = False
    roles: dict[str, set[_Scope]] = field(default_factory=dict)

    def _has(self, role: Role, environment: Environment) -> bool:
        scopes = self.roles.get(role, set())
        return bool(
            scopes & {("all", None), ("service", environment.service_id), ("team", environment.service.team_id)}
        )

    def can_deploy(self, environment: Environment) -> bool:
        if self.is_admin or self.is_system or self._has(Role.PROD_DEPLOYER, environment):
            return True
        return not environment.production and self._has(Role.DEPLOYER, environment)

    def can_approve(self, deploy: Deploy) -> bool:
        """May approve `deploy`: not one's own, and an approver, prod deployer or admin where it goes."""
        environment = deploy.environment
        if deploy.requested_by_id is not None and deploy.requested_by.get_username() == self.username:
            return False
        return self.is_admin or self._has(Role.APPROVER, environment) or self._has(Role.PROD_DEPLOYER, environment)

    def why_not_deploy(self, environment: Environment) -> str:
        """The sentence a refused person reads (on the button and in the error)."""
        if environment.production:
            needs = f"a prod_deployer grant for service {environment.service.name}"
            if environment.service.team_id:
                needs += f" or team {environment.service.team}"
        else:
            needs = f"a deployer grant for service {environment.service.name}"
            if environment.service.team_id:
                needs += f" or team {environment.service.team}"
        return f"{self.username} may not deploy to {environment}: that needs {needs}; ask a Gantry admin"

    def require_deploy(self, environment: Environment) -> None:
        if not self.can_deploy(environment):
            raise PermissionRefused(self.why_not_deploy(environment))

    def require_admin(self, what: str) -> None:
        if not self.is_admin:
            raise PermissionRefused(f"only a Gantry admin may {what}; {self.username} is not one")


def access_for(user: AbstractBaseUser | AnonymousUser | None) -> Access:
    """What `user` may do; None means Gantry itself (continuous delivery)."""
    if user is None:
        return Access(username=SYSTEM_USERNAME, is_system=True)
    if not user.is_authenticated:
        return Access(username="anonymous")
    if user.get_username() == SYSTEM_USERNAME and not user.has_usable_password():
        return Access(username=SYSTEM_USERNAME, is_system=True)
    username = user.get_username()
    access = Access(username=username, is_admin=bool(getattr(user, "is_superuser", False)))
    if settings.DEFAULT_ROLE == Role.DEPLOYER:
        access.roles.setdefault(Role.DEPLOYER, set()).add(("all", None))
    principals = Q(principal=username) | Q(principal__in=[f"@{g}" for g in user.groups.values_list("name", flat=True)])
    for role, team_id, service_id in Grant.objects.filter(principals).values_list("role", "team_id", "service_id"):
        scope: _Scope = ("service", service_id) if service_id else ("team", team_id) if team_id else ("all", None)
        access.roles.setdefault(role, set()).add(scope)
    return access


def system_user() -> AbstractBaseUser:
    """The user Gantry acts as on its own (continuous delivery); it cannot sign in."""
    user, created = get_user_model().objects.get_or_create(username=SYSTEM_USERNAME)
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user
