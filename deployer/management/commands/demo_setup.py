from __future__ import annotations

import os
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from deployer.demo import setup
from deployer.demo.watching import LOAD_PER_SECOND, watching_configure, watching_of
from deployer.demo.watching import binaries as watching_binaries


class Command(BaseCommand):
    help = "Prepare the demo: a git repo of the demo service, loopback SSH hosts, its catalog, an admin."

    def handle(self, *args: Any, **options: Any) -> None:
        running = any(host.is_running() for host in setup.demo_hosts())
        ports = setup.demo_ports_choose(own_hosts_running=running)
        if (ports["ssh"], ports["app"]) != (settings.DEMO_SSH_PORT, settings.DEMO_APP_PORT):
            self.stdout.write(
                f"the usual demo ports are taken (another Gantry's demo?): using ssh port {ports['ssh']}, "
                f"app port {ports['app']} (settings: GANTRY_DEMO_SSH_PORT, GANTRY_DEMO_APP_PORT)"
            )
        hosts = setup.demo_hosts()
        setup.hosts_trust(hosts)
        repo = setup.demo_dir() / "repo"
        if not repo.exists():
            setup.repo_create(repo)
            self.stdout.write(f"created the demo repository in {repo}")
        if not (repo / "migrate.py").exists():
            setup.repo_add_database(repo)
            self.stdout.write("added a database (migrations) to the demo repository, and a branch add-migration")
        for branch in setup.demo_branches_rebase(repo):
            self.stdout.write(f"made the demo branch {branch} again on top of main (it lacked the migration step)")
        watching = None
        if watching_binaries() is not None:
            before = watching_of(setup.demo_dir()) if running else None
            chosen = (
                {"lb": before.lb_port, "exporter": before.exporter_port, "prometheus": before.prometheus_port}
                if before
                else setup.watching_ports()
            )
            watching = watching_configure(setup.demo_dir(), [h.address for h in hosts], ports["app"], chosen)
            self.stdout.write(
                f"HAProxy and Prometheus are installed: the demo site is {watching.site_url} (HAProxy, with users "
                f"sending {LOAD_PER_SECOND} requests a second), Prometheus {watching.prometheus_url}; deploys "
                "to test judge a canary by its error rate"
            )
        else:
            self.stdout.write("install haproxy and prometheus (Debian packages) to watch canaries in the demo")
        catalog = setup.demo_dir() / "catalog.yml"
        catalog.write_text(setup.catalog_text(repo, hosts, ports["app"], watching))
        call_command("load_catalog", str(catalog), stdout=self.stdout)
        call_command("sync_branches", "demo", stdout=self.stdout)
        created = setup.admin_ensure()
        url = f"http://127.0.0.1:{os.environ.get('GANTRY_PORT', '8000')}/"
        kept = setup.admin_password_file()
        if created:  # the one time the password is printed
            password = kept.read_text().strip()
            self.stdout.write(self.style.SUCCESS(f"demo ready: sign in at {url} as {setup.DEMO_ADMIN} / {password}"))
            self.stdout.write(f"(the password is kept in {kept}, readable by you only)")
        else:
            self.stdout.write(
                self.style.SUCCESS(f"demo ready: sign in at {url} as {setup.DEMO_ADMIN}; the password is in {kept}")
            )
