"""docs/configuration.md, generated from the Settings declarations (service/settings/): every environment
variable, its default and its meaning. `python -m tools.configuration_docs` writes it; tests check it is
current."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from service.settings import FIELDS

PATH = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
# the field each group of knobs starts with
SECTIONS = {
    "whisper_model": "Model",
    "port": "HTTP",
    "max_upload_mb": "Limits",
    "header_timeout": "Slow clients",
    "decode_mode": "Scheduler",
    "vad": "Voice activity detection",
    "log_level": "Logging",
    "realtime_max_sessions": "Live audio (/v1/realtime)",
    "jobs_dir": "Background jobs (/v1/audio/jobs)",
    "jobs_database_url": "The fleet's job store (PostgreSQL and Cloud Storage)",
}
HEADER = """# Configuration

Every setting is an environment variable, read once at start; an invalid value stops the service with one
line that names it and gives an example (exit status 2). Generated from `service/settings/` (`__init__.py`,
`live.py`, `jobs.py`, `jobs_fleet.py`) by `python -m tools.configuration_docs`: edit the settings, not this
file.
"""


def shown(field: dataclasses.Field) -> str:
    """A field's default as the page prints it."""
    if field.metadata["shown"]:
        return field.metadata["shown"]
    value = field.default
    if isinstance(value, tuple):
        return ",".join(value) if value else "(empty)"
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


def markdown() -> str:
    lines = [HEADER.rstrip()]
    for field in FIELDS:
        if field.name in SECTIONS:
            lines += [
                "",
                f"## {SECTIONS[field.name]}",
                "",
                "| Variable | Default | Meaning |",
                "| --- | --- | --- |",
            ]
        lines.append(f"| `{field.metadata['env']}` | `{shown(field)}` | {field.metadata['doc']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    PATH.write_text(markdown())
    print(
        f"wrote {PATH.relative_to(Path.cwd()) if PATH.is_relative_to(Path.cwd()) else PATH}", file=sys.stderr
    )


if __name__ == "__main__":
    main()
