"""Where the server's URL and the token come from: GANTRY_URL / GANTRY_TOKEN, else the file `gantry login`
wrote ($GANTRY_CONFIG, or $XDG_CONFIG_HOME/gantry/config.json; mode 0600, as a token is a password)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

LOOPBACK = {"localhost", "127.0.0.1", "::1"}


class ConfigProblem(Exception):
    """The URL or token is missing or unusable; the message says how to fix it."""


@dataclass(frozen=True)
class Target:
    url: str  # e.g. https://gantry.example.com (no trailing slash)
    token: str


def config_path() -> Path:
    if os.environ.get("GANTRY_CONFIG"):
        return Path(os.environ["GANTRY_CONFIG"])
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "gantry" / "config.json"


def url_checked(url: str) -> str:
    """The server's URL without a trailing slash; a token never crosses a network in clear."""
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ConfigProblem(f"{url!r} is not a Gantry URL: give it as https://gantry.example.com")
    insecure = os.environ.get("GANTRY_INSECURE_HTTP") == "1"
    if parts.scheme == "http" and parts.hostname not in LOOPBACK and not insecure:
        raise ConfigProblem(
            f"{url} is plain http: the token would cross the network in clear; use https:// "
            "(or set GANTRY_INSECURE_HTTP=1 for a test server you trust)"
        )
    return url


def target() -> Target:
    """The server to talk to and the token to send."""
    saved: dict[str, str] = {}
    path = config_path()
    if path.exists():
        try:
            loaded = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigProblem(f"cannot read {path}: {exc}; run gantry login again") from exc
        saved = {k: v for k, v in loaded.items() if isinstance(v, str)} if isinstance(loaded, dict) else {}
    url = os.environ.get("GANTRY_URL") or saved.get("url", "")
    token = os.environ.get("GANTRY_TOKEN") or saved.get("token", "")
    if not url or not token:
        raise ConfigProblem(
            "no Gantry to talk to: run gantry login, or set GANTRY_URL and GANTRY_TOKEN "
            "(a personal token made on the server's /me/ page)"
        )
    return Target(url=url_checked(url), token=token.strip())


def target_save(saved: Target) -> Path:
    """Write the file `target` reads, readable by its owner only."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # A new file (never one that was there, nor a link someone put there), 0600 from its first byte, then
    # moved over the old one at once: the token is never readable by others, not even for a moment.
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as file:
            json.dump({"url": saved.url, "token": saved.token}, file)
        os.replace(part, path)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    return path


def target_forget() -> bool:
    path = config_path()
    if path.exists():
        path.unlink()
        return True
    return False
