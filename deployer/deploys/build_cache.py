"""A dependency cache for builds on a builder (build_cache: {key: [requirements.txt], dirs: [.venv]}): the
directories a build makes from its dependency files are kept on the builder, keyed by those files, and put
back before the next build with the same files, so a redeploy that changes no dependency skips installing.

Safe under isolation (builder.py): a cache entry is written only from a build of the same trust level as the
builds that read it (production builds have a cache of their own, which no other build can write), the entry
is restored inside the build's sandbox (so a branch's symlinks cannot steer it anywhere else) and saved by
Gantry after every process of the build has ended. Every build runs at the same path inside its sandbox, so
what a cache holds (a virtualenv's absolute paths) is valid in the next build.
"""

from __future__ import annotations

import hashlib
import shlex
from dataclasses import dataclass

from deployer.models import Environment

CACHE_MARK = "GANTRY-CACHE "
ENTRIES_KEPT = 3  # per service and trust level: the newest entries (older dependency sets are dropped)
KEY_FILE = ".gantry-cache-key"


@dataclass(frozen=True)
class CachePlan:
    """The script parts of one build's cache: `inner` runs in the sandbox before the build (restore, and the
    key written for `outer`), `outer` after the sandbox has ended (save); `binds` adds the entries, read-only."""

    binds: str
    inner: str
    outer: str


def cache_level(environment: Environment) -> str:
    """Which cache a build reads and writes: one for production builds, one for every other."""
    return "production" if environment.production else "other"


def cache_plan(environment: Environment, *, base: str, work: str, inside: str) -> CachePlan | None:
    """The cache steps for this environment's builds (None without build_cache). `work` is the build's
    directory on the builder, `inside` the same directory as the sandbox shows it."""
    spec = environment.build_cache or {}
    keys, dirs = list(spec.get("key") or []), list(spec.get("dirs") or [])
    if not keys or not dirs:
        return None
    q = shlex.quote
    store = f"{base}/cache/{environment.service.name}/{cache_level(environment)}"
    salt = hashlib.sha256(
        "\0".join([environment.build_command, str(environment.strict_commands), *dirs]).encode()
    ).hexdigest()
    files = " ".join(q(k) for k in keys)
    inner = (
        f"key=$( {{ printf '%s\\0' {salt}; for f in {files}; do printf '%s\\0' \"$f\"; "
        f'if [ -f "$f" ] && [ ! -L "$f" ]; then sha256sum < "$f"; else echo missing; fi; done; }} '
        "| sha256sum | cut -c1-64 )\n"
        f"printf '%s\\n' \"$key\" > {q(inside)}/{KEY_FILE}\n"
        f'if [ -f {q(base)}/cache/"$key".tar ]; then tar -xf {q(base)}/cache/"$key".tar; '
        f'echo "{CACHE_MARK}restored $key"; else echo "{CACHE_MARK}missing $key"; fi\n'
    )
    saved = " ".join(q(d) for d in dirs)
    outer = (
        f"key=$(head -c 64 {q(work)}/{KEY_FILE} 2>/dev/null || true)\n"
        f'case "$key" in *[!0-9a-f]*|"") key="";; esac\n'
        f'if [ ${{#key}} = 64 ] && [ ! -f {q(store)}/"$key".tar ]; then\n'
        f"  mkdir -p -- {q(store)}\n"
        f'  set --; for d in {saved}; do if [ -e {q(work)}/src/"$d" ]; then set -- "$@" "$d"; fi; done\n'
        f'  if [ $# -gt 0 ] && tar -cf {q(store)}/."$key".part -C {q(work)}/src -- "$@"; then\n'
        f'    mv -f -- {q(store)}/."$key".part {q(store)}/"$key".tar; echo "{CACHE_MARK}saved $key"\n'
        f"  fi\n"
        f"  ls -1t -- {q(store)}/*.tar 2>/dev/null | tail -n +{ENTRIES_KEPT + 1} | while read -r old; do "
        'rm -f -- "$old"; done\n'
        f"fi\n"
    )
    binds = f"--ro-bind-try {q(store)} {q(base)}/cache "
    return CachePlan(binds=binds, inner=inner, outer=outer)
