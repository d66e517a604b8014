"""A build's sandbox on the builder (bubblewrap): what isolates one build from every other (builder.py), and
the migration check from the build it checks (lint_run.py)."""

from __future__ import annotations

import shlex


def sandboxed(command: str, *, base: str, work: str, binds: str = "", writable: bool = True) -> str:
    """`command` (a shell script) in a bubblewrap sandbox of its own on the builder: the whole filesystem
    read-only but `work` (this build's fresh directory, its HOME inside, seen at <base>/build: every build
    runs at the same path, so what a dependency cache holds stays valid), a private /tmp, /var/tmp, /dev/shm
    and /run (no user systemd or D-Bus to ask for a lasting unit), the builder's path hidden (no other
    build's tree or any artifact visible; `binds` may show the build's cache, read-only), and a PID
    namespace: when the command ends, every process it started is killed by the kernel, however it
    detached. No new privileges (crontab and at are setgid: they cannot write their spools). The network
    stays: builds download their dependencies. `writable=False` shows `work` read-only (a check of what a
    build made)."""
    q = shlex.quote
    inside = sandbox_dir(base)
    bind = "--bind" if writable else "--ro-bind"
    return (
        "bwrap --ro-bind / / --dev /dev --proc /proc --tmpfs /tmp --tmpfs /var/tmp --tmpfs /dev/shm "
        "--tmpfs /run --ro-bind-try /run/systemd/resolve /run/systemd/resolve "
        f"--tmpfs {q(base)} {bind} {q(work)} {q(inside)} {binds}--unshare-pid --unshare-ipc --die-with-parent "
        f"--new-session --setenv HOME {q(inside)}/home --setenv TMPDIR /tmp --chdir {q(inside)} "
        f"/bin/sh -c {q(command)}"
    )


def sandbox_dir(base: str) -> str:
    """Where every sandboxed build sees its own directory."""
    return f"{base}/build"


# Run before a sandboxed build: whether bubblewrap can make a sandbox here, and if not, why.
SANDBOX_PROBE = (
    'if ! command -v bwrap >/dev/null 2>&1; then echo "GANTRY-NO-SANDBOX bubblewrap (bwrap) is not installed"; '
    "exit 3; fi\n"
    "if ! why=$(bwrap --ro-bind / / --dev /dev --proc /proc --unshare-pid --die-with-parent true 2>&1); then "
    'echo "GANTRY-NO-SANDBOX bwrap cannot make a sandbox: $(printf %s "$why" | head -c 300)"; exit 3; fi\n'
)
NO_SANDBOX_MARK = "GANTRY-NO-SANDBOX "
