"""The import graph of a package read from its source with `ast` (nothing imported):
every `import`/`from ... import` anywhere in a module (function-level and
TYPE_CHECKING imports included), relative imports resolved to absolute names."""

from __future__ import annotations

import ast
from collections import deque
from pathlib import Path


def module_name(root: Path, path: Path) -> str:
    """`explain/analyses/metric.py` -> `explain.analyses.metric` (a package's `__init__` is the package)."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, module: str, is_package: bool) -> set[str]:
    """Absolute names of what `module` imports; `from a import b` counts as `a` and `a.b`
    (b may be a submodule)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the modules it imports, for every module of `package` under `root`."""
    graph: dict[str, set[str]] = {}
    for path in sorted((root / package).rglob("*.py")):
        name = module_name(root, path)
        graph[name] = imported_modules(path.read_text(encoding="utf-8"), name, path.name == "__init__.py")
    return graph


def is_within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def forbidden_chains(graph: dict[str, set[str]], sources: str, forbidden: str) -> list[list[str]]:
    """Import chains from a module under `sources` to one under `forbidden`, following
    imports through the graph's own modules (the shortest chain for each start)."""
    chains = []
    for start in sorted(m for m in graph if is_within(m, sources)):
        parent: dict[str, str | None] = {start: None}
        queue = deque([start])
        while queue:
            current = queue.popleft()
            if is_within(current, forbidden):
                chain = [current]
                while (step := parent[chain[-1]]) is not None:
                    chain.append(step)
                chains.append(chain[::-1])
                break
            for imported in sorted(graph.get(current, ())):
                if imported not in parent and (imported in graph or is_within(imported, forbidden)):
                    parent[imported] = current
                    queue.append(imported)
    return chains
