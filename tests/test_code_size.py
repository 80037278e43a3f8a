"""The service stays readable in pieces: no module over 300 lines, no class over 200, no function over 40."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE, MAX_CLASS, MAX_FUNCTION = 300, 200, 40


def _modules() -> list[Path]:
    return sorted((ROOT / "service").rglob("*.py"))


def _lines(node: ast.AST) -> int:
    return node.end_lineno - node.lineno + 1


def test_no_module_over_300_lines():
    long = [
        f"{p.relative_to(ROOT)}: {n}"
        for p in _modules()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE
    ]
    assert not long, "\n".join(long)


def test_no_class_over_200_lines_and_no_function_over_40():
    long = []
    for path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            limit = MAX_CLASS if isinstance(node, ast.ClassDef) else MAX_FUNCTION
            if (
                isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                and _lines(node) > limit
            ):
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {_lines(node)} lines")
    assert not long, "\n".join(long)
