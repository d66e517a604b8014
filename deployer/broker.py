"""kombu's filesystem transport (the embedded broker), publishing atomically.

kombu writes a message file in place, and a consumer polling the folder may
move it away before its content is written: the worker then reads an empty
message and stops with "Unrecoverable error: JSONDecodeError" (seen under
load in the tests). Writing under a temporary name that consumers skip, then
renaming, makes a message appear whole or not at all. URL: gantryfs://
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:  # type: ignore[override]  # kombu: (queue, message)
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        temporary = os.path.join(self.data_folder_out, f".{name}.tmp")  # not "<queue>.msg": consumers skip it
        try:
            with open(temporary, "wb") as file:
                file.write(str_to_bytes(dumps(payload)))
            os.replace(temporary, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


TRANSPORT_ALIASES["gantryfs"] = "deployer.broker:Transport"
