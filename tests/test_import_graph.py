"""The import graph of kanswap/ and kernels/ (kanswap.kernels), read from the source with ast,
imports inside functions included: no circle, and no module below the model classes imports them
(operations take the model as an argument and build new ones with ``type(model)(...)``)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL_MODULES = {"kanswap.kan", "kanswap.mlp"}
# Allowed to import the model classes: the package face and the command line on top.
TOP = {"kanswap", "kanswap.__main__", "kanswap.demo"}


def _modules() -> dict[str, Path]:
    found = {}
    for folder, prefix in (("kanswap", "kanswap"), ("kernels", "kanswap.kernels")):
        for path in sorted((ROOT / folder).glob("*.py")):
            found[prefix if path.stem == "__init__" else f"{prefix}.{path.stem}"] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """module -> the kanswap modules it imports anywhere in its body."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        package = name if path.stem == "__init__" else name.rsplit(".", 1)[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    parts = parts[:len(parts) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                # "from . import swap" imports a module; "from .swap import f" a name of one.
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                           for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            edges.update(t for t in targets if t in modules and t != name)
        graph[name] = edges
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_graph_is_read():
    graph = import_graph()
    # The reader sees relative, absolute and function-level imports (a broken reader passes vacuously).
    assert "kanswap.kan" in graph["kanswap"]
    assert "kanswap.functional" in graph["kanswap.kernels.bspline"]  # from kanswap import functional
    assert "kanswap.kernels.bspline" in graph["kanswap.layer"]  # inside a function
    assert "kanswap.checkpoint" in graph["kanswap.kan"]  # inside a method
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_circle():
    assert _circles(import_graph()) == []


def test_only_the_top_imports_the_model_classes():
    graph = import_graph()
    offenders = {name: sorted(edges & MODEL_MODULES) for name, edges in graph.items()
                 if name not in TOP | MODEL_MODULES and edges & MODEL_MODULES}
    assert offenders == {}
    assert "kanswap.kan" not in graph["kanswap.mlp"] and "kanswap.mlp" not in graph["kanswap.kan"]
