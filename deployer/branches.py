"""Keeping the Branch table in step with each service's repository.

Workers call `branch_sync`; pages only read the Branch rows it writes, with
the time of the last good sync and the last error.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from deployer import gitrepo
from deployer.models import Branch, Service

logger = logging.getLogger(__name__)


def branch_sync(*, service: Service) -> int:
    """Refresh `service`'s branches from its repository; return how many there are.

    A failure is recorded on the service (the page shows it with the age of the
    data) and re-raised; the branches already known are left as they were.
    """
    try:
        gitrepo.mirror_update(service.name, service.repo_url)
        found = gitrepo.branches_list(service.name)
    except gitrepo.GitError as exc:
        logger.warning("branch sync of %s failed: %s", service.name, exc)
        Service.objects.filter(pk=service.pk).update(branches_sync_error=str(exc))
        raise
    with transaction.atomic():
        names = [b.name for b in found]
        Branch.objects.filter(service=service).exclude(name__in=names).delete()
        existing = {b.name: b for b in Branch.objects.filter(service=service)}
        for info in found:
            values = {
                "sha": info.sha,
                "author": info.author,
                "message": info.message,
                "committed_at": info.committed_at,
            }
            branch = existing.get(info.name)
            if branch is None:
                Branch.objects.create(service=service, name=info.name, **values)
            elif any(getattr(branch, k) != v for k, v in values.items()):
                Branch.objects.filter(pk=branch.pk).update(updated_at=timezone.now(), **values)
        Service.objects.filter(pk=service.pk).update(branches_synced_at=timezone.now(), branches_sync_error="")
    return len(found)
