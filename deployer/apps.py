from __future__ import annotations

from typing import Any

from django.apps import AppConfig

from deployer.lib.private_file import sqlite_files_private


class DeployerConfig(AppConfig):
    name = "deployer"
    verbose_name = "Gantry deployer"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model
        from django.contrib.auth.signals import user_logged_in
        from django.db.backends.signals import connection_created
        from django.db.models import Field

        from deployer.environments.access import username_not_a_group
        from deployer.environments.audit import sqlite_connection_created
        from deployer.environments.team_identity import break_glass_audit
        from deployer.ops import system_checks  # noqa: F401  (registers the checks)

        connection_created.connect(sqlite_connection_created, dispatch_uid="gantry-audit-erasure")
        connection_created.connect(_sqlite_private, dispatch_uid="gantry-sqlite-private")
        user_logged_in.connect(break_glass_audit, dispatch_uid="gantry-break-glass")

        # Every form that sets a username (admin, createsuperuser) runs the field's validators.
        username = get_user_model()._meta.get_field(get_user_model().USERNAME_FIELD)
        assert isinstance(username, Field)
        if username_not_a_group not in username.validators:
            username.validators.append(username_not_a_group)


def _sqlite_private(sender: object, connection: Any, **kwargs: object) -> None:
    """The SQLite database (users, API tokens, sessions) is its owner's only, whatever the umask was."""
    if connection.vendor == "sqlite":
        name = str(connection.settings_dict.get("NAME") or "")
        if name and not name.startswith(":memory:") and "mode=memory" not in name:
            sqlite_files_private(name)
