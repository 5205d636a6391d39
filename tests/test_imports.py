"""kdlib's modules form a layered graph: no import cycle, not even through a function-level import.

A cycle works until someone moves an import to the top of a file; then `import kdlib.lm.methods`
fails depending on which module was imported first. The graph below is read from the source
(every `import` statement, at any depth), so a lazy import inside a function counts too.
"""

import ast
import graphlib

from kdlib.repro import REPO_ROOT

PACKAGE = REPO_ROOT / "kdlib"


def _module(path):
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """module -> the kdlib modules it imports (`from pkg import name` counts as pkg.name where that is a module)."""
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([node.module] if node.module else []))
                else:
                    base = node.module or ""
                deps |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
        graph[name] = {d for d in deps if d in modules and d != name}
    return graph


def test_the_graph_is_read_from_the_source():
    graph = import_graph()
    assert "kdlib.lm.tokens" in graph["kdlib.lm.methods"]  # sft_loss comes from tokens
    assert "kdlib.lm.methods" in graph["kdlib.lm.models"]  # a function-level import counts
    assert "kdlib.run" in graph["kdlib.cli"]


def test_kdlib_has_no_import_cycle():
    try:
        order = list(graphlib.TopologicalSorter(import_graph()).static_order())
    except graphlib.CycleError as err:
        raise AssertionError(f"import cycle in kdlib: {' -> '.join(err.args[1])}") from None
    assert order.index("kdlib.lm.tokens") < order.index("kdlib.lm.models")
