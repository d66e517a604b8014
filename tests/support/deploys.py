"""Deploying and looking at what a deploy left on the hosts."""

from __future__ import annotations

import os
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser

from deployer.deploys.request import deploy_request
from deployer.models import Branch, Deploy, DeployHost, Environment
from tests.support.waiting import wait_for_deploy
from tests.support.worker import Worker


def deploy_and_wait(environment: Environment, ref: str, user: AbstractBaseUser, worker: Worker) -> Deploy:
    deploy = deploy_request(environment=environment, ref=ref, user=user)
    return wait_for_deploy(deploy.pk, worker)


def host_root(environment: Environment, index: int) -> Path:
    return Path(environment.hosts.all()[index].path)


def head(environment: Environment, branch: str) -> str:
    return Branch.objects.get(service=environment.service, name=branch).sha


def host_status(deploy: Deploy, address: str) -> str:
    record = DeployHost.objects.filter(deploy=deploy, host__address=address).first()
    return record.status if record else ""


def current_release(environment: Environment, index: int) -> str:
    return os.readlink(host_root(environment, index) / "current")
