"""Measure how easy the package is to read and extend (issue 16), from its source alone.

    python tools/architecture_metrics.py [--json] [PACKAGE_DIR]

Why a tool: the targets in docs/ARCHITECTURE.md (modules under 400 code lines, functions under
60 lines, a small top-level API, documented public names, no import cycles) only hold if
something measures them; tests/test_architecture.py asserts the figures this prints.

Everything is computed with `ast` (nothing is imported, so TensorFlow is never loaded):
- code lines: lines that are neither blank nor only a comment (docstrings count as code);
- function length: from the `def` line to the function's last line (decorators excluded);
  nested functions count inside the function that holds them;
- exports: the names in `facenet/__init__.py`'s `__all__`;
- docstring coverage: public module-level functions and classes, and public methods of
  public classes (names not starting with `_`);
- import cycles: strongly connected components of the graph "module A imports module B"
  over the package's own modules, counting imports inside functions too (a lazy import
  hides a cycle from Python, not from a reader).
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

MODULE_LIMIT = 400
FUNCTION_LIMIT = 60


@dataclass
class Metrics:
    """The figures for one package directory."""

    modules: int = 0
    code_lines: int = 0
    long_modules: dict[str, int] = field(default_factory=dict)
    long_functions: dict[str, int] = field(default_factory=dict)
    exports: list[str] = field(default_factory=list)
    public_names: int = 0
    documented: int = 0
    undocumented: list[str] = field(default_factory=list)
    import_cycles: list[list[str]] = field(default_factory=list)

    @property
    def docstring_coverage(self) -> float:
        """Share of public functions and classes with a docstring (1.0 when there are none)."""
        return self.documented / self.public_names if self.public_names else 1.0


def code_lines(source: str) -> int:
    """Lines that are neither blank nor only a comment."""
    return sum(
        1 for line in source.splitlines() if line.strip() and not line.strip().startswith("#")
    )


def module_name(path: Path, root: Path) -> str:
    """Dotted module name of `path` inside the package rooted at `root`."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _functions(tree: ast.AST, prefix: str = "") -> list[tuple[str, ast.AST]]:
    """Top-level functions and methods (not nested functions), with qualified names."""
    found = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found.append((prefix + node.name, node))
        elif isinstance(node, ast.ClassDef):
            found.extend(_functions(node, prefix + node.name + "."))
    return found


def _public_definitions(tree: ast.Module) -> list[tuple[str, ast.AST]]:
    """Public module-level functions and classes, and public methods of public classes."""
    found = []
    for node in tree.body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if node.name.startswith("_"):
            continue
        found.append((node.name, node))
        if isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(
                    item, (ast.FunctionDef, ast.AsyncFunctionDef)
                ) and not item.name.startswith("_"):
                    found.append((f"{node.name}.{item.name}", item))
    return found


def _imports(tree: ast.Module, name: str, is_package: bool, known: set[str]) -> set[str]:
    """The package's own modules that this module imports (anywhere in its body)."""
    base = name.split(".") if is_package else name.split(".")[:-1]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                stem = base[: len(base) - (node.level - 1)]
                module = ".".join(stem + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                submodule = f"{module}.{alias.name}"
                targets.add(submodule if submodule in known else module)
    resolved = set()
    for target in targets:
        while target and target not in known:
            target = target.rpartition(".")[0]
        if target and target != name:
            resolved.add(target)
    return resolved


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return sorted(components)


def measure(package: Path) -> Metrics:
    """Measure every module under `package` (a directory holding `__init__.py`)."""
    package = package.resolve()
    files = sorted(p for p in package.rglob("*.py") if "__pycache__" not in p.parts)
    trees = {module_name(p, package): (p, ast.parse(p.read_text(encoding="utf-8"))) for p in files}
    known = set(trees)
    metrics = Metrics(modules=len(files))
    graph: dict[str, set[str]] = {}
    for name, (path, tree) in trees.items():
        relative = str(path.relative_to(package.parent))
        lines = code_lines(path.read_text(encoding="utf-8"))
        metrics.code_lines += lines
        if lines > MODULE_LIMIT:
            metrics.long_modules[relative] = lines
        for qualname, node in _functions(tree):
            length = node.end_lineno - node.lineno + 1
            if length > FUNCTION_LIMIT:
                metrics.long_functions[f"{relative}:{qualname}"] = length
        for qualname, node in _public_definitions(tree):
            metrics.public_names += 1
            if ast.get_docstring(node):
                metrics.documented += 1
            else:
                metrics.undocumented.append(f"{relative}:{qualname}")
        graph[name] = _imports(tree, name, path.name == "__init__.py", known)
        if path.name == "__init__.py" and path.parent == package:
            metrics.exports = _all_names(tree)
    metrics.import_cycles = _cycles(graph)
    return metrics


def _all_names(tree: ast.Module) -> list[str]:
    """The string entries of a module's `__all__` (empty when it has none)."""
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            getattr(t, "id", "") == "__all__" for t in node.targets
        ):
            return [e.value for e in getattr(node.value, "elts", []) if isinstance(e, ast.Constant)]
    return []


def table(metrics: Metrics) -> str:
    """The summary as a small Markdown table (the format of the issue's closing note)."""
    rows = [
        ("modules / code lines", f"{metrics.modules} / {metrics.code_lines}"),
        (f"modules over {MODULE_LIMIT} code lines", str(len(metrics.long_modules))),
        (f"functions over {FUNCTION_LIMIT} lines", str(len(metrics.long_functions))),
        ("top-level exports of facenet", str(len(metrics.exports))),
        (
            "docstring coverage (public)",
            f"{metrics.docstring_coverage:.0%} of {metrics.public_names}",
        ),
        ("import cycles", str(len(metrics.import_cycles))),
    ]
    lines = ["| metric | value |", "|---|---|", *(f"| {a} | {b} |" for a, b in rows)]
    for title, items in (
        ("long modules", metrics.long_modules),
        ("long functions", metrics.long_functions),
    ):
        if items:
            lines.append(f"\n{title}:")
            lines.extend(f"  {n:5d}  {k}" for k, n in sorted(items.items(), key=lambda kv: -kv[1]))
    for cycle in metrics.import_cycles:
        lines.append("cycle: " + " <-> ".join(cycle))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the table (or `--json`) for the package; exit 0 (the figures are not a verdict)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "package", nargs="?", default=str(Path(__file__).resolve().parents[1] / "facenet")
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    package = Path(args.package)
    if not (package / "__init__.py").is_file():
        print(f"error: {package} is not a Python package directory", file=sys.stderr)
        return 2
    metrics = measure(package)
    if args.json:
        print(
            json.dumps(
                {**asdict(metrics), "docstring_coverage": metrics.docstring_coverage}, indent=1
            )
        )
    else:
        print(table(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
