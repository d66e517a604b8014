from __future__ import annotations

from django.apps import AppConfig


class DeployerConfig(AppConfig):
    name = "deployer"
    verbose_name = "Gantry deployer"

    def ready(self) -> None:
        from deployer import system_checks  # noqa: F401  (registers the checks)
