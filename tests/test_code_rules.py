"""Rules for the code in ymds/ that a reviewer should not have to check by eye.

- Public Twisted APIs only: no ``from twisted... import _x`` and no access to a private
  attribute that ymds does not define itself (``obj._x`` / ``getattr(obj, "_x")``), except in
  the one module named for the internals it relies on (ymds/queue/fastwrite.py).
- No import cycle among ymds modules (module-level imports; a function-level import runs
  later and cannot deadlock an import).
- No module in ymds/ over 600 lines.
- No function over 60 lines unless a ``# long: <reason>`` comment says why (just above the
  ``def`` or in its first lines); functions written before the rule are listed below.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

from twisted.trial.unittest import TestCase

import ymds

PACKAGE = Path(ymds.__file__).parent
#: The one module allowed to use private Twisted internals (with its own loud test).
INTERNALS_MODULE = "ymds.queue.fastwrite"
#: Private names of the standard library that are documented for use.
DOCUMENTED_PRIVATE = {"_exit", "_replace", "_asdict", "_fields", "_make"}
MAX_LINES = 600
MAX_FUNCTION_LINES = 60
#: Long functions from before the rule: shorten them or give the reason, then drop them here.
LONG_FUNCTIONS_BASELINE = {
    "ymds.api.openapi._document", "ymds.billing.postgres.apply_in", "ymds.bot.service.make_bot_service",
    "ymds.roles.build_service",
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()
TREES = {name: ast.parse(path.read_text(encoding="utf-8"), str(path)) for name, path in MODULES.items()}


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _defined_in_ymds() -> set[str]:
    """Every name ymds itself defines: functions, classes, assigned names and attributes, parameters."""
    names: set[str] = set()
    for tree in TREES.values():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                names.add(node.id)
            elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                names.add(node.attr)
            elif isinstance(node, ast.arg):
                names.add(node.arg)
            elif isinstance(node, ast.alias):
                names.add(node.asname or node.name.split(".")[0])
    return names


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    is_package = MODULES[module].name == "__init__.py"
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def private_twisted_uses() -> list[str]:
    """``path:line: what`` for each private Twisted import or foreign private attribute."""
    ours = _defined_in_ymds()
    found = []
    for module, tree in TREES.items():
        if module == INTERNALS_MODULE:
            continue
        where = MODULES[module].relative_to(PACKAGE.parent)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                source = _resolve(module, node)
                if source.split(".")[0] == "twisted":
                    bad = [p for p in source.split(".") if _private(p)]
                    bad += [a.name for a in node.names if _private(a.name)]
                    if bad:
                        found.append(f"{where}:{node.lineno}: from {source} import {', '.join(bad)}")
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "twisted" and any(_private(p) for p in alias.name.split(".")):
                        found.append(f"{where}:{node.lineno}: import {alias.name}")
            elif isinstance(node, ast.Attribute):
                if _private(node.attr) and node.attr not in ours and node.attr not in DOCUMENTED_PRIVATE:
                    found.append(f"{where}:{node.lineno}: .{node.attr}")
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id in ("getattr", "hasattr", "setattr") and len(node.args) >= 2
                  and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)):
                attr = node.args[1].value
                if _private(attr) and attr not in ours and attr not in DOCUMENTED_PRIVATE:
                    found.append(f"{where}:{node.lineno}: {node.func.id}(..., {attr!r})")
    return found


def _top_level_imports(module: str, tree: ast.Module) -> set[str]:
    """ymds modules imported when ``module`` is imported (not inside functions or TYPE_CHECKING)."""
    imported: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.Import):
                imported.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                source = _resolve(module, node)
                submodules = {f"{source}.{a.name}" for a in node.names} & MODULES.keys()
                imported.update(submodules)
                if len(submodules) < len(node.names):  # names defined in the package itself
                    imported.add(source)
            elif isinstance(node, ast.If):
                test = ast.unparse(node.test)
                if "TYPE_CHECKING" not in test:
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, (ast.Try,)):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, ast.With):
                visit(node.body)

    visit(tree.body)
    return {name for name in imported if name in MODULES and name != module}


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for module, tree in TREES.items():
        # explicit imports only: a submodule's implicit import of its parent package is
        # not a cycle Python trips over
        graph[module] = _top_level_imports(module, tree)
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
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
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return cycles


def long_functions() -> list[str]:
    """``module.function`` (methods too, without their class) for each function over the limit
    with no reason given."""
    found = []
    for module, tree in TREES.items():
        lines = MODULES[module].read_text(encoding="utf-8").splitlines()

        def visit(node: ast.AST) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.ClassDef):
                    visit(child)
                elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    start = min([child.lineno] + [d.lineno for d in child.decorator_list])
                    size = child.end_lineno - child.lineno + 1
                    near = lines[max(0, start - 3): child.lineno + 3]
                    if size > MAX_FUNCTION_LINES and not any("# long:" in line for line in near):
                        found.append(f"{module}.{child.name}")
                    visit(child)

        visit(tree)
    return found


class CodeRulesTests(TestCase):
    def test_no_private_twisted_api_outside_the_internals_module(self):
        self.assertEqual(private_twisted_uses(), [])

    def test_the_rule_catches_a_private_import_and_attribute(self):
        # the scanner itself must be able to fail
        sample = ast.parse("from twisted.web.client import _HTTP11ClientFactory\nx = request._disconnected\n")
        TREES["ymds._rule_sample"] = sample
        MODULES["ymds._rule_sample"] = PACKAGE / "_rule_sample.py"
        try:
            found = private_twisted_uses()
        finally:
            del TREES["ymds._rule_sample"], MODULES["ymds._rule_sample"]
        self.assertIn("ymds/_rule_sample.py:1: from twisted.web.client import _HTTP11ClientFactory", found)
        self.assertIn("ymds/_rule_sample.py:2: ._disconnected", found)

    def test_no_import_cycle(self):
        self.assertEqual(import_cycles(import_graph()), [])

    def test_cycle_finder_finds_a_cycle(self):
        self.assertEqual(import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}), [["a", "b", "c"]])

    def test_no_module_over_600_lines(self):
        long = {name: n for name, path in MODULES.items()
                if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
        self.assertEqual(long, {})

    def test_no_long_function_without_a_reason(self):
        self.assertEqual(sorted(set(long_functions()) - LONG_FUNCTIONS_BASELINE), [])
