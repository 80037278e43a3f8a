"""One decoding vocabulary: service/batching's glossary and docs/architecture.md's name the same nouns, and
the retired word "piece" (a rest or an input, before) is gone from the decoding code and its metrics."""

from __future__ import annotations

import re
from pathlib import Path

import service.batching

ROOT = Path(__file__).resolve().parents[1]


def test_the_code_and_the_architecture_page_share_one_glossary():
    code = re.findall(r"^  ([a-z]+) {2,}\S", service.batching.__doc__, flags=re.M)
    page = re.findall(r"^- \*\*([a-z]+)\*\*:", (ROOT / "docs" / "architecture.md").read_text(), flags=re.M)
    assert code == page == ["region", "window", "rest", "input", "call", "segment"]


def test_no_decoding_module_says_piece():
    decoding = [*(ROOT / "service" / "batching").rglob("*.py"), *(ROOT / "service" / "engines").rglob("*.py")]
    found = [
        f"{path.relative_to(ROOT)}:{n}"
        for path in [*decoding, ROOT / "service" / "metrics.py"]
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "piece" in line.lower()
    ]
    assert not found, found
