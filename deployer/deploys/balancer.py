"""Zero downtime behind HAProxy: take a host out of rotation while it restarts.

Before a host restarts it is set to `drain` (no new sessions) and Gantry waits,
up to the environment's drain timeout, for its sessions to end. After its
health check passes it is set `ready`. Whatever happens in between, a
`finally` makes it ready again, and every deploy starts by making ready any
host of its environment that a dead deploy left drained.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from deployer.errors import StepFailed
from deployer.integrations import haproxy
from deployer.models import Environment

POLL_SECONDS = 0.1

Log = logging.LoggerAdapter[logging.Logger]


@dataclass(frozen=True)
class Balancer:
    address: str
    backend: str
    drain_timeout: int

    @classmethod
    def of(cls, environment: Environment) -> Balancer | None:
        if not environment.lb_runtime_api:
            return None
        return cls(environment.lb_runtime_api, environment.lb_backend, environment.lb_drain_timeout)

    def reconcile(self, names: list[str], log: Log, *, gone: Sequence[str] = (), ready_drained: bool = True) -> None:
        """Check every host is in the backend; make ready the ones left drained (with `ready_drained`). A server
        named in `gone` (a host this environment's deploys reached that left the catalog) is put in maintenance:
        no traffic reaches a host Gantry no longer deploys to. Servers Gantry never deployed to (a backup, another
        tool's) are not touched."""
        try:
            states = haproxy.servers(self.address, self.backend)
            missing = [name for name in names if name not in states]
            if missing:
                raise StepFailed(
                    f"HAProxy backend {self.backend} has no server {', '.join(missing)} (it has "
                    f"{', '.join(sorted(states))}); set lb_server on the host in the catalog"
                )
            for name in names:  # (a canary's lowered weight, left by a deploy that stopped, as configured again)
                haproxy.server_set_weight(self.address, self.backend, name, "100%")
            for name in names if ready_drained else []:
                if states[name].draining:
                    log.warning("%s was left drained in HAProxy (by an earlier deploy that stopped); ready again", name)
                    haproxy.server_set_state(self.address, self.backend, name, "ready")
            self._out_of_rotation(states, [name for name in gone if name not in names], log)
        except haproxy.HAProxyError as exc:
            raise StepFailed(str(exc)) from exc

    def leavers_out(self, gone: Sequence[str], log: Log) -> list[str]:
        """Hosts that left the catalog, out of rotation now (not waiting for the next deploy); the ones it put in
        maintenance. A load balancer that cannot be reached is only logged: the next deploy does it."""
        try:
            return self._out_of_rotation(haproxy.servers(self.address, self.backend), gone, log)
        except haproxy.HAProxyError as exc:
            log.warning("could not take the hosts that left out of rotation in HAProxy (the next deploy will): %s", exc)
            return []

    def _out_of_rotation(self, states: dict[str, haproxy.ServerState], gone: Sequence[str], log: Log) -> list[str]:
        done = []
        for name in sorted(set(states) & set(gone)):
            if not states[name].status.startswith("MAINT"):
                log.warning(
                    "%s/%s is no host of this environment any more (it left the catalog): in maintenance now, "
                    "so it gets no traffic; remove it from HAProxy's configuration",
                    self.backend,
                    name,
                )
                haproxy.server_set_state(self.address, self.backend, name, "maint")
                done.append(name)
        return done

    @contextmanager
    def canary_share(self, canary: list[str], baseline: list[str], percent: int, log: Log) -> Iterator[None]:
        """While the canary is judged it gets about `percent` % of the requests (its weight against the baseline
        servers' 100 each), however few hosts there are; every weight is back as configured afterwards. A load
        balancer that refuses is only logged: the canary then gets its natural share."""
        weight = max(1, min(256, round(percent * 100 * len(baseline) / (100 - percent))))
        try:
            for name in baseline:
                haproxy.server_set_weight(self.address, self.backend, name, "100")
            for name in canary:
                haproxy.server_set_weight(self.address, self.backend, name, str(weight))
            share = 100 * weight * len(canary) / (weight * len(canary) + 100 * len(baseline))
            log.info("the canary gets about %.0f%% of the requests (HAProxy weight %d, the others 100)", share, weight)
        except haproxy.HAProxyError as exc:
            log.warning("could not lower the canary's share in HAProxy (it gets its natural share): %s", exc)
        try:
            yield
        finally:
            for name in [*canary, *baseline]:
                try:
                    haproxy.server_set_weight(self.address, self.backend, name, "100%")
                except haproxy.HAProxyError as exc:
                    log.warning("could not set %s's weight back in HAProxy (the next deploy does): %s", name, exc)

    def keep_out(self, name: str, log: Log) -> None:
        """A host joining the environment: in maintenance until its release is live and healthy (activation
        makes it ready then, and only then)."""
        try:
            haproxy.server_set_state(self.address, self.backend, name, "maint")
        except haproxy.HAProxyError as exc:
            raise StepFailed(f"cannot keep it out of rotation in HAProxy: {exc}") from exc
        log.info("new here: out of rotation in HAProxy (%s/%s) until its release is healthy", self.backend, name)

    @contextmanager
    def drained(self, name: str, log: Log, *, joining: bool = False) -> Iterator[None]:
        """Out of rotation, sessions finished (or the wait timed out), for the block; ready afterwards. A host
        `joining` the environment is made ready only when the block succeeded (else it stays out)."""
        try:
            haproxy.server_set_state(self.address, self.backend, name, "drain")
        except haproxy.HAProxyError as exc:
            raise StepFailed(f"cannot drain it in HAProxy: {exc}") from exc
        succeeded = False
        try:
            self._wait_idle(name, log)
            yield
            succeeded = True
        finally:
            if succeeded or not joining:
                self._ready(name, log)
            else:
                self.keep_out(name, log)

    def _wait_idle(self, name: str, log: Log) -> None:
        started = time.monotonic()
        deadline = started + self.drain_timeout
        while True:
            try:
                sessions = haproxy.servers(self.address, self.backend)[name].sessions
            except (haproxy.HAProxyError, KeyError) as exc:
                raise StepFailed(f"cannot read its sessions in HAProxy: {exc}") from exc
            if sessions == 0:
                log.info("drained in HAProxy (%s/%s) after %.1f s", self.backend, name, time.monotonic() - started)
                return
            if time.monotonic() >= deadline:
                log.warning(
                    "still %d session(s) after the %d s drain timeout; restarting anyway", sessions, self.drain_timeout
                )
                return
            time.sleep(POLL_SECONDS)

    def _ready(self, name: str, log: Log) -> None:
        try:
            haproxy.server_set_state(self.address, self.backend, name, "ready")
            log.info("ready in HAProxy (%s/%s)", self.backend, name)
        except haproxy.HAProxyError as exc:
            # The next deploy's reconcile makes it ready; say so loudly now.
            log.error(
                "could not make it ready in HAProxy (%s); the next deploy will, or run: %s",
                exc,
                f"echo 'set server {self.backend}/{name} state ready' | socat stdio {self.address}",
            )
