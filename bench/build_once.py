"""A release whose build takes B seconds, to N sshd hosts on loopback: build on every host, or once on a builder?

Run: .venv/bin/python bench/build_once.py [--hosts 20] [--build-seconds 5] [--runs 3]

- build: hosts     Gantry's rollout, every host runs the build (parallelism 10);
- build: builder   Gantry builds once on a builder host, copies the artifact, streams it to
                   every host, which checks its sha256 before unpacking;
- raw ssh stream   OpenSSH `ssh` processes, 10 at a time, each streaming the artifact into
                   `tar -x` on a host: the cost of moving the bytes, nothing else.

The target for the builder: at most B + 1.25 x raw ssh stream, whatever the host count
beyond the transfer. The median of --runs is printed, with the ratios.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from rollout import KNOWN_HOSTS, start_hosts, timed

from deployer.catalog.load import catalog_apply, catalog_parse
from deployer.choices import DeployStatus
from deployer.demo import setup
from deployer.demo.hosts import SshdHost
from deployer.deploys import rollout
from deployer.deploys.builder import artifact_for
from deployer.deploys.fleet import Fleet
from deployer.deploys.log import deploy_logging
from deployer.integrations import git
from deployer.models import Artifact, Deploy, Environment


class BuildBench:
    def __init__(self, hosts: list[SshdHost], builder: SshdHost, repo: Path, sha: str, work: Path, seconds: int):
        self.hosts, self.builder, self.repo, self.sha, self.work, self.seconds = (
            hosts,
            builder,
            repo,
            sha,
            work,
            seconds,
        )
        self.round = 0
        self.archive = git.archive("bench", str(repo), sha, work / "source.tar.gz")
        self.last_artifact = work / "artifact.tar.gz"

    def _environment(self, label: str, mode: str) -> tuple[Environment, list[Path]]:
        roots = [self.work / label / f"r{self.round}" / h.address for h in self.hosts]
        hosts = "\n".join(
            f"          - {{address: {h.address}, port: {h.port}, user: {h.user}, deploy_path: {root}}}"
            for h, root in zip(self.hosts, roots, strict=True)
        )
        b = self.builder
        catalog_apply(
            catalog_parse(
                f"""
services:
  bench:
    repo: {self.repo}
    environments:
      test:
        deploy_path: /srv/bench
        build: {mode}
        builder: {{address: {b.address}, port: {b.port}, user: {b.user}, path: {self.work / "builder"}}}
        build_command: sleep {self.seconds} && sh build.sh && echo round {self.round}
        batch_size: 10
        hosts:
{hosts}
"""
            )
        )
        return Environment.objects.get(service__name="bench", name="test"), roots

    def _deploy(self, environment: Environment) -> Deploy:
        Deploy.objects.filter(environment=environment, status__in=DeployStatus.active()).update(
            status=DeployStatus.SUCCEEDED
        )
        user = get_user_model().objects.get_or_create(username="bench")[0]
        return Deploy.objects.create(
            environment=environment, requested_by=user, ref="main", sha=self.sha, status=DeployStatus.RUNNING
        )

    def on_hosts(self) -> None:
        environment, roots = self._environment("hosts", "hosts")
        deploy = self._deploy(environment)
        with deploy_logging(deploy), Fleet.rolling_out(deploy).connected() as fleet:  # logged as a real deploy's is
            ended = rollout.rollout(fleet, self.archive)
        assert ended.live, ended.reason
        self._check(roots)

    def on_builder(self) -> None:
        environment, roots = self._environment("builder", "builder")
        Artifact.objects.all().delete()  # each round builds (the build command differs anyway)
        deploy = self._deploy(environment)
        with (
            tempfile.TemporaryDirectory() as tmp,
            deploy_logging(deploy),
            Fleet.rolling_out(deploy).connected() as fleet,
        ):
            with fleet.connecting() as begun:  # as the worker: the hosts are connected while it builds
                built = artifact_for(deploy, self.archive, Path(tmp), building=begun)
            self.last_artifact.write_bytes(built.path.read_bytes())  # for the raw stream
            ended = rollout.rollout(fleet, built.path, checksum=built.sha256)
        assert ended.live, ended.reason
        self._check(roots)

    def raw_stream(self) -> None:
        roots = [self.work / "raw" / f"r{self.round}" / h.address for h in self.hosts]

        def one(index: int) -> None:
            host, root = self.hosts[index], shlex.quote(str(roots[index]))
            argv = ["ssh", "-i", str(settings.GANTRY_SSH_KEY), "-p", str(host.port), "-o", "BatchMode=yes"]
            argv += ["-o", f"UserKnownHostsFile={KNOWN_HOSTS}", "-o", "StrictHostKeyChecking=yes"]
            argv += [f"{host.user}@{host.address}", f"mkdir -p {root} && tar -xzf - -C {root}"]
            with self.last_artifact.open("rb") as data:
                subprocess.run(argv, stdin=data, check=True, capture_output=True)

        with ThreadPoolExecutor(max_workers=10) as pool:
            list(pool.map(one, range(len(self.hosts))))

    def _check(self, roots: list[Path]) -> None:
        for root in roots:
            if (root / "current" / "REVISION").read_text().strip() != self.sha:
                raise RuntimeError(f"{root}: current is not the release")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--build-seconds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    logging.getLogger("gantry").setLevel(logging.WARNING)
    call_command("migrate", verbosity=0)
    work = Path(tempfile.mkdtemp(prefix="gantry-bench-build-"))
    repo = work / "repo"
    setup.repo_create(repo)
    # Something to move: a build output of a few MB, as a virtualenv would be (less compressible than code).
    setup.repo_branch(repo, "main", {"build.sh": "set -eu\nhead -c 3000000 /dev/urandom > bundle.bin\n"}, "bench")
    sha = setup.git(repo, "rev-parse", "main").strip()
    hosts, processes = start_hosts(args.hosts + 1, work / "hosts")
    builder, targets = hosts[0], hosts[1:]
    settings.ROLLOUT_PARALLELISM = 10
    bench = BuildBench(targets, builder, repo, sha, work, args.build_seconds)
    results: dict[str, list[float]] = {"build: hosts": [], "build: builder": [], "raw ssh stream": []}
    try:
        for run in range(args.runs):
            bench.round = run
            results["build: hosts"].append(timed(bench.on_hosts))
            results["build: builder"].append(timed(bench.on_builder))
            results["raw ssh stream"].append(timed(bench.raw_stream))
    finally:
        for process in processes:
            process.terminate()
    medians = {name: statistics.median(times) for name, times in results.items()}
    raw, b = medians["raw ssh stream"], args.build_seconds
    size = bench.last_artifact.stat().st_size
    print(f"{args.hosts} hosts, build {b} s, artifact {size / 1e6:.1f} MB, median of {args.runs}:")
    for name, value in medians.items():
        print(f"  {name:<16} {value:6.2f} s")
    target = b + 1.25 * raw
    builder_time = medians["build: builder"]
    print(f"  builder target   {target:6.2f} s (B + 1.25 x raw stream); builder is {builder_time / target:.2f}x of it")
    print(f"  builder vs hosts {builder_time / medians['build: hosts']:.2f}x")


if __name__ == "__main__":
    main()
