"""One release to 20 sshd hosts, directly and through one bastion (the catalog's proxy_jump): what does the
jump host cost?

Run: .venv/bin/python bench/bastion.py [--hosts 20] [--batch 10] [--runs 3]

Both runs are Gantry's rollout (bench/rollout.py's, in this process, with its database log) on fresh deploy
directories; through the bastion, each host is a direct-tcpip channel of one SSH connection to the bastion
(opened once per worker process and shared). The median of each is printed with its ratio to direct.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rollout import Bench, free_port, start_hosts, timed

from deployer.demo import setup
from deployer.demo.hosts import SshdHost
from deployer.integrations import git

BASTION = "127.0.2.1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    logging.getLogger("gantry").setLevel(logging.WARNING)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    work = Path(tempfile.mkdtemp(prefix="gantry-bench-bastion-"))
    repo = work / "repo"
    setup.repo_create(repo)
    sha = setup.git(repo, "rev-parse", "main").strip()
    archive = git.archive("bench", str(repo), sha, work / "release.tar.gz")
    hosts, processes = start_hosts(args.hosts, work / "hosts")
    bastion = SshdHost(work / "bastion", BASTION, free_port(BASTION))
    setup.hosts_trust([bastion])
    processes.append(bastion.start())
    bench = Bench(hosts, args.batch, repo, archive, sha, work)
    jump = f"{bastion.user}@{bastion.address}:{bastion.port}"
    times: dict[str, list[float]] = {"direct": [], f"through {jump}": []}
    try:
        for number in range(args.runs):
            bench.round = number
            bench.proxy_jump = ""
            times["direct"].append(timed(lambda: bench.gantry(parallelism=args.batch, batch=args.batch, label="d")))
            bench.proxy_jump = jump
            times[f"through {jump}"].append(
                timed(lambda: bench.gantry(parallelism=args.batch, batch=args.batch, label="b"))
            )
    finally:
        for process in processes:
            process.terminate()
    baseline = statistics.median(times["direct"])
    print(f"\none release to {args.hosts} sshd hosts, batch {args.batch}, median of {args.runs} runs")
    print(f"{'gantry rollout':<36} {'median s':>9} {'vs direct':>10}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:<36} {median:>9.2f} {median / baseline:>9.2f}x")


if __name__ == "__main__":
    main()
