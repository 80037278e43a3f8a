"""The docs name only what exists: every repository path written as code (`service/...`, `deploy/...`) in
docs/, the READMEs and pyproject.toml's comments is in the tree. A path that is gone, named as history,
says so in parentheses ("then `service/http.py`"), which this check leaves out."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = "service|deploy|infra|bench|tools|tests|monitoring|ansible|scripts|docs"
PATH = re.compile(rf"`((?:{FOLDERS})/[\w./*-]+)`")
HISTORY = re.compile(r"\(then [^)]*\)")  # "(then `service/scheduler.py`)": where it was, on purpose


def _documents() -> list[Path]:
    found = {*ROOT.glob("docs/*.md"), *ROOT.glob("*.md"), *ROOT.glob("*/**/README.md")}
    return sorted(p for p in found if not {".venv", "build", ".git"} & set(p.relative_to(ROOT).parts))


def test_every_path_the_docs_name_exists():
    missing = []
    for doc in _documents():
        text = HISTORY.sub("", doc.read_text())
        for path in {m.rstrip(".,:") for m in PATH.findall(text)}:
            if not any(ROOT.glob(path.split(":")[0])):
                missing.append(f"{doc.relative_to(ROOT)}: {path}")
    assert not missing, "\n".join(missing)


def test_pyproject_comments_name_existing_files():
    names = re.findall(rf"((?:{FOLDERS})/[\w./*-]+\.py)", (ROOT / "pyproject.toml").read_text())
    assert [n for n in names if not any(ROOT.glob(n))] == []
