"""How many SSH connections one worker process holds open at once (GANTRY_SSH_MAX_CONNECTIONS).

Each open connection is a socket, a paramiko transport thread and its buffers:
a rollout to hundreds of hosts must not open them all at once. A connection
takes a slot when it opens and gives it back when it closes; a rollout with
more hosts than slots closes each host's connection after each step (fleet.py),
so slots always come free. Waiting for one is bounded, and says why.
"""

from __future__ import annotations

import threading

from django.conf import settings
from fabric import Connection

from deployer.errors import StepFailed

_lock = threading.Lock()
_slots: tuple[int, threading.BoundedSemaphore] | None = None


def _semaphore() -> threading.BoundedSemaphore:
    global _slots
    with _lock:
        if _slots is None or _slots[0] != settings.SSH_MAX_CONNECTIONS:
            _slots = (settings.SSH_MAX_CONNECTIONS, threading.BoundedSemaphore(settings.SSH_MAX_CONNECTIONS))
        return _slots[1]


def slot_take(what: str) -> threading.BoundedSemaphore:
    """A slot for one more connection (to `what`), waiting at most the command timeout for one to come free."""
    semaphore = _semaphore()
    if not semaphore.acquire(timeout=settings.SSH_COMMAND_TIMEOUT):
        raise StepFailed(
            f"{what}: no SSH connection came free within {settings.SSH_COMMAND_TIMEOUT} s "
            f"(this worker holds GANTRY_SSH_MAX_CONNECTIONS={settings.SSH_MAX_CONNECTIONS} open)"
        )
    return semaphore


def slots_free() -> int:
    """How many more connections this process may open now (tests and bench/rollout.py read it)."""
    return _semaphore()._value  # BoundedSemaphore has no public counter


class SlotConnection(Connection):
    """A Fabric connection that gives its slot back when it closes (once, however often it is closed)."""

    # Fabric's Connection turns unknown attributes into config keys: the slot lives in the instance's __dict__.

    def hold(self, semaphore: threading.BoundedSemaphore) -> None:
        object.__setattr__(self, "_gantry_slot", semaphore)

    def close(self) -> None:
        try:
            super().close()
        finally:
            slot = self.__dict__.pop("_gantry_slot", None)
            if slot is not None:
                slot.release()
