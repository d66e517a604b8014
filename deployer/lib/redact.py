"""Credentials written into URLs (https://user:token@host/repo.git) never leave Gantry in text it shows
or sends: pages, deploy reasons, sync errors, Slack, logs."""

from __future__ import annotations

import re

# scheme://userinfo@ — the userinfo (a user, a token, user:password) is what goes.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@]+@")
HIDDEN = "•••"


def redacted(text: str) -> str:
    """`text` with every URL's user and password replaced by •••."""
    return _USERINFO.sub(rf"\1{HIDDEN}@", text)
