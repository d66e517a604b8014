"""Gantry's demo background worker: says it is ready, then counts the minutes. Standard library only.

It runs beside the web process (the `worker` role); `bin/worker` restarts it and
`bin/worker-alive` is its health check: the process lives and has said it is ready.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path


def main() -> int:
    shared = Path(os.environ["GANTRY_DEPLOY_PATH"]) / "shared"
    running = True

    def stop(signum: int, frame: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    (shared / "worker.ready").write_text(f"{os.getpid()}\n")
    print(f"worker {os.getpid()} ready (release {os.environ.get('GANTRY_SHA', '?')[:12]})", flush=True)
    ticks = 0
    while running:
        time.sleep(0.2)
        ticks += 1
        if ticks % 300 == 0:
            print(f"worker {os.getpid()} still here", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
