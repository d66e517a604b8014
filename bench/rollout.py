"""One release to 20 (or 100) sshd hosts on loopback, in batches: how much does Gantry's orchestration cost?

Run: .venv/bin/python bench/rollout.py [--hosts 20] [--batch 10 | 25%] [--runs 3] [--no-ansible] [--no-sequential]

--batch is the catalog's batch_size (a count or a percentage of the hosts); every
approach stages and switches that many hosts at once.

Four ways to do the same steps — upload the release archive, extract it, write
REVISION, build, then in batches switch `current` and restart:

- gantry:      Gantry's rollout (deployer.deploys.rollout), in this process, with its database log;
- sequential:  the same rollout one host at a time (parallelism 1, batch size 1);
- raw ssh:     OpenSSH `ssh` processes, 10 at a time, the same commands and two phases,
               no orchestration at all: the lower bound;
- ansible:     ansible-playbook (ansible-core, forks 10, pipelining, serial 10 for the switch).

Each is run --runs times on fresh deploy directories; the median is printed with
its ratio to raw ssh. ansible-core is installed into var/bench-ansible on first
use (pinned in bench/requirements-ansible.txt).
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GANTRY_VAR_DIR", tempfile.mkdtemp(prefix="gantry-bench-"))
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402

from deployer.catalog.load import catalog_apply, catalog_parse  # noqa: E402
from deployer.choices import DeployStatus  # noqa: E402
from deployer.demo import setup  # noqa: E402
from deployer.demo.hosts import SshdHost  # noqa: E402
from deployer.deploys import rollout  # noqa: E402
from deployer.deploys.batches import batch_sizes  # noqa: E402
from deployer.deploys.fleet import Fleet  # noqa: E402
from deployer.environments.host_keys import known_hosts_export  # noqa: E402
from deployer.integrations import git  # noqa: E402
from deployer.models import Deploy, Environment  # noqa: E402

RESTART = 'echo "$GANTRY_SHA" > "$GANTRY_DEPLOY_PATH/shared/restarted"'
ANSIBLE_VENV = ROOT / "var" / "bench-ansible"
KNOWN_HOSTS = Path(tempfile.mkdtemp(prefix="gantry-bench-known-")) / "known_hosts"


def free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


def start_hosts(count: int, base: Path) -> tuple[list[SshdHost], list[subprocess.Popen[bytes]]]:
    addresses = [f"127.0.1.{n}" for n in range(1, count + 1)]
    hosts = [SshdHost(base / f"h{n}", a, free_port(a)) for n, a in enumerate(addresses)]
    setup.hosts_trust(hosts)
    KNOWN_HOSTS.write_text(known_hosts_export())  # for OpenSSH and Ansible (Gantry reads the database)
    return hosts, [host.start() for host in hosts]


class Bench:
    def __init__(self, hosts: list[SshdHost], batch: int, repo: Path, archive: Path, sha: str, work: Path) -> None:
        self.hosts, self.batch, self.repo, self.archive, self.sha, self.work = hosts, batch, repo, archive, sha, work
        self.round = 0
        self.proxy_jump = ""  # bench/bastion.py: every host through this jump host

    def roots(self, label: str) -> list[Path]:
        return [self.work / label / f"r{self.round}" / h.address for h in self.hosts]

    # --- Gantry ---------------------------------------------------------------

    def gantry(self, *, parallelism: int, batch: int, label: str) -> None:
        roots = self.roots(label)
        jump = f", proxy_jump: '{self.proxy_jump}'" if self.proxy_jump else ""
        hosts = "\n".join(
            f"          - {{address: {h.address}, port: {h.port}, user: {h.user}, deploy_path: {root}{jump}}}"
            for h, root in zip(self.hosts, roots, strict=True)
        )
        catalog_apply(
            catalog_parse(
                f"""
services:
  bench:
    repo: {self.repo}
    environments:
      test:
        deploy_path: /srv/bench
        build_command: sh build.sh
        restart_command: {shlex.quote(RESTART)}
        batch_size: {batch}
        hosts:
{hosts}
"""
            )
        )
        environment = Environment.objects.get(service__name="bench", name="test")
        Deploy.objects.filter(environment=environment, status__in=DeployStatus.active()).update(
            status=DeployStatus.SUCCEEDED
        )
        user = get_user_model().objects.get_or_create(username="bench")[0]
        deploy = Deploy.objects.create(
            environment=environment, requested_by=user, ref="main", sha=self.sha, status=DeployStatus.RUNNING
        )
        settings.ROLLOUT_PARALLELISM = parallelism
        with Fleet.rolling_out(deploy).connected() as fleet:
            ended = rollout.rollout(fleet, self.archive)
        assert ended.live, ended.reason
        Deploy.objects.filter(pk=deploy.pk).update(status=DeployStatus.SUCCEEDED)
        self._check(roots)

    # --- raw OpenSSH --------------------------------------------------------

    def raw_ssh(self) -> None:
        roots = self.roots("raw")
        release = f"r{self.round}"

        def ssh(host: SshdHost, command: str, stdin: Path | None = None) -> None:
            argv = ["ssh", "-i", str(settings.GANTRY_SSH_KEY), "-p", str(host.port), "-o", "BatchMode=yes"]
            argv += ["-o", f"UserKnownHostsFile={KNOWN_HOSTS}", "-o", "StrictHostKeyChecking=yes"]
            argv += [f"{host.user}@{host.address}", command]
            with open(stdin or os.devnull, "rb") as data:
                subprocess.run(argv, stdin=data, check=True, capture_output=True)

        def stage(index: int) -> None:
            root, host = shlex.quote(str(roots[index])), self.hosts[index]
            exports = f"export GANTRY_SHA={self.sha} GANTRY_DEPLOY_PATH={root} GANTRY_REF=main"
            ssh(
                host,
                f"set -e; mkdir -p {root}/releases/{release} {root}/shared; tar -xzf - -C {root}/releases/{release};"
                f" echo {self.sha} > {root}/releases/{release}/REVISION; cd {root}/releases/{release};"
                f" {exports}; sh build.sh",
                stdin=self.archive,
            )

        def activate(index: int) -> None:
            root, host = shlex.quote(str(roots[index])), self.hosts[index]
            exports = f"export GANTRY_SHA={self.sha} GANTRY_DEPLOY_PATH={root}"
            ssh(
                host,
                f"set -e; cd {root}; ln -sfn releases/{release} current.new; mv -T current.new current;"
                f" cd current; {exports}; {RESTART}",
            )

        with ThreadPoolExecutor(max_workers=self.batch) as pool:
            list(pool.map(stage, range(len(self.hosts))))
            for start in range(0, len(self.hosts), self.batch):
                list(pool.map(activate, range(start, min(start + self.batch, len(self.hosts)))))
        self._check(roots)

    # --- Ansible ------------------------------------------------------------

    def ansible(self, playbook_bin: Path) -> None:
        roots = self.roots("ansible")
        folder = self.work / "ansible" / f"r{self.round}-files"
        folder.mkdir(parents=True)
        inventory = folder / "hosts.ini"
        ssh_args = f"-o UserKnownHostsFile={KNOWN_HOSTS} -o StrictHostKeyChecking=yes"
        inventory.write_text(
            "[bench]\n"
            + "".join(
                f"{h.address} ansible_port={h.port} ansible_user={h.user} deploy_root={root}\n"
                for h, root in zip(self.hosts, roots, strict=True)
            )
            + f"[bench:vars]\nansible_ssh_private_key_file={settings.GANTRY_SSH_KEY}\n"
            + f"ansible_ssh_common_args='{ssh_args}'\nansible_python_interpreter=/usr/bin/python3\n"
        )
        release = f"r{self.round}"
        playbook = folder / "deploy.yml"
        playbook.write_text(
            f"""
- name: stage
  hosts: bench
  gather_facts: false
  tasks:
    - file: {{path: "{{{{ deploy_root }}}}/releases/{release}", state: directory}}
    - file: {{path: "{{{{ deploy_root }}}}/shared", state: directory}}
    - unarchive: {{src: "{self.archive}", dest: "{{{{ deploy_root }}}}/releases/{release}"}}
    - copy: {{content: "{self.sha}\\n", dest: "{{{{ deploy_root }}}}/releases/{release}/REVISION"}}
    - command: {{cmd: sh build.sh, chdir: "{{{{ deploy_root }}}}/releases/{release}"}}
      environment: {{GANTRY_SHA: "{self.sha}", GANTRY_REF: main}}
- name: switch
  hosts: bench
  gather_facts: false
  serial: {self.batch}
  tasks:
    - shell: {{cmd: "ln -sfn releases/{release} current.new && mv -T current.new current", \
chdir: "{{{{ deploy_root }}}}"}}
    - shell: {{cmd: {RESTART!r}, chdir: "{{{{ deploy_root }}}}/current"}}
      environment: {{GANTRY_SHA: "{self.sha}", GANTRY_DEPLOY_PATH: "{{{{ deploy_root }}}}"}}
"""
        )
        env = {
            **os.environ,
            "ANSIBLE_FORKS": str(self.batch),
            "ANSIBLE_PIPELINING": "True",
            "ANSIBLE_HOST_KEY_CHECKING": "True",
            "ANSIBLE_LOCAL_TEMP": str(folder / "tmp"),
            "ANSIBLE_NOCOWS": "1",
        }
        result = subprocess.run(
            [str(playbook_bin), "-i", str(inventory), str(playbook)], env=env, capture_output=True, text=True
        )
        if result.returncode:
            raise RuntimeError(f"ansible-playbook failed:\n{result.stdout[-3000:]}\n{result.stderr[-2000:]}")
        self._check(roots)

    def _check(self, roots: list[Path]) -> None:
        for root in roots:
            if (root / "shared" / "restarted").read_text().strip() != self.sha:
                raise RuntimeError(f"{root}: not restarted on {self.sha}")
            if (root / "current" / "REVISION").read_text().strip() != self.sha:
                raise RuntimeError(f"{root}: current is not the release")


def ansible_playbook() -> Path:
    binary = ANSIBLE_VENV / "bin" / "ansible-playbook"
    if not binary.exists():
        print("installing ansible-core into var/bench-ansible (first run only)...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(ANSIBLE_VENV)], check=True)
        requirements = ROOT / "bench" / "requirements-ansible.txt"
        subprocess.run([str(ANSIBLE_VENV / "bin" / "pip"), "install", "-q", "-r", str(requirements)], check=True)
    return binary


def timed(run: Callable[[], None]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--batch", default="10", help="hosts switched at once: a count or a percentage (25%%)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-ansible", action="store_true")
    parser.add_argument("--no-sequential", action="store_true", help="skip one host at a time (slow at 100 hosts)")
    args = parser.parse_args()
    batch = batch_sizes(args.hosts, args.batch)[0]

    logging.getLogger("gantry").setLevel(logging.WARNING)  # the deploy log still goes to the database
    call_command("migrate", verbosity=0)
    work = Path(tempfile.mkdtemp(prefix="gantry-bench-rollout-"))
    repo = work / "repo"
    setup.repo_create(repo)
    sha = setup.git(repo, "rev-parse", "main").strip()
    archive = git.archive("bench", str(repo), sha, work / "release.tar.gz")
    hosts, processes = start_hosts(args.hosts, work / "hosts")
    playbook_bin = None if args.no_ansible else ansible_playbook()
    bench = Bench(hosts, batch, repo, archive, sha, work)
    approaches: dict[str, Callable[[], None]] = {
        "raw ssh (lower bound)": bench.raw_ssh,
        f"gantry (batch {args.batch})": lambda: bench.gantry(parallelism=batch, batch=batch, label="gantry"),
    }
    if not args.no_sequential:
        approaches["sequential (same steps)"] = lambda: bench.gantry(parallelism=1, batch=1, label="sequential")
    if playbook_bin is not None:
        approaches[f"ansible-playbook (forks {batch})"] = lambda: bench.ansible(playbook_bin)
    times: dict[str, list[float]] = {name: [] for name in approaches}
    try:
        for number in range(args.runs):
            bench.round = number
            for name, run in approaches.items():
                times[name].append(timed(run))
    finally:
        for process in processes:
            process.terminate()
    baseline = statistics.median(times["raw ssh (lower bound)"])
    size = archive.stat().st_size // 1024
    print(f"\none release ({size} KiB) to {args.hosts} sshd hosts, batch {args.batch} ({batch} hosts), ")
    print(f"median of {args.runs} runs (each: {', '.join(f'{t:.2f}' for t in times[next(iter(times))])} s for raw)")
    print(f"{'approach':<28} {'median s':>9} {'vs raw ssh':>11}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<28} {median:>9.2f} {median / baseline:>10.2f}x")


if __name__ == "__main__":
    main()
