"""The house's layout, read from the imports: no module imports one that imports it back, and
each wing imports only the wings below it (README, "Layout").

Every import counts, also those inside functions and under TYPE_CHECKING: a lazy import is
still a dependency, and a loop through one is still a loop.
"""

from __future__ import annotations

import ast
from pathlib import Path

import assistant

PACKAGE = Path(assistant.__file__).parent

# The basics every wing may use; they import only each other.
BASICS = {
    "assistant",
    "records",
    "endpoints",
    "errors",
    "files",
    "database",
    "paths",
    "logs",
    "settings",
    "sizes",
    "reasoning",
}
# Which wings each wing may import (besides the basics and itself). Imports run down.
WINGS: dict[str, set[str]] = {
    "hardware": set(),
    "models": {"hardware"},
    "conversations": set(),
    "tools": set(),  # JSON schemas as grammars (structured output)
    "engine": {"hardware", "models", "tools"},
    "clients": set(),
    # Reading, chunks, the index; embeddings come through a callable. Its catalog of embedding
    # models is a catalog like the chat models' one, downloaded the same way.
    "documents": {"models"},
    "chat": {"conversations", "models", "documents", "tools"},
    "cli": {
        "hardware",
        "models",
        "conversations",
        "engine",
        "clients",
        "chat",
        "documents",
        "tools",
    },
    # The GUI runs no engine.
    "ui": {"hardware", "models", "conversations", "clients", "chat", "documents", "tools"},
    "__main__": {
        "hardware",
        "models",
        "conversations",
        "engine",
        "clients",
        "chat",
        "cli",
        "ui",
        "documents",
        "tools",
    },
}
# Named exceptions, each with its reason.
ALLOWED_EDGES = {
    # The fallback ladder: the supervisor (the app's side) writes what the engine process reads.
    ("assistant.clients.supervisor", "assistant.engine.configs"),
    ("assistant.clients.supervisor", "assistant.engine"),
}


def module_files() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(("assistant", *parts))] = path
    return found


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that ``name`` imports, anywhere in its file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {t for t in targets if t in known and t != name}
    return found


def graph() -> dict[str, set[str]]:
    known = module_files()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def wing(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "assistant"
    if (PACKAGE / parts[1]).is_dir():
        return parts[1]
    return parts[1] if parts[1] == "__main__" else "basics"


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_every_module_is_in_a_known_place() -> None:
    for module in module_files():
        place = wing(module)
        assert place in WINGS or place in ("basics", "assistant"), f"{module}: unknown wing"
        if place == "basics":
            assert module.split(".")[1] in BASICS, f"{module} is a basic not listed in BASICS"


def test_no_import_loops() -> None:
    cycle = find_cycle(graph())
    assert cycle is None, "import loop: " + " -> ".join(cycle or [])


def test_wings_import_only_what_lies_below_them() -> None:
    wrong = []
    for module, targets in graph().items():
        source = wing(module)
        for target in targets:
            into = wing(target)
            if into in ("basics", "assistant") or into == source:
                continue
            if (module, target) in ALLOWED_EDGES:
                continue
            if source in ("basics", "assistant") or into not in WINGS.get(source, set()):
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports against the layout:\n" + "\n".join(sorted(wrong))


def test_package_inits_import_nothing() -> None:
    """Importing ``assistant.engine.configs`` runs ``assistant/engine/__init__.py`` first; the
    edges above leave such parents out, so they must stay empty of imports (docstrings only)."""
    known = module_files()
    for name, path in known.items():
        if path.name == "__init__.py" and name != "assistant":
            assert imports_of(name, path, known) == set(), f"{path} imports the package"


def test_tests_mirror_the_wings() -> None:
    """tests/<wing>/ for a wing's tests; helpers and cross-cutting tests stay at the top."""
    tests = Path(__file__).parent
    for folder in tests.iterdir():
        if folder.is_dir() and (folder / "__init__.py").exists() and folder.name != "benchmarks":
            assert folder.name in WINGS, f"tests/{folder.name}/ is no wing of the package"


def test_the_checks_see_a_loop_and_a_wrong_import() -> None:
    """The checks themselves, on a made-up graph: a loop is found, and so is an upward edge."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
    assert wing("assistant.engine.llama") == "engine"
    assert wing("assistant.records") == "basics"
    assert "ui" not in WINGS["engine"] and "clients" not in WINGS["engine"]
    assert "engine" not in WINGS["chat"] and "ui" not in WINGS["cli"]
