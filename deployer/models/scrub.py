"""The one choke point for secrets in what Gantry keeps: every text field that can carry a command's
output (a deploy's reason and pause reason, a host's message and role details, a log line, an audit entry,
an environment's lock reason) is scrubbed on its way into the database, by `save()` and by `update()`.
Slack messages and GitHub statuses are made from these rows, so they never see a secret either. The values
come from the deploys running in this process (deployer.lib.secrets.hiding)."""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from django.db import models

from deployer.lib.secrets import scrubbed


def _clean(value: object) -> object:
    if isinstance(value, str):
        return scrubbed(value)
    if isinstance(value, list):
        return [_clean(item) for item in value]
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items()}
    return value


_M = TypeVar("_M", bound=models.Model)


class ScrubbedQuerySet(models.QuerySet[_M]):
    """`update()` scrubs the model's SCRUBBED fields (queryset updates skip `save()`)."""

    def update(self, **kwargs: Any) -> int:
        fields = getattr(self.model, "SCRUBBED", ())
        return super().update(**{key: _clean(v) if key in fields else v for key, v in kwargs.items()})


class Scrubbed(models.Model):
    """A model whose SCRUBBED fields never hold a secret a deploy in this process is hiding."""

    SCRUBBED: ClassVar[tuple[str, ...]] = ()

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        for name in self.SCRUBBED:
            setattr(self, name, _clean(getattr(self, name)))
        super().save(*args, **kwargs)
