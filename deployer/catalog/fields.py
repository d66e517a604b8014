"""The values catalog.yml holds: names, paths, URLs, hosts, globs, config; each rule says how to fix a bad one."""

from __future__ import annotations

import re
import string
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from deployer.apitests.network import blocked_host, origin_of, show_origin
from deployer.lib.dotenv import KEY_RE as CONFIG_KEY_RE
from deployer.lib.dotenv import value_problem
from deployer.lib.refs import RefError, branch_name_check

NAME_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,49}")
USER_RE = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")
HOST_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,253}[A-Za-z0-9])?|\[?[0-9a-fA-F:]+\]?")
GITHUB_REPO_RE = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+")
SCP_LIKE_RE = re.compile(r"[\w.-]+@[\w.-]+:[^\s]+")
LB_NAME_RE = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
PRINCIPAL_RE = re.compile(r"@?[\w.@+-]{1,150}")
SECRET_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")
GIT_SCHEMES = {"https", "http", "ssh", "git", "file"}
HEALTH_PLACEHOLDERS = {"address"}


def valid_name(value: str) -> str:
    if not NAME_RE.fullmatch(value):
        raise ValueError("use lower-case letters, digits, '-' and '_' (at most 50), starting with a letter or digit")
    return value


def valid_absolute_path(value: str) -> str:
    if not value.startswith("/") or "\n" in value or "\0" in value:
        raise ValueError("must be an absolute path, like /srv/myapp")
    return value.rstrip("/") or "/"


def valid_repo_url(value: str) -> str:
    if value.startswith("/") or SCP_LIKE_RE.fullmatch(value):
        return value
    parts = urlsplit(value)
    if parts.scheme in GIT_SCHEMES and (parts.netloc or parts.scheme == "file") and " " not in value:
        return value
    raise ValueError(
        "is not a git URL: use https://host/owner/name.git, git@host:owner/name.git, ssh://..., or an absolute path"
    )


def valid_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError("must be an http:// or https:// URL")
    return value


def valid_secret_name(value: str) -> str:
    if not SECRET_NAME_RE.fullmatch(value):
        raise ValueError(
            "a secret is named like CI_PASSWORD (letters, digits, _); its value comes from GANTRY_SECRET_CI_PASSWORD"
        )
    return value


def valid_origin(value: str) -> str:
    try:
        origin = origin_of(value)
    except ValueError as exc:
        raise ValueError("must be an origin like https://auth.example.com or http://10.0.0.5:8080") from exc
    if urlsplit(value).path not in {"", "/"} or urlsplit(value).query:
        raise ValueError("must be an origin (scheme, host and port) without a path, like https://auth.example.com")
    if problem := blocked_host(origin[1]):
        raise ValueError(f"is never called by API tests: {problem}")
    return show_origin(origin)


def valid_api_target(value: str) -> str:
    """Where API tests go is never a metadata service (a {address} placeholder is checked when it is filled)."""
    host = urlsplit(value.replace("{address}", "host.example")).hostname or ""
    if problem := blocked_host(host):
        raise ValueError(f"is never called by API tests: {problem}")
    return value


def valid_health_url(value: str) -> str:
    if not value:
        return value
    try:
        fields = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
    except ValueError as exc:
        raise ValueError(f"is not a valid template ({exc}); write placeholders as {{address}}") from exc
    unknown = fields - HEALTH_PLACEHOLDERS
    if unknown:
        raise ValueError(f"has unknown placeholder(s) {sorted(unknown)}; the only one is {{address}}")
    valid_http_url(value.format(address="host.example"))
    return value


def valid_host(value: str) -> str:
    if not HOST_RE.fullmatch(value):
        raise ValueError("must be a host name or IP address, like app1.internal or 10.0.0.5")
    return value


def valid_batch_size(value: str | int) -> str:
    text = str(value).strip()
    number = text[:-1] if text.endswith("%") else text
    if not number.isdigit() or int(number) < 1 or (text.endswith("%") and int(number) > 100):
        raise ValueError("must be a number of hosts (1, 2, ...) or a percentage from 1% to 100%")
    return text


def valid_branch(value: str) -> str:
    try:
        return branch_name_check(value)
    except RefError as exc:
        raise ValueError(str(exc)) from exc


def valid_principal(value: str) -> str:
    if not PRINCIPAL_RE.fullmatch(value):
        raise ValueError("must be a username (like dana) or a Django group written @group (like @web-oncall)")
    return value


def valid_checklist_item(value: str) -> str:
    if not value or len(value) > 200 or "\n" in value:
        raise ValueError("each checklist item is one line of 1 to 200 characters")
    return value


def valid_runtime_api(value: str) -> str:
    if value.startswith("/") and "\n" not in value:
        return value
    host, _, port = value.rpartition(":")
    if host and port.isdigit() and 0 < int(port) < 65536 and HOST_RE.fullmatch(host.strip("[]")):
        return value
    raise ValueError("must be the path of HAProxy's admin socket (/run/haproxy/admin.sock) or host:port")


def valid_relative_path(value: str) -> str:
    parts = [part for part in value.split("/") if part not in {"", "."}]
    if value.startswith("/") or not parts or ".." in parts or any(c in value for c in "\n\r\0") or len(value) > 200:
        raise ValueError("must be a path inside the release, like .env or config/local.py (no leading /, no ..)")
    return "/".join(parts)


def valid_glob(value: str) -> str:
    if not value or value.startswith("/") or len(value) > 200 or any(c in value for c in "\n\r\0"):
        raise ValueError("must be a glob of paths in the repository, like */migrations/*.py or db/migrate/*.rb")
    return value


def valid_config_key(value: str) -> str:
    if not CONFIG_KEY_RE.fullmatch(value):
        raise ValueError("a config key is an environment variable name, like DATABASE_URL (letters, digits, _)")
    return value


def valid_config_value(value: str | int | float | bool) -> str:
    text = str(value).lower() if isinstance(value, bool) else str(value)
    if problem := value_problem(text):
        raise ValueError(problem)
    return text


Name = Annotated[str, AfterValidator(valid_name)]
RelativePath = Annotated[str, AfterValidator(valid_relative_path)]
ConfigKey = Annotated[str, AfterValidator(valid_config_key)]
ConfigValue = Annotated[str | int | float | bool, AfterValidator(valid_config_value)]
Principal = Annotated[str, AfterValidator(valid_principal)]
AbsolutePath = Annotated[str, AfterValidator(valid_absolute_path)]


class Spec(BaseModel):
    """Every catalog mapping: unknown keys are errors (a typo is said, not ignored), strings stripped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


CachePath = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.][A-Za-z0-9_./-]*$", max_length=200)]


def health_check_none() -> Any:
    """The `health_check:` key of a role and of an environment."""
    return Field(
        default=None,
        description="none: no health check, on purpose (a restart counts as healthy when it returns); a "
        "production deploy refuses a role with no check unless it says so",
    )


def check_or_none(spec: Any) -> Any:
    """`health_check: none` and a health check contradict each other (a role's or an environment's)."""
    if spec.health_check == "none" and (spec.health_check_url or spec.health_check_command):
        raise ValueError(
            "health_check: none says there is no health check, but a health_check_url or health_check_command "
            "is set: drop one"
        )
    return spec


def optional_fields(model: type[BaseModel], leave_out: set[str]) -> dict[str, Any]:
    """`model`'s fields, each optional (default None) with its checks and description: for create_model."""
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name not in leave_out:
            annotation: Any = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
            fields[name] = (annotation | None, Field(default=None, description=info.description))
    return fields
