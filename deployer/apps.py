from __future__ import annotations

from django.apps import AppConfig


class DeployerConfig(AppConfig):
    name = "deployer"
    verbose_name = "Gantry deployer"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.db.backends.signals import connection_created
        from django.db.models import Field

        from deployer.environments.access import username_not_a_group
        from deployer.environments.audit import sqlite_connection_created
        from deployer.ops import system_checks  # noqa: F401  (registers the checks)

        connection_created.connect(sqlite_connection_created, dispatch_uid="gantry-audit-erasure")

        # Every form that sets a username (admin, createsuperuser) runs the field's validators.
        username = get_user_model()._meta.get_field(get_user_model().USERNAME_FIELD)
        assert isinstance(username, Field)
        if username_not_a_group not in username.validators:
            username.validators.append(username_not_a_group)
