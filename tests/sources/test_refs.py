"""Ref validation agrees with git's own `check-ref-format --branch`."""

from __future__ import annotations

import subprocess

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from deployer.lib.refs import RefError, branch_name_check, is_full_sha

pytestmark = pytest.mark.one_backend  # the database backend makes no difference here

# Characters that make ref names interesting: git's forbidden ones, shell
# metacharacters, path syntax, and a few ordinary letters and non-ASCII.
ALPHABET = st.sampled_from([*"ab1/.-_@{}~^:?*[\\ \t\n;$`'\"()|&<>!#%+=,é", "\x7f", "\x01"])


def git_accepts(name: str) -> bool:
    done = subprocess.run(["git", "check-ref-format", "--branch", name], capture_output=True, cwd="/")
    return done.returncode == 0


def gantry_accepts(name: str) -> bool:
    try:
        branch_name_check(name)
    except RefError:
        return False
    return True


@settings(max_examples=400, deadline=None)
@given(st.text(ALPHABET, min_size=1, max_size=12))
@example("feature/x.lock")
@example("x@{y")
@example(".hidden/x")
@example("x/")
@example("a//b")
@example("x.")
def test_it_accepts_exactly_what_git_accepts(name: str) -> None:
    # Gantry also refuses HEAD and "@" (git reads "@" as HEAD): both name whatever is checked out.
    expected = git_accepts(name) and name not in {"HEAD", "@"}
    assert gantry_accepts(name) == expected, name


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("feature x", "contains a space"),
        ("x\ny", "control character"),
        ("-rf", "starts with '-'"),
        ("a..b", "contains '..'"),
        ("x.lock", "ends with '.lock'"),
        ("x" * 256, "longer than 255"),
        ("HEAD", "reserved"),
        ("x\0y", "control character"),
    ],
)
def test_a_refused_name_says_which_rule_it_breaks(name: str, rule: str) -> None:
    with pytest.raises(RefError, match=rule):
        branch_name_check(name)


def test_full_shas_are_recognised() -> None:
    assert is_full_sha("0123456789abcdef0123456789abcdef01234567")
    assert not is_full_sha("0123456")
    assert not is_full_sha("0123456789ABCDEF0123456789ABCDEF01234567")
