"""The catalog reference (docs/catalog-reference.md), written from the catalog's JSON Schema: every key with
its type, default and description, as the loader knows them (`manage.py catalog_reference` writes it; a test
keeps it current). Hand-rolled: the schema tools that render Markdown want a whole documentation site, and
the reference must read well on GitHub as one plain file."""

from __future__ import annotations

import json
from typing import Any

# Where each part of the catalog sits, for the headings (a part not listed is named by its schema title).
PLACES = {
    "TeamSpec": "teams.<team>",
    "ServiceSpec": "services.<service>",
    "EnvironmentSpec": "services.<service>.environments.<environment>",
    "HostSpec": "services.<service>.environments.<environment>.hosts[]",
    "RoleSpec": "services.<service>.roles.<role>",
    "DefaultsSpec": "defaults (top level, or a team's)",
}


def catalog_reference(schema_text: str) -> str:
    """Markdown for the schema `catalog_json_schema()` returns."""
    schema = json.loads(schema_text)
    definitions: dict[str, Any] = schema.get("$defs", {})
    lines = [
        "# Catalog reference",
        "",
        "<!-- Written by `.venv/bin/python manage.py catalog_reference > docs/catalog-reference.md` from the catalog's",
        "     schema (deployer/catalog/); edit the field descriptions there, not this file. -->",
        "",
        "Every key the catalog takes, with its type and default. The loader also checks rules that span keys",
        "(a host used twice, a secret not granted, …) and says what to change; `.venv/bin/python manage.py",
        "load_catalog --check catalog.yml` runs them all. Editors complete keys from",
        "[catalog.schema.json](catalog.schema.json).",
        "",
        *_table("The catalog file (top level)", schema),
    ]
    for name in _reachable(schema, definitions):
        lines += _table(f"`{PLACES.get(name, name.removesuffix('Spec'))}`", definitions[name], anchor=name)
    return "\n".join(lines).rstrip() + "\n"


def _reachable(schema: dict[str, Any], definitions: dict[str, Any]) -> list[str]:
    """Definitions in the order a reader meets them from the top level (breadth first)."""
    seen: list[str] = []
    queue = _refs(schema)
    while queue:
        name = queue.pop(0)
        if name in seen or name not in definitions:
            continue
        seen.append(name)
        queue += _refs(definitions[name])
    return seen


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"].rsplit("/", 1)[-1]] if isinstance(node.get("$ref"), str) else []
        return own + [ref for key, value in node.items() if key != "$defs" for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []


def _table(title: str, node: dict[str, Any], anchor: str = "") -> list[str]:
    properties: dict[str, Any] = node.get("properties", {})
    required = set(node.get("required", []))
    head = [f'<a id="{anchor.lower()}"></a>', ""] if anchor else []
    lines = [*head, f"## {title}", ""]
    if node.get("description") and anchor:
        lines += [_prose(node["description"]), ""]
    lines += ["| Key | Type | Default | Description |", "| --- | --- | --- | --- |"]
    for key, field in properties.items():
        default = "required" if key in required else _default(field)
        lines.append(f"| `{key}` | {_type(field)} | {default} | {_prose(field.get('description', ''))} |")
    return [*lines, ""]


def _type(field: dict[str, Any]) -> str:
    if "$ref" in field:
        name = field["$ref"].rsplit("/", 1)[-1]
        return f"[{name.removesuffix('Spec')}](#{name.lower()})"
    if "anyOf" in field or "oneOf" in field:
        options = [_type(option) for option in field.get("anyOf", field.get("oneOf", [])) if option != {"type": "null"}]
        return " or ".join(dict.fromkeys(options)) or "any"
    if "enum" in field:
        return " \\| ".join(f"`{json.dumps(value)}`" for value in field["enum"])
    if "const" in field:
        return f"`{json.dumps(field['const'])}`"
    kind = field.get("type", "any")
    if kind == "array":
        return f"list of {_type(field.get('items', {}))}"
    if kind == "object" and isinstance(field.get("additionalProperties"), dict):
        keys = field.get("propertyNames", {}).get("enum")
        named = " \\| ".join(f"`{key}`" for key in keys) if keys else "name"
        return f"mapping of {named} → {_type(field['additionalProperties'])}"
    return str(kind)


def _default(field: dict[str, Any]) -> str:
    if "default" not in field or field["default"] is None:
        return ""
    value = json.dumps(field["default"], ensure_ascii=False)
    return _cell(f"`{value}`") if len(value) <= 60 else "see description"


def _prose(text: str) -> str:
    """A description: `<deploy_path>` would be an (invisible) HTML tag on GitHub."""
    return _cell(str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


def _cell(text: str) -> str:
    """One Markdown table cell: no line breaks, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")
