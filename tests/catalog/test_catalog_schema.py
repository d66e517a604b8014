"""The catalog's JSON Schema (docs/catalog.schema.json, for editors) and the reference written from it
(docs/catalog-reference.md) are current, and the schema agrees with the loader: every catalog the loader
takes, the schema takes (the docs', the demo's, the tests'), and a typo in a key is underlined."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from deployer.catalog.load import CatalogError, catalog_json_schema, catalog_parse
from deployer.catalog.reference import catalog_reference
from deployer.demo.hosts import SshdHost
from deployer.demo.setup import catalog_text
from tests.support.catalogs import SMALL_CATALOG

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "docs" / "catalog.schema.json"


def _errors(text: str) -> list[str]:
    schema = jsonschema.Draft202012Validator(json.loads(catalog_json_schema()))
    data: Any = YAML(typ="safe").load(text)
    return [f"{'.'.join(map(str, e.path))}: {e.message}" for e in schema.iter_errors(data)]


def test_the_committed_schema_is_current() -> None:
    assert SCHEMA_FILE.read_text() == catalog_json_schema(), (
        "the catalog's schema changed: python manage.py catalog_schema > docs/catalog.schema.json"
    )


def test_the_committed_reference_is_current() -> None:
    reference = catalog_reference(catalog_json_schema())
    assert (ROOT / "docs" / "catalog-reference.md").read_text() == reference, (
        "the catalog's schema changed: python manage.py catalog_reference > docs/catalog-reference.md"
    )
    assert "| `required_checks` | list of string |" in reference
    assert "## `services.<service>.environments.<environment>`" in reference


def _readme_catalogs() -> list[str]:
    text = "".join(path.read_text() for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    return [block for block in blocks if block.lstrip().startswith(("teams:", "services:", "#"))]


@pytest.mark.parametrize(
    "text",
    [
        SMALL_CATALOG,
        catalog_text(Path("/srv/git/demo"), [SshdHost(Path("/x"), "127.0.0.2", 22, "deploy")], 8081),
    ],
    ids=["small", "demo"],
)
def test_catalogs_the_loader_takes_pass_the_schema(text: str) -> None:
    catalog_parse(text)
    assert _errors(text) == []


def test_every_readme_catalog_the_loader_takes_passes_the_schema() -> None:
    taken = 0
    for block in _readme_catalogs():
        try:
            catalog_parse(block)
        except CatalogError:
            continue  # a fragment of a catalog (the README shows keys in parts)
        taken += 1
        assert _errors(block) == [], block[:200]
    assert taken, "the README shows at least one whole catalog"


def test_a_typo_is_underlined_where_the_loader_refuses_it() -> None:
    typo = SMALL_CATALOG.replace("deploy_path: /srv/app", "deploy_pth: /srv/app")
    with pytest.raises(CatalogError, match="did you mean 'deploy_path'"):
        catalog_parse(typo)
    assert any("'deploy_pth' was unexpected" in said for said in _errors(typo))
