"""The catalog's keys for building a release once on a builder host (deploys/builder.py, build_cache.py)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from deployer.catalog.fields import USER_RE, AbsolutePath, CachePath, Spec, valid_host, valid_relative_path


class BuilderSpec(Spec):
    """The SSH host that builds each release once (build: builder); its key is trusted like a host's."""

    address: Annotated[str, AfterValidator(valid_host)] = Field(description="host name or IP address")
    port: int = Field(default=22, ge=1, le=65535, description="SSH port")
    user: str = Field(default="deploy", pattern=USER_RE.pattern, description="SSH user")
    path: AbsolutePath = Field(default="/var/tmp/gantry-builds", description="where it builds and keeps artifacts")
    isolation: Literal["sandbox", "account"] = Field(
        default="sandbox",
        description=(
            "how one build is kept from every other: sandbox (each build in a bubblewrap sandbox of its own; "
            "the builder must have bubblewrap, or the build is refused) or account (no sandbox: this builder "
            "account serves only environments of one trust level, and a promotion rebuilds)"
        ),
    )


class BuildCacheSpec(Spec):
    """A dependency cache for builds on a builder: `dirs` kept after a build, put back before the next build
    whose `key` files are the same (per trust level: production's cache is written by production builds)."""

    key: list[Annotated[CachePath, AfterValidator(valid_relative_path)]] = Field(
        min_length=1, max_length=20, description="the files that define the dependencies, e.g. [requirements.txt]"
    )
    dirs: list[Annotated[CachePath, AfterValidator(valid_relative_path)]] = Field(
        min_length=1, max_length=20, description="what the build makes from them, e.g. [.venv] or [node_modules]"
    )
