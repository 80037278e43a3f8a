"""Every Python folder stays readable in pieces: no module over 300 lines, no class over 200, no function
over 40, with no exception (the debts bench/ and tests/ once had, issue #35, are paid: split a long module
by theme into siblings, a long function into named helpers)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_MODULE, MAX_CLASS, MAX_FUNCTION = 300, 200, 40
FOLDERS = ("service", "bench", "deploy", "infra", "tools", "monitoring", "ansible", "scripts", "tests")
TOP_LEVEL = ("gunicorn.conf.py", "fabfile.py")


def _modules() -> list[Path]:
    found = [p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py")]
    return sorted([*found, *(ROOT / name for name in TOP_LEVEL)])


def _lines(node: ast.AST) -> int:
    return node.end_lineno - node.lineno + 1


def _too_long(key: str, length: int, limit: int) -> str | None:
    return f"{key}: {length} lines (at most {limit})" if length > limit else None


def _measured() -> list[tuple[str, int, int]]:
    """(key, lines, limit) for every module, class and function: "path" for a module, "path:name" for a class
    or function."""
    found = []
    for path in _modules():
        name, text = str(path.relative_to(ROOT)), path.read_text()
        found.append((name, len(text.splitlines()), MAX_MODULE))
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                limit = MAX_CLASS if isinstance(node, ast.ClassDef) else MAX_FUNCTION
                found.append((f"{name}:{node.name}", _lines(node), limit))
    return found


def test_no_module_over_300_lines():
    long = [m for key, n, limit in _measured() if ":" not in key if (m := _too_long(key, n, limit))]
    assert not long, "\n".join(long)


def test_no_class_over_200_lines_and_no_function_over_40():
    long = [m for key, n, limit in _measured() if ":" in key if (m := _too_long(key, n, limit))]
    assert not long, "\n".join(long)
