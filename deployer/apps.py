from __future__ import annotations

from django.apps import AppConfig


class DeployerConfig(AppConfig):
    name = "deployer"
    verbose_name = "Gantry deployer"
