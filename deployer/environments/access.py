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
- Gantry itself (continuous delivery) is the account flagged by SystemIdentity,
  never whoever is named "gantry"; a username starting with "@" (a group's
  spelling in grants) is refused, and would match no grant anyway.

One Access per request: its grants are read in one query, then every check is
a lookup (the services page asks for hundreds).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser, User
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q

from deployer.choices import Role
from deployer.errors import PermissionRefused
from deployer.models import Deploy, Environment, Grant, Service, SystemIdentity
from deployer.models.access import SYSTEM_USERNAME

SYSTEM_IDENTITY = 1  # the one SystemIdentity row

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

    def teams(self) -> frozenset[int]:
        """The teams this person holds a grant in: a team's own, or one of its services' (the services page
        shows theirs first)."""
        scopes = set().union(*self.roles.values()) if self.roles else set()
        teams = {scope_id for kind, scope_id in scopes if kind == "team" and scope_id is not None}
        services = [scope_id for kind, scope_id in scopes if kind == "service" and scope_id is not None]
        if services:
            owned = Service.objects.filter(pk__in=services, team__isnull=False).values_list("team_id", flat=True)
            teams.update(owned)
        return frozenset(teams)

    def can_deploy(self, environment: Environment) -> bool:
        if self.is_admin or self.is_system or self._has(Role.PROD_DEPLOYER, environment):
            return True
        return not environment.production and self._has(Role.DEPLOYER, environment)

    def can_approve(self, deploy: Deploy) -> bool:
        """May approve `deploy`: not one's own, and an approver, prod deployer or admin where it goes."""
        environment = deploy.environment
        if deploy.requested_by is not None and deploy.requested_by.get_username() == self.username:
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


def username_not_a_group(value: str) -> None:
    """Grants write groups as @name: a username spelled like that is refused."""
    if str(value).startswith("@"):
        raise ValidationError(
            "a username may not start with @ (grants name groups that way); drop the @", code="username_at"
        )


def access_for(user: User | AnonymousUser | None) -> Access:
    """What `user` may do; None means Gantry itself (continuous delivery)."""
    if user is None:
        return Access(username=SYSTEM_USERNAME, is_system=True)
    if not user.is_authenticated:
        return Access(username="anonymous")
    username = user.get_username()
    if username.startswith(SYSTEM_USERNAME) and SystemIdentity.objects.filter(user_id=user.pk).exists():
        return Access(username=username, is_system=True)
    access = Access(username=username, is_admin=bool(getattr(user, "is_superuser", False)))
    if settings.DEFAULT_ROLE == Role.DEPLOYER:
        access.roles.setdefault(Role.DEPLOYER, set()).add(("all", None))
    groups = Q(principal__in=[f"@{g}" for g in user.groups.values_list("name", flat=True)])
    # "@name" is how a grant names a group: a username written like one must never match it.
    principals = groups if username.startswith("@") else Q(principal=username) | groups
    for role, team_id, service_id in Grant.objects.filter(principals).values_list("role", "team_id", "service_id"):
        scope: _Scope = ("service", service_id) if service_id else ("team", team_id) if team_id else ("all", None)
        access.roles.setdefault(role, set()).add(scope)
    return access


def system_user() -> User:
    """The user Gantry acts as on its own (continuous delivery): flagged by SystemIdentity, inactive,
    without a password, so it cannot sign in. Named "gantry" (or "gantry-2"... if a person took it)."""
    marked = SystemIdentity.objects.select_related("user").filter(pk=SYSTEM_IDENTITY).first()
    if marked is not None:
        return marked.user
    users = get_user_model().objects
    taken = set(users.filter(username__startswith=SYSTEM_USERNAME).values_list("username", flat=True))
    name = next(n for n in [SYSTEM_USERNAME, *(f"{SYSTEM_USERNAME}-{i}" for i in range(2, 1000))] if n not in taken)
    try:
        with transaction.atomic():
            user = users.create(username=name, is_active=False)
            user.set_unusable_password()
            user.save(update_fields=["password"])
            SystemIdentity.objects.create(pk=SYSTEM_IDENTITY, user=user)  # one row: a second creator fails here
    except IntegrityError:
        return SystemIdentity.objects.select_related("user").get(pk=SYSTEM_IDENTITY).user
    return user
