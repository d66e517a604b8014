"""The README and docs/ stay findable: the README is short (a newcomer reads it whole), and every relative
link in them, and its #anchor, points at something that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.one_backend

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def slugs(path: Path) -> set[str]:
    """The anchors GitHub makes for a page's headings (and the explicit <a id=...> ones)."""
    text, fence, found = path.read_text(), False, set()
    for line in text.splitlines():
        fence = fence != line.startswith("```")
        if not fence and (heading := re.match(r"^#{1,6} (.*)", line)):
            title = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower())
            found.add(title.replace(" ", "-"))
    return found | set(re.findall(r'<a id="([^"]+)"></a>', text))


def test_every_setting_is_in_the_configuration_page() -> None:
    """A setting Gantry reads (deployer/settings.py) and docs/configuration.md does not name is one nobody
    finds; this keeps the page whole as settings come."""
    read = set(
        re.findall(r"""env(?:\.\w+)?\(\s*["']([A-Z][A-Z0-9_]+)["']""", (ROOT / "deployer" / "settings.py").read_text())
    )
    page = (ROOT / "docs" / "configuration.md").read_text()
    assert len(read) > 50, "the pattern still finds the settings"
    assert sorted(name for name in read if f"`{name}`" not in page and f"{name}`" not in page) == []


def test_the_readme_is_short() -> None:
    assert len((ROOT / "README.md").read_bytes()) <= 15_000, "the README links into docs/; it does not hold them"


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text()):
        if re.match(r"^[a-z]+:", target):
            continue  # http(s), mailto: not checked here
        file_part, _, anchor = target.partition("#")
        destination = (page.parent / file_part).resolve() if file_part else page
        if not destination.exists():
            broken.append(f"{target}: no such file")
        elif anchor and destination.suffix == ".md" and anchor not in slugs(destination):
            broken.append(f"{target}: no such heading")
    assert broken == []
