"""One line of a .env file that a POSIX shell (`set -a; . ./.env`) and the common dotenv readers
(python-dotenv, django-environ, Node's dotenv) read alike: `KEY='value'`. Single quotes mean no expansion
and no escapes to all of them, so a value may hold neither a single quote nor a line break."""

from __future__ import annotations

import re

KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
UNSAFE = ("'", "\n", "\r", "\0")


def value_problem(value: str) -> str:
    """Why `value` cannot be one .env line read alike by shells and dotenv readers; "" when it can."""
    if any(bad in value for bad in UNSAFE):
        return "holds a single quote or a line break, which a .env line cannot carry for both shells and dotenv"
    return ""


def dotenv_line(key: str, value: str) -> str:
    return f"{key}='{value}'"
