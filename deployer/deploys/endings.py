"""How a rollout ended: a value the rollout returns and execution.py maps onto the deploy's final state.
Exceptions are for the unexpected; a host failing, a rollback, a cancel are endings."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Ending(StrEnum):
    LIVE = "live"  # every host not skipped runs the new release (the notes say what went wrong without failing)
    ROLLED_BACK = "rolled_back"  # a host failed and every host this deploy switched went back
    ROLLBACK_FAILED = "rollback_failed"  # ... and going back failed too: hosts may run different releases
    CANCELLED = "cancelled"  # someone cancelled it (or an admin ended it): stopped between steps
    FAILED = "failed"  # a host or a step failed; nothing was rolled back (the reason says where hosts are)


@dataclass(frozen=True)
class Ended:
    ending: Ending
    reason: str = ""

    @property
    def live(self) -> bool:
        return self.ending is Ending.LIVE


def failed(reason: str) -> Ended:
    return Ended(Ending.FAILED, reason)
