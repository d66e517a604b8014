"""The house rules of the code's layout (docs/development.md, Layout), checked by reading the imports.

Rooms are deployer's folders and root modules, and the dashboards package. Each room sits on a floor; a
module may import from its own room and from rooms on lower floors, never from a room on its own floor or
above. So arrows point one way between folders (two folders never import each other), and no two files
import each other either. Imports under `if TYPE_CHECKING:` are annotations, not arrows, and do not count.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

pytestmark = pytest.mark.one_backend  # the database backend makes no difference here

ROOT = Path(__file__).resolve().parents[2]

# Lowest floor first. Rooms on one floor are peers: they must not import each other.
FLOORS: list[set[str]] = [
    {"deployer.lib", "deployer.choices", "deployer.version", "deployer.api_settings"},
    {"deployer.settings", "deployer.errors"},
    {"deployer.models"},
    {"deployer.integrations"},  # leaves: see LEAVES
    {"deployer.broker"},
    {"deployer.celery"},
    {"deployer.queue"},
    {"deployer.sources", "deployer.apitests", "deployer.notify"},
    {"deployer.catalog", "deployer.environments"},
    {"deployer.deploys"},
    {"deployer.delivery", "deployer.selectors", "deployer.ops"},
    {"deployer.demo"},
    {"deployer.chatops"},
    {"deployer.tasks", "deployer.management", "deployer.admin", "deployer.apps", "deployer.wsgi", "deployer.asgi"},
    {"dashboards"},
]
# Integrations take and return plain values: they may use only these of the rest of Gantry.
LEAVES = {"deployer.integrations": {"deployer.errors", "deployer.lib"}}
# The web never talks to the outside world itself, not even to ask an integration a question.
FORBIDDEN = {"dashboards": {"deployer.integrations"}}
MAX_LINES = 400


def modules() -> dict[str, Path]:
    found = {}
    for top in ("deployer", "dashboards"):
        for path in (ROOT / top).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def room(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "dashboards":
        return "dashboards"
    if len(parts) == 1:  # deployer/__init__.py: it only exposes the Celery app
        return "deployer.celery"
    return ".".join(parts[:2])


def floor(of_room: str) -> int:
    for number, rooms in enumerate(FLOORS):
        if of_room in rooms:
            return number
    raise AssertionError(f"{of_room} is on no floor: add it to FLOORS in tests/house/test_layout.py")


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


def imports_of(path: Path, known: set[str]) -> list[tuple[int, str]]:
    """(line, module) for each deployer/dashboards module `path` imports (a name imported from a package
    counts as that submodule when there is one)."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_lines(tree)
    found = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", 0) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                target = sub if sub in known else node.module
                if target.split(".")[0] in ("deployer", "dashboards"):
                    found.append((node.lineno, target))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] in ("deployer", "dashboards")]
    return found


def graph() -> dict[str, list[tuple[int, str]]]:
    known = modules()
    return {name: imports_of(path, set(known)) for name, path in known.items()}


def test_arrows_point_one_way_between_rooms() -> None:
    wrong = []
    for module, imported in graph().items():
        here = room(module)
        for line, target in imported:
            there = room(target)
            if there == here:
                continue
            allowed = LEAVES.get(here)
            if there in FORBIDDEN.get(here, set()):
                wrong.append(f"{module}:{line} imports {target}: {here} must not use {there}")
            elif allowed is not None and there not in allowed:
                wrong.append(f"{module}:{line} imports {target}: {here} may use only {', '.join(sorted(allowed))}")
            elif floor(there) >= floor(here):
                wrong.append(f"{module}:{line} imports {target} ({there} is not below {here})")
    assert not wrong, "imports against the layout (tests/house/test_layout.py FLOORS):\n" + "\n".join(wrong)


def test_no_two_files_import_each_other() -> None:
    edges = {module: {target for _, target in imported} for module, imported in graph().items()}
    cycles = [cycle for cycle in _cycles(edges) if len(cycle) > 1]
    assert not cycles, "modules that import each other (directly or round a loop): " + "; ".join(
        " → ".join([*cycle, cycle[0]]) for cycle in cycles
    )


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan), each a loop of imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in edges.get(node, ()):
            if target not in edges:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_no_test_module_imports_another_or_the_conftest() -> None:
    """Helpers live in tests/support/, fixtures in conftest.py (pytest hands them out): a test module that
    imports another runs the other's module code, and a helper in a test file is one nobody finds."""
    found = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            module = node.module if isinstance(node, ast.ImportFrom) else None
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [module or ""]
            if any(name.startswith("tests.test_") or name == "tests.conftest" for name in names):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {', '.join(names)}")
    assert found == [], "move what they share to tests/support/"


def test_no_module_is_over_400_lines() -> None:
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by idea): {long}"


# Same name, same idea: a model module and the room that works with those models, or a page and its domain.
SAME_IDEA = {
    *("deploys", "apitests", "audit", "catalog", "notify", "access", "sources"),  # models/X and the room X
    *("delivery", "ops", "actions"),  # a page (dashboards/X) and the domain room behind it
    *("urls", "views", "apps", "schema"),  # one role in two packages (URLconfs, Django apps, a YAML file's schema)
    *("github", "jenkins", "slack"),  # the system's endpoint (dashboards/hooks) and its client (integrations)
    "host_keys",  # trusting a host's key: the page's form (dashboards) and the trust store (environments)
    *("backup", "version"),  # a management command and what it runs
}


def test_no_two_modules_share_a_name_for_different_ideas() -> None:
    by_name: dict[str, list[str]] = defaultdict(list)
    for name in modules():
        leaf = name.rsplit(".", 1)[-1]
        if leaf not in {"deployer", "dashboards"} and not leaf.startswith("__"):
            by_name[leaf].append(name)
    shared = {leaf: names for leaf, names in by_name.items() if len(names) > 1 and leaf not in SAME_IDEA}
    assert not shared, f"one name, several modules: {shared}; rename one, or add it to SAME_IDEA if it is one idea"


@pytest.mark.parametrize("package", sorted(n for n, p in modules().items() if p.name == "__init__.py"))
def test_every_room_says_what_it_holds(package: str) -> None:
    path = modules()[package]
    tree = ast.parse(path.read_text())
    assert ast.get_docstring(tree), f"{path.relative_to(ROOT)} needs a docstring saying what the room holds"


def test_the_flow_names_every_file_of_the_deploys_package() -> None:
    """deployer/deploys/__init__.py is where a reader starts: every file of the flow is on it."""
    package = ROOT / "deployer" / "deploys"
    told = (package / "__init__.py").read_text()
    missing = sorted(p.name for p in package.glob("*.py") if p.name != "__init__.py" and p.name not in told)
    assert not missing, f"add these to THE FLOW in deployer/deploys/__init__.py: {', '.join(missing)}"


# The one owner of a host's state during a rollout (deployer/deploys/fleet.py): nothing else writes it.
HOST_STATE_OWNER = "deployer.deploys.fleet"
_WRITES = {"create", "update", "bulk_create", "bulk_update", "update_or_create", "get_or_create", "delete", "save"}
_HOST_STATE = {"status", "switched", "role_states", "current"}


def _host_state_writes(tree: ast.Module) -> list[str]:
    """What in `tree` writes DeployHost rows (through its manager or a deploy's `hosts`) or a HostRun's state."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in _WRITES:
            chain = ast.unparse(node.func.value)
            if chain.startswith("DeployHost.objects") or ".hosts" in f".{chain}".split("(")[0]:
                found.append(f"line {node.lineno}: {ast.unparse(node)[:80]}")
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "DeployHost":
            found.append(f"line {node.lineno}: DeployHost(...)")
        if isinstance(node, ast.Assign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found += [
                f"line {node.lineno}: {ast.unparse(target)} = ..."
                for target in targets
                if isinstance(target, ast.Attribute)
                and target.attr in _HOST_STATE
                and ast.unparse(target.value) in {"run", "self.run"}
            ]
    return found


def test_only_the_fleet_writes_a_hosts_state() -> None:
    """One owner of each host's state: every DeployHost write and every move of a host is in fleet.py, where
    the table of allowed moves is."""
    writers = {
        name: writes
        for name, path in modules().items()
        if name != HOST_STATE_OWNER and (writes := _host_state_writes(ast.parse(path.read_text())))
    }
    assert not writers, f"only {HOST_STATE_OWNER} writes a host's state; move these there: {writers}"


def test_the_host_state_rule_sees_a_write() -> None:
    """The rule above is only as good as what it recognises."""
    tree = ast.parse(
        "DeployHost.objects.filter(pk=1).update(status='live')\ndeploy.hosts.create(address='a')\nrun.switched = True"
    )
    assert len(_host_state_writes(tree)) == 3
