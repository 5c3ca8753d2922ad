"""The front ends have one shape: the factory above the classes, the shared bookkeeping below
them, and no import cycle among the runtime's modules (imports inside functions included)."""

from __future__ import annotations

import ast
from pathlib import Path

RUNTIME = Path(__file__).resolve().parent.parent / "runtime"


def runtime_imports() -> dict[str, set[str]]:
    """``module -> runtime modules it imports`` (relative imports, at any depth of the file)."""
    graph = {}
    for path in RUNTIME.glob("*.py"):
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    targets.add(node.module.split(".")[0])
                else:
                    targets.update(alias.name for alias in node.names)
        graph[path.stem] = {t for t in targets if (RUNTIME / f"{t}.py").exists()}
    return graph


def test_no_import_cycle_in_the_runtime():
    graph = runtime_imports()
    done, active = set(), []

    def visit(module):
        if module in active:
            cycle = active[active.index(module):] + [module]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        active.append(module)
        for target in sorted(graph.get(module, ())):
            visit(target)
        active.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def test_the_factory_is_above_the_front_ends():
    graph = runtime_imports()
    front_ends = {"frontend", "cuda_frontend", "wrapped"}
    assert front_ends <= graph["factory"] | {"cuda_frontend"}
    for module in front_ends:
        assert not graph[module] & (front_ends | {"factory"}), (module, graph[module])
