"""What a rollout does on one host, and the shell each step sends there.

Layout on each host, under the deploy path:
    releases/<deploy id>/   one directory per release, never changed once live
    current -> releases/<id> switched atomically (new symlink renamed over it)
    shared/                 kept across releases (pid files, logs, uploads)

Each step is one SSH session (a round trip costs tens of milliseconds; a
rollout of many hosts spends most of its time in them: bench/rollout.py).
Every value put into a script is quoted; a release id is digits or refused.
Lines a script prints for Gantry (GANTRY-PREVIOUS, GANTRY-SWITCHED) are read
once, where Gantry printed them; the same text from a build is only logged.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from pathlib import Path

from deployer.choices import DeployStatus
from deployer.deploys.fleet import HostRun, connection_ensure
from deployer.errors import StepFailed
from deployer.integrations import ssh
from deployer.lib.secrets import scrubbed
from deployer.models import Deploy, Environment


def _exports(run: HostRun, deploy: Deploy, release: str) -> dict[str, str]:
    """Variables the commands can use; values quoted when exported."""
    return {
        "GANTRY_DEPLOY_ID": str(deploy.pk),
        "GANTRY_SERVICE": deploy.environment.service.name,
        "GANTRY_ENVIRONMENT": deploy.environment.name,
        "GANTRY_REF": deploy.ref,
        "GANTRY_SHA": deploy.sha,
        "GANTRY_PREVIOUS_SHA": deploy.previous_sha,
        "GANTRY_HOSTS": " ".join(run.peers),
        "GANTRY_HOST": run.host.address,
        "GANTRY_DEPLOY_PATH": run.path,
        "GANTRY_RELEASE_DIR": f"{run.path}/releases/{release}",
    }


def script_in(cwd: str, body: str, env: dict[str, str] | None = None) -> str:
    exports = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in (env or {}).items())
    return f"cd -- {shlex.quote(cwd)} || exit 1\n{exports}{body}"


# Lines a step's script prints for Gantry, not for the log.
PREVIOUS_MARK = "GANTRY-PREVIOUS "
MISSING_MARK = "GANTRY-MISSING "
STAGED_MARK = "GANTRY-STAGED"
BADSUM_MARK = "GANTRY-BADSUM"
SWITCHED_MARK = "GANTRY-SWITCHED"
RUNS_MARK = "GANTRY-RUNS"


def remote(
    run: HostRun,
    script: str,
    *,
    quiet: bool = False,
    stdin: Sequence[bytes | Path] = (),
    on_mark: Callable[[str], bool] | None = None,
    timeout: int | None = None,
    lines: list[str] | None = None,
    stoppable: bool = True,
) -> list[str]:
    """Run `script` on the host; return its output lines (also logged unless quiet; also kept in `lines`,
    which the caller still has when the script fails).

    Each line goes to `on_mark` first; one it takes (True) is Gantry's, not the log's. A stoppable
    command is stopped when the person cancelling the deploy asked for it (the release phase is not:
    a migration stopped halfway is worse than one that finishes).
    """
    lines = [] if lines is None else lines

    def emit(line: str) -> None:
        if on_mark is not None and on_mark(line):
            return
        lines.append(line)
        if not quiet:
            run.log.info("%s", line)

    connection_ensure(run)
    assert run.conn is not None
    stop = run.stop if stoppable else None
    try:
        ssh.run(run.conn, script, timeout=timeout or run.timeout, output=emit, stdin=stdin, stop=stop)
    except ssh.CommandStopped:
        run.stopped = True
        raise
    return lines


def last_lines(lines: list[str], count: int = 5) -> str:
    """What a failed command printed last, for a reason a person reads."""
    shown = [scrubbed(line)[:200] for line in lines if line.strip()][-count:]
    return f"; its last lines: {' | '.join(shown)}" if shown else "; it printed nothing"


def command_script(
    run: HostRun, deploy: Deploy, cwd: str, command: str, release: str, extra: dict[str, str] | None = None
) -> str:
    """A person's command as the host runs it: in `cwd`, with the release's config and Gantry's variables
    (and `extra` ones) in its environment (the config is read from its 0600 file, never put on a command
    line), and under `set -eu` unless the environment says `strict_commands: false`."""
    environment = deploy.environment
    lines = [f"cd -- {shlex.quote(cwd)} || exit 1"]
    if environment.config:
        lines.append(f"set -a; . {shlex.quote(config_path(run, environment))}; set +a")
    variables = {**_exports(run, deploy, release), **(extra or {})}
    lines += [f"export {name}={shlex.quote(value)}" for name, value in variables.items()]
    if environment.strict_commands:
        lines.append("set -eu")
    return "\n".join([*lines, command]) + "\n"


def config_path(run: HostRun, environment: Environment) -> str:
    return f"{run.path}/shared/{environment.config_file}"


def check_kept(run: HostRun, deploy: Deploy) -> None:
    """A rollback's staging: the release must still be complete on the host (pruned ones are gone)."""
    release = deploy.release_name
    run.log.info("checking that release %s (%s) is still in %s/releases", release, deploy.sha[:12], run.path)
    script = script_in(
        run.path,
        f"printf '{PREVIOUS_MARK}%s\\n' \"$(readlink -- current || true)\"\n"
        f'if [ "$(cat releases/{release}/REVISION 2>/dev/null)" != {shlex.quote(deploy.sha)} ]; then\n'
        f"  echo 'release {release} of {deploy.sha[:12]} is no longer complete on this host (pruned?)'; exit 1\nfi\n",
    )

    remote(run, script, on_mark=_StageMarks(run))


def release_runs_here(run: HostRun, deploy: Deploy) -> bool:
    """A join: does the host run the release already (a host dropped from the catalog and added back)? Then its
    release is not replaced under the processes that run it: it is switched (to itself), restarted and checked
    like any other host. Reads where `current` points, as staging does."""
    release = shlex.quote(f"releases/{deploy.release_name}")
    script = (
        f"cd -- {shlex.quote(run.path)} 2>/dev/null || exit 0\n"
        f"printf '{PREVIOUS_MARK}%s\\n' \"$(readlink -- current || true)\"\n"
        f'if [ "$(readlink -- current)" = {release} ] && '
        f'[ "$(cat {release}/REVISION 2>/dev/null)" = {shlex.quote(deploy.sha)} ]; then echo {RUNS_MARK}; fi\n'
    )
    return RUNS_MARK in remote(run, script, quiet=True, on_mark=_StageMarks(run))


def stage(
    run: HostRun, deploy: Deploy, archive: Path, config: bytes = b"", *, with_build: bool = True, checksum: str = ""
) -> None:
    """One session per host: prepare the release directory, write the config, stream the archive into it,
    link the shared files and directories, build (unless `with_build` is False: before_build hooks come
    first, and build() follows them). With `checksum`, `archive` is an artifact built once (no build here):
    its sha256 is checked on the host before it is unpacked.

    Every round trip to a host costs tens of milliseconds; a rollout of many
    hosts spends most of its time in them (bench/rollout.py). The config comes
    first on the same standard input as the archive (`dd` takes exactly its
    bytes), so neither ever appears on a command line.
    """
    environment = deploy.environment
    release = f"releases/{deploy.release_name}"  # (a join stages the release that runs there: its name)
    run.log.info("staging %s (%s) in %s/%s", deploy.sha[:12], deploy.ref, run.path, release)
    steps = [
        f"set -e\nmkdir -p -- {shlex.quote(run.path)}\ncd -- {shlex.quote(run.path)}",
        f"mkdir -p releases shared\nrm -rf -- {release}\nmkdir -- {release}",
        f"printf '{PREVIOUS_MARK}%s\\n' \"$(readlink -- current || true)\"",
    ]
    if config:
        target = shlex.quote(f"shared/{environment.config_file}")
        steps.append(
            f'mkdir -p -- "$(dirname -- {target})"\n(umask 077; dd bs=1 count={len(config)} of={target}.gantry-new '
            f"2>/dev/null)\nmv -f -- {target}.gantry-new {target}"
        )
    if checksum:  # an artifact built once: checked before anything of it is unpacked
        part = f"{release}.tar.gz.part"
        steps.append(
            f"cat > {part}\n"
            f'if [ "$(sha256sum < {part} | cut -d" " -f1)" != {shlex.quote(checksum)} ]; then\n'
            f"  rm -f -- {part}; echo {BADSUM_MARK}; exit 4\nfi\n"
            f"echo 'artifact sha256 checked'\ntar -xzf {part} -C {release}\nrm -f -- {part}"
        )
    else:
        steps.append(f"tar -xzf - -C {release}")
    steps.append(f"printf '%s\\n' {shlex.quote(deploy.sha)} > {release}/REVISION")
    steps += _shared_links(run, environment, release)
    steps.append(f"echo {STAGED_MARK}")
    script = "\n".join(steps) + "\n"
    build_command = environment.build_command
    if with_build and build_command.strip():
        run.log.info("building")
        script += "set +e\n" + command_script(run, deploy, f"{run.path}/{release}", build_command, deploy.release_name)
    marks = _StageMarks(run)
    try:
        remote(run, script, stdin=[config, archive] if config else [archive], on_mark=marks)
    except StepFailed as exc:
        if marks.bad_checksum:
            raise StepFailed(
                f"the artifact arrived damaged on {run.name}: its sha256 is not {checksum}; nothing was unpacked"
            ) from exc
        if marks.missing:
            raise StepFailed(
                f"the shared file {marks.missing} is missing: create {run.path}/shared/{marks.missing} on "
                f"{run.name} (every release links it), then deploy again"
            ) from exc
        raise


def build(run: HostRun, deploy: Deploy) -> None:
    """build_command on its own session (when before_build hooks ran between unpacking and building)."""
    if not deploy.environment.build_command.strip():
        return
    run.log.info("building")
    release = deploy.release_name
    remote(
        run, command_script(run, deploy, f"{run.path}/releases/{release}", deploy.environment.build_command, release)
    )


def _shared_links(run: HostRun, environment: Environment, release: str) -> list[str]:
    """Shell that links shared/ into the release: directories made when missing, files required."""
    steps = []
    files = list(environment.shared_files or [])
    if environment.config and environment.config_file not in files:
        files.append(environment.config_file)  # Gantry wrote it just now
    for kind, path in [*(("dir", d) for d in environment.shared_dirs or []), *(("file", f) for f in files)]:
        shared, inside = shlex.quote(f"{run.path}/shared/{path}"), shlex.quote(f"{release}/{path}")
        if kind == "dir":
            steps.append(f"mkdir -p -- {shared}")
        else:
            steps.append(f"[ -e {shared} ] || {{ echo {shlex.quote(MISSING_MARK + path)}; exit 3; }}")
        steps.append(f'rm -rf -- {inside}\nmkdir -p -- "$(dirname -- {inside})"\nln -s -- {shared} {inside}')
    return steps


class _StageMarks:
    """Reads the lines a staging script prints for Gantry: what `current` pointed at (the first such line
    only, and only a release id: it ends up in later scripts), a shared file found missing, and the end of
    Gantry's part. After that the branch's build runs: its lines are its own, whatever they look like."""

    def __init__(self, run: HostRun) -> None:
        self.run = run
        self.seen_previous = False
        self.staged = False
        self.missing = ""
        self.bad_checksum = False

    def __call__(self, line: str) -> bool:
        if self.staged:
            return False
        if line == STAGED_MARK:
            self.staged = True
        elif line == BADSUM_MARK:
            self.bad_checksum = True
        elif line.startswith(MISSING_MARK):
            self.missing = line.removeprefix(MISSING_MARK)
        elif line.startswith(PREVIOUS_MARK) and not self.seen_previous:
            self.seen_previous = True
            self.run.previous_release = _release_id(self.run, line.removeprefix(PREVIOUS_MARK))
        else:
            return False
        return True


def _release_id(run: HostRun, value: str) -> str:
    value = value.strip().removeprefix("releases/")
    if value and not value.isdigit():
        run.log.warning("current points at %r, not a release of Gantry's; treating it as no release", value[:100])
        return ""
    return value


def release_phase(run: HostRun, deploy: Deploy) -> None:
    """The release phase, on this one host: release_command in the new release, shared links and config in
    place, before any host switches (e.g. migrations). StepFailed names the host and the last lines."""
    release = deploy.release_name
    lines: list[str] = []
    try:
        remote(
            run,
            command_script(run, deploy, f"{run.path}/releases/{release}", deploy.environment.release_command, release),
            lines=lines,
            stoppable=False,
        )
    except StepFailed as exc:
        raise StepFailed(f"release_command failed on {run.name}: {exc}{last_lines(lines)}") from exc


def post_release(run: HostRun, deploy: Deploy) -> None:
    """post_release_command, on this one host, in `current`, once every host is live (e.g. contract
    migrations). StepFailed names the host and the last lines."""
    release = deploy.release_name
    lines: list[str] = []
    try:
        remote(
            run,
            command_script(run, deploy, f"{run.path}/current", deploy.environment.post_release_command, release),
            lines=lines,
            stoppable=False,
        )
    except StepFailed as exc:
        raise StepFailed(f"post_release_command failed on {run.name}: {exc}{last_lines(lines)}") from exc


def prune(run: HostRun, deploy: Deploy) -> None:
    """Remove old releases, choosing by deploy history (never by mtime); failures only warn.

    It runs after the deploy's end is recorded, when the next deploy may already be staging: so only
    releases older than this deploy's are candidates (release ids are deploy ids, which only grow).
    """
    keep = " ".join(sorted(name for name in _releases_to_keep(deploy) | {run.previous_release} if name.isdigit()))
    script = script_in(
        f"{run.path}/releases",
        f'for name in *; do\n  case "$name" in *[!0-9]*|"") continue;; esac\n'
        f'  [ "$name" -lt {int(deploy.pk)} ] || continue\n'
        f'  case " {keep} " in *" $name "*) continue;; esac\n'
        f'  echo "removing old release $name"\n  rm -rf -- "$name"\ndone\n',
    )
    try:
        remote(run, script)
    except StepFailed as exc:
        run.log.warning("could not remove old releases (the deploy is fine): %s", exc)


def _releases_to_keep(deploy: Deploy) -> set[str]:
    environment = deploy.environment
    recent = (
        Deploy.objects.filter(environment=environment, status__in=DeployStatus.live())
        .exclude(pk=deploy.pk)
        .values_list("pk", "rollback_of_id")[: environment.releases_to_keep - 1]
    )
    return {deploy.release_name, *(str(rollback_of or pk) for pk, rollback_of in recent)}
