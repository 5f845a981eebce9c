"""The engine's import graph, read from the source with `ast`: no cycles, imports only point down
the layers of shared/DESIGN.md, and an import inside a function only defers a heavy dependency."""
from __future__ import annotations

import ast
from dataclasses import dataclass
from functools import cache
from itertools import pairwise
from pathlib import Path


from tests.conftest import REPO

ENGINE_DIR = REPO / "engine"

# Top to bottom: a module imports its own package or a layer below it. offline drives duet
# sessions; style trains with the training loop; "engine" is the top-level modules (events, clock,
# metrics, realtime). A new package must be given its place here.
LAYERS = (
    "jamtui",
    "engine.offline",
    "engine.duet",
    "engine.style",
    "engine.training",
    "engine.presets",
    "engine.model",
    "engine.tokens",
    "engine.audio",
    "engine.midi",
    "engine",
)

# What may be imported late: a module that loads one of these costs seconds or needs an extra.
HEAVY = frozenset({"torch", "transformers", "peft", "bitsandbytes", "miditok", "symusic", "mido", "rtmidi", "numpy"})


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str  # an engine module (a package is its __init__), or "jamtui"
    line: int
    late: bool  # inside a function: runs on the call, not on import
    typing_only: bool  # under `if TYPE_CHECKING:`: never runs

    def __str__(self) -> str:
        return f"{path_of(self.importer)}:{self.line} {self.importer} imports {self.imported}"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def engine_modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(ENGINE_DIR.rglob("*.py"))}


def path_of(module: str) -> str:
    return str(engine_modules()[module].relative_to(REPO))


def resolve(name: str) -> str:
    """The engine module `name` loads: itself, or its nearest enclosing module (a name imported
    from a module is not a module)."""
    modules = engine_modules()
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


@dataclass(frozen=True)
class Parsed:
    imports: tuple[Import, ...]  # of engine modules (and jamtui)
    third_party: frozenset[str]  # top-level names of the other packages it imports on import


@cache
def parse(module: str) -> Parsed:
    path = engine_modules()[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    imports: list[Import] = []
    third_party: set[str] = set()

    def targets(node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [alias.name for alias in node.names]
        base = node.module or ""
        if node.level:  # relative: from the package, up level - 1
            anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            base = ".".join(anchor + ([base] if base else []))
        return [f"{base}.{alias.name}" if base else alias.name for alias in node.names]

    def visit(node: ast.AST, late: bool, typing_only: bool) -> None:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for name in targets(node):
                top = name.split(".")[0]
                if top == "engine":
                    imports.append(Import(module, resolve(name), node.lineno, late, typing_only))
                elif top == "jamtui":
                    imports.append(Import(module, "jamtui", node.lineno, late, typing_only))
                elif not late and not typing_only and not (isinstance(node, ast.ImportFrom) and node.level):
                    third_party.add(top)
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            late = True
        if isinstance(node, ast.If) and is_type_checking(node.test):
            for child in node.body:
                visit(child, late, True)
            for child in node.orelse:
                visit(child, late, typing_only)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, late, typing_only)

    visit(ast.parse(path.read_text(), str(path)), False, False)
    return Parsed(tuple(imports), frozenset(third_party - {"__future__"}))


def all_imports() -> list[Import]:
    return [imp for module in engine_modules() for imp in parse(module).imports]


def parents(module: str) -> list[str]:
    """The packages Python imports before `module`: engine, engine.duet, ..."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@cache
def loads(module: str) -> frozenset[str]:
    """The third-party packages importing `module` loads: its own, its packages' and those of every
    engine module it imports on import, transitively."""
    seen, todo, found = set(), [module], set()
    while todo:
        current = todo.pop()
        if current in seen or current not in engine_modules():
            continue
        seen.add(current)
        parsed = parse(current)
        found |= parsed.third_party
        todo += parents(current)
        todo += [imp.imported for imp in parsed.imports if not imp.late and not imp.typing_only]
    return frozenset(found)


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (a path that returns to its start) for each strongly connected group (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(edges.get(node, ())):
            if succ not in index:
                connect(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1 or node in edges.get(node, ()):
                groups.append(group)

    for node in sorted(edges):
        if node not in index:
            connect(node)
    found = []
    for group in groups:
        start = min(group)
        # Breadth-first inside the group, from start back to start: the shortest cycle through it.
        paths = {succ: [start, succ] for succ in sorted(edges[start]) if succ in group}
        queue = list(paths)
        while start not in paths:
            node = queue.pop(0)
            for succ in sorted(edges[node]):
                if succ in group and succ not in paths:
                    paths[succ] = paths[node] + [succ]
                    queue.append(succ)
        found.append(paths[start])
    return sorted(found)


@cache
def engine_packages() -> frozenset[str]:
    return frozenset(name for name, path in engine_modules().items() if path.name == "__init__.py")


def layer(module: str) -> int | None:
    """The index in LAYERS of the package `module` lives in (None: a package with no place)."""
    parts = module.split(".")
    if parts[0] == "jamtui":
        package = "jamtui"
    elif len(parts) > 1 and f"engine.{parts[1]}" in engine_packages():
        package = f"engine.{parts[1]}"
    else:
        package = "engine"  # a top-level module
    return LAYERS.index(package) if package in LAYERS else None


def test_engine_modules_are_found():
    assert {"engine.events", "engine.duet.session", "engine.model.load", "engine.midi.ports"} <= set(engine_modules())
    assert not [imp for imp in all_imports() if imp.imported not in engine_modules() and imp.imported != "jamtui"]


def test_no_import_cycles():
    edges: dict[str, set[str]] = {}
    for imp in all_imports():
        edges.setdefault(imp.importer, set()).add(imp.imported)
    where = {(imp.importer, imp.imported): imp.line for imp in all_imports()}
    described = [" -> ".join(f"{a} ({path_of(a)}:{where[a, b]})" for a, b in pairwise(cycle)) + f" -> {cycle[-1]}"
                 for cycle in cycles(edges)]
    assert described == [], "import cycles:\n" + "\n".join(described)


def test_imports_point_down_the_layers():
    unplaced = sorted({module for module in engine_modules() if layer(module) is None})
    assert unplaced == [], f"packages with no place in LAYERS (and in shared/DESIGN.md): {unplaced}"
    upward = [str(imp) for imp in all_imports() if layer(imp.imported) < layer(imp.importer)]
    assert upward == [], "imports that point up the layers:\n" + "\n".join(upward)


def late_imports_that_defer_nothing() -> list[Import]:
    """Engine imports inside a function where the imported module loads no heavy dependency its
    importer does not load already: they defer nothing and belong at the top of the file."""
    return sorted({imp for imp in all_imports()
                   if imp.late and not (HEAVY & (loads(imp.imported) - loads(imp.importer)))},
                  key=lambda imp: (imp.importer, imp.line, imp.imported))


def test_late_imports_only_defer_a_heavy_dependency():
    def why(imp: Import) -> str:
        heavy = sorted(loads(imp.imported) & HEAVY)
        if not heavy:
            return f"{imp.imported} loads nothing heavy"
        return f"{imp.imported} loads only {', '.join(heavy)}, which {imp.importer} loads already"

    hidden = [f"{imp} inside a function: {why(imp)}" for imp in late_imports_that_defer_nothing()]
    assert hidden == [], "late imports that defer no heavy dependency:\n" + "\n".join(hidden)
