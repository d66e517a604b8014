"""API test suites from a service's repository: `.gantry/tests.yml` at the deployed sha.

When the file exists it wins over the catalog's `api_tests:` (the tests travel
with the code they test). Its top level maps suite names to suites, in the same
shape as the catalog's. A bad file is refused with its line and a hint.

Anyone who can push a branch writes this file, so it is read as hostile: no
anchors or aliases, at most MAX_BYTES, bounded nesting (yaml_lines), and the
secrets and origins it may use are the catalog's to grant (apitest_runs).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from deployer.apitests.schema import AssertionSpec, StepSpec, SuiteSpec
from deployer.lib.yaml_lines import line_of, plain, unknown_key_hint, yaml_refusal

TESTS_FILE = ".gantry/tests.yml"
MAX_BYTES = 256 * 1024

# The model of the mapping at a location inside one suite: steps[<i>].assert[<j>].
_MODEL_AT: dict[tuple[str | int, ...], type[BaseModel]] = {
    (): SuiteSpec,
    ("steps",): StepSpec,
    ("steps", "assert"): AssertionSpec,
}


class SuiteFileError(ValueError):
    """The file is not a valid set of suites; the message says where and how to fix it."""


def suites_parse(text: str, *, filename: str = TESTS_FILE) -> dict[str, SuiteSpec]:
    if refusal := yaml_refusal(text, max_bytes=MAX_BYTES):
        line, why = refusal
        raise SuiteFileError(f"{filename}:{line}: {why}" if line else f"{filename}: {why}")
    try:
        data = YAML(typ="rt").load(text)
    except YAMLError as exc:
        raise SuiteFileError(f"{filename}: not valid YAML: {exc}".splitlines()[0]) from exc
    if not isinstance(data, CommentedMap):
        raise SuiteFileError(f"{filename}:1: the file must map suite names to suites (smoke: {{steps: [...]}})")
    suites = {}
    problems = []
    for name, body in data.items():
        try:
            suites[str(name)] = SuiteSpec.model_validate(plain(body))
        except ValidationError as exc:
            problems += [_problem(filename, data, str(name), err) for err in exc.errors()]
    if problems:
        raise SuiteFileError("\n".join(problems))
    return suites


def _problem(filename: str, root: CommentedMap, suite: str, err: Any) -> str:
    loc = tuple(err["loc"])
    where = suite + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc)
    if err["type"] == "extra_forbidden":
        model = _MODEL_AT.get(tuple(p for p in loc[:-1] if not isinstance(p, int)))
        message = f"unknown key {loc[-1]!r}; {unknown_key_hint(model, loc[-1])}"
    elif err["type"] == "missing":
        message = f"missing required key {loc[-1]!r}; add it"
        where = where.rsplit(".", 1)[0]
    else:
        message = err["msg"].removeprefix("Value error, ")
    return f"{filename}:{line_of(root, (suite, *loc)) or 1}: {where}: {message}"
