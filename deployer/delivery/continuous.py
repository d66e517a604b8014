"""Continuous delivery and drift: what runs where, and what should run next.

An environment that follows a branch gets that branch's head as soon as its
build is green (one that follows tags, `follow_tags: "v*"`, the newest matching
tag), deployed by Gantry's system user under the same rules as a person's deploy
(gate, one active deploy). Called by workers after syncs.
"""

from __future__ import annotations

import fnmatch
import itertools
import logging

from deployer.choices import DeployTrigger
from deployer.deploys.request import current_deploy, deploy_continuous
from deployer.errors import DeployRefused
from deployer.integrations import git
from deployer.lib import generations
from deployer.lib.refs import version_key
from deployer.models import Branch, Build, Deploy, Environment, Service, Tag

logger = logging.getLogger(__name__)
TAGS_LOOKED_AT = 5  # the highest matching tags asked whether they are on the default branch (a git call each)


def continuous_delivery(*, service: Service) -> list[Deploy]:
    """Start the deploys continuous delivery calls for now; return them."""
    started = []
    following = service.environments.exclude(follow_branch="", follow_tags="").order_by("position")
    for environment in following:
        deploy = _deliver(service, environment)
        if deploy is not None:
            started.append(deploy)
    return started


def _deliver(service: Service, environment: Environment) -> Deploy | None:
    branch = _followed(service, environment)
    if branch is None:
        return None
    build = Build.objects.newest_for(service.pk, branch.sha)
    if build is None or not build.is_green:
        return None
    current = current_deploy(environment)
    if current is not None and current.sha == branch.sha:
        return None
    if Deploy.objects.filter(environment=environment, sha=branch.sha, trigger=DeployTrigger.CONTINUOUS).exists():
        return None  # tried once already (it failed, or was replaced): a person decides what next
    if Deploy.objects.active().filter(environment=environment).exists():
        return None  # the next sync tries again
    if current is not None and not _is_newer(service, current.sha, branch.sha):
        logger.info("%s: %s is not newer than %s; not deploying it", environment, branch.sha[:8], current.sha[:8])
        return None
    try:
        return deploy_continuous(environment=environment, branch=branch)
    except DeployRefused as exc:  # includes DeployConflict: someone started a deploy meanwhile
        logger.info("continuous delivery to %s waits: %s", environment, exc)
        return None


def _followed(service: Service, environment: Environment) -> Branch | Tag | None:
    """The followed branch, or the highest version among the tags matching `follow_tags` (v1.10.0 after
    v1.9.0; never by date, which whoever commits sets) whose commit is on the default branch: a tag anyone
    may push on a commit nobody merged is not a release."""
    if environment.follow_branch:
        return Branch.objects.filter(service=service, name=environment.follow_branch).first()
    head = Branch.objects.filter(service=service, name=service.default_branch).values_list("sha", flat=True).first()
    tags = [t for t in Tag.objects.filter(service=service) if fnmatch.fnmatchcase(t.name, environment.follow_tags)]
    for tag in sorted(tags, key=lambda t: version_key(t.name), reverse=True)[:TAGS_LOOKED_AT]:
        if head and _is_newer(service, tag.sha, head):
            return tag
    return None


def _is_newer(service: Service, current: str, candidate: str) -> bool:
    """Only a descendant of what runs now may replace it: never an older sha over a newer one."""
    try:
        return git.is_ancestor(service.name, service.repo_url, current, candidate)
    except git.GitError as exc:
        logger.warning("cannot tell whether %s is newer than %s in %s: %s", candidate, current, service.name, exc)
        return False


def drift_refresh(*, service: Service) -> None:
    """Count how many commits each environment runs ahead of the next one (test ahead of prod)."""
    environments = list(service.environments.order_by("position"))
    for this, following in itertools.pairwise(environments):
        here, there = current_deploy(this), current_deploy(following)
        if here is None or there is None:
            Environment.objects.filter(pk=this.pk).update(ahead_of_next=None, ahead_of_next_shas="")
            continue
        key = f"{here.sha}..{there.sha}"
        if this.ahead_of_next_shas == key:
            continue
        try:
            ahead = git.ahead_count(service.name, service.repo_url, there.sha, here.sha)
        except git.GitError as exc:
            logger.warning("drift of %s: %s", this, exc)
            continue
        Environment.objects.filter(pk=this.pk).update(ahead_of_next=ahead, ahead_of_next_shas=key)
        generations.bump(generations.SERVICES)
