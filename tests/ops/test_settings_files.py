"""The settings files a newcomer copies read as written: `.env.example` through the settings loader (a
comment after a value used to end up in the value), and every systemd unit the README shows through
`systemd-analyze verify` (an inline comment made `TimeoutStopSec` unparsable)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SETTING = re.compile(r"^(# )?([A-Z][A-Z0-9_]*)=")
# What verify says because the README's install path (/opt/gantry) is not on this machine: not the unit's fault.
ELSEWHERE = re.compile(r"Command /opt/gantry/\S+ is not executable: No such file or directory")


def _parsed(text: str, tmp_path: Path) -> dict[str, str]:
    """The values django-environ reads from `text` (read_env writes os.environ: read in a child process, so
    this one's environment stays as it is)."""
    path = tmp_path / "example.env"
    path.write_text(text)
    script = (
        "import environ, json, os, sys\n"
        "before = dict(os.environ)\n"
        "environ.Env.read_env(sys.argv[1], overwrite=True)\n"
        "print(json.dumps({k: v for k, v in os.environ.items() if before.get(k) != v}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, check=True)
    values: dict[str, str] = json.loads(done.stdout)
    return values


def test_every_setting_in_env_example_reads_as_written_even_once_uncommented(tmp_path: Path) -> None:
    text = (ROOT / ".env.example").read_text()
    uncommented = "\n".join(re.sub(r"^# ([A-Z][A-Z0-9_]*=)", r"\1", line) for line in text.splitlines())
    names = [m.group(2) for line in text.splitlines() if (m := SETTING.match(line))]
    values = _parsed(uncommented, tmp_path)
    assert set(names) <= set(values), "every setting the file names is read"
    with_comments = {name: values[name] for name in names if re.search(r"\s#", values[name])}
    assert with_comments == {}, "a comment belongs on its own line: after a value it becomes part of it"


def test_the_settings_loader_takes_env_example_as_it_is(tmp_path: Path) -> None:
    values = _parsed((ROOT / ".env.example").read_text(), tmp_path)
    child = {**{k: v for k, v in os.environ.items() if k not in values}, **values}
    child["GANTRY_VAR_DIR"] = str(tmp_path / "var")
    child.pop("DATABASE_URL", None)
    script = (
        "import django, json, os; os.environ['DJANGO_SETTINGS_MODULE'] = 'deployer.settings'; django.setup()\n"
        "from django.conf import settings\n"
        "print(json.dumps([settings.LOG_FORMAT, settings.TIME_ZONE, settings.LOGGING['handlers']['console']"
        "['formatter']]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=child, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == ["plain", "UTC", "plain"]


def _units() -> list[tuple[str, str]]:
    """(file name, text) of every systemd unit in the ini blocks of docs/operations.md."""
    readme = (ROOT / "docs" / "operations.md").read_text()
    units = []
    for block in re.findall(r"```ini\n(.*?)```", readme, re.S):
        if "[Unit]" in block and (named := re.search(r"^# /etc/systemd/system/(\S+)$", block, re.M)):
            units.append((named.group(1), block))
    return units


@pytest.mark.parametrize("name,text", _units())
def test_every_systemd_unit_in_the_readme_verifies(name: str, text: str, tmp_path: Path) -> None:
    directives = [line for line in text.splitlines() if "=" in line and not line.startswith("#")]
    assert not [line for line in directives if "#" in line.split("=", 1)[1]], "systemd has no comments after values"
    (tmp_path / name).write_text(text)
    done = subprocess.run(["systemd-analyze", "verify", str(tmp_path / name)], capture_output=True, text=True)
    said = [line for line in (done.stdout + done.stderr).splitlines() if line.strip() and not ELSEWHERE.search(line)]
    assert said == [], said


def test_the_readme_shows_at_least_one_unit() -> None:
    assert _units(), "the README's systemd unit is what the test above checks"
