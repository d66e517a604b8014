from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand

from deployer.demo import setup


class Command(BaseCommand):
    help = "Prepare the demo: a git repo of the demo service, loopback SSH hosts, its catalog, an admin."

    def handle(self, *args: Any, **options: Any) -> None:
        hosts = setup.demo_hosts()
        setup.hosts_trust(hosts)
        repo = setup.demo_dir() / "repo"
        if not repo.exists():
            setup.repo_create(repo)
            self.stdout.write(f"created the demo repository in {repo}")
        catalog = setup.demo_dir() / "catalog.yml"
        catalog.write_text(setup.catalog_text(repo, hosts))
        call_command("load_catalog", str(catalog), stdout=self.stdout)
        call_command("sync_branches", "demo", stdout=self.stdout)
        setup.admin_ensure()
        name, password = setup.DEMO_ADMIN
        self.stdout.write(self.style.SUCCESS(f"demo ready: sign in at http://127.0.0.1:8000/ as {name} / {password}"))
