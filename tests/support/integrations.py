"""The settings that point Gantry at the fake GitHub and Jenkins."""

from __future__ import annotations

from tests.fakes.github import FakeGitHub
from tests.fakes.jenkins import FakeJenkins
from tests.support.constants import JENKINS_HOOK_TOKEN, WEBHOOK_SECRET


def integration_settings(fake_github: FakeGitHub, fake_jenkins: FakeJenkins) -> dict[str, str]:
    return {
        "GITHUB_TOKEN": fake_github.token,
        "GITHUB_API_URL": fake_github.api_url,
        "GITHUB_WEB_URL": fake_github.url,
        "GITHUB_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "JENKINS_URL": fake_jenkins.url,
        "JENKINS_USER": fake_jenkins.user,
        "JENKINS_TOKEN": fake_jenkins.token,
        "JENKINS_WEBHOOK_TOKEN": JENKINS_HOOK_TOKEN,
    }
