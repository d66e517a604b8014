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

from deployer.integrations import git
from deployer.models import Environment

CACHE_MARK = "GANTRY-CACHE "
ENTRIES_KEPT = 3  # per service and trust level: the newest entries (older dependency sets are dropped)


@dataclass(frozen=True)
class CachePlan:
    """The script parts of one build's cache: `inner` runs in the sandbox before the build (restore), `outer`
    after the sandbox has ended (save); `binds` shows the level's entries to the sandbox, read-only."""

    binds: str
    inner: str
    outer: str


def cache_level(environment: Environment) -> str:
    """Which cache a build reads and writes: one for production builds, one for every other."""
    return "production" if environment.production else "other"


def cache_key(environment: Environment, sha: str) -> str | None:
    """The entry's name, computed here from the commit's key files (the build cannot choose it), the build
    command and the directories kept; None without build_cache."""
    spec = environment.build_cache or {}
    keys, dirs = list(spec.get("key") or []), list(spec.get("dirs") or [])
    if not keys or not dirs:
        return None
    service = environment.service.name
    parts = [environment.build_command, str(environment.strict_commands), *dirs]
    parts += [f"{path}={git.blob_id(service, sha, path) or 'missing'}" for path in keys]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def cache_plan(environment: Environment, key: str, *, base: str, work: str) -> CachePlan:
    """The cache steps of one build whose entry is `key`. `work` is the build's directory on the builder;
    every path the save step writes is one it made itself, outside that directory (the build owned it, and
    may have left a symlink anywhere in it)."""
    q = shlex.quote
    store = f"{base}/cache/{environment.service.name}/{cache_level(environment)}"
    dirs = " ".join(q(d) for d in (environment.build_cache or {}).get("dirs") or [])
    entry = f"{q(base)}/cache/{key}.tar"
    inner = (
        f'if [ -f {entry} ]; then tar -xf {entry}; echo "{CACHE_MARK}restored {key}"; '
        f'else echo "{CACHE_MARK}missing {key}"; fi\n'
    )
    src = f"{q(work)}/src"
    outer = (
        f"if [ ! -f {q(store)}/{key}.tar ]; then\n"
        f"  mkdir -p -- {q(store)}\n"
        f'  set --; for d in {dirs}; do if [ -e {src}/"$d" ] || [ -L {src}/"$d" ]; then set -- "$@" "$d"; fi; done\n'
        f"  if [ $# -gt 0 ]; then\n"
        f"    part=$(mktemp -p {q(store)} .part.XXXXXX)\n"
        f'    if tar -cf - -C {src} -- "$@" > "$part"; then mv -f -- "$part" {q(store)}/{key}.tar; '
        f'echo "{CACHE_MARK}saved {key}"; else rm -f -- "$part"; fi\n'
        f"  fi\n"
        f"  ls -1t -- {q(store)}/*.tar 2>/dev/null | tail -n +{ENTRIES_KEPT + 1} | while read -r old; do "
        'rm -f -- "$old"; done\n'
        f"fi\n"
    )
    return CachePlan(binds=f"--ro-bind-try {q(store)} {q(base)}/cache ", inner=inner, outer=outer)
