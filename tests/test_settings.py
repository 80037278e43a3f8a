"""Settings: every knob declared once (variable, default, doc), its page generated, one-line errors."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import pytest

from service.settings import FIELDS, Settings, SettingsError, from_env
from tools import configuration_docs

ROOT = Path(__file__).resolve().parents[1]


def test_every_setting_has_its_own_variable_and_a_description():
    variables = [f.metadata["env"] for f in FIELDS]
    assert len(variables) == len(set(variables))
    for f in FIELDS:
        assert f.metadata["doc"].strip(), f.name
        assert from_env({}).__getattribute__(f.name) == f.default  # unset: the declared default


def test_the_configuration_page_is_current():
    page = (ROOT / "docs" / "configuration.md").read_text()
    assert page == configuration_docs.markdown(), "run: python -m tools.configuration_docs"
    for f in FIELDS:
        assert page.count(f"| `{f.metadata['env']}` |") == 1


def _literal(node: ast.expr | None) -> bool:
    """A default written out as a value (5, -1.0, 3 * 3600, ("a",)), not taken from somewhere."""
    if node is None or (isinstance(node, ast.Constant) and node.value is None):
        return False
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.UnaryOp):
        return _literal(node.operand)
    if isinstance(node, ast.BinOp):
        return _literal(node.left) and _literal(node.right)
    if isinstance(node, ast.Tuple):
        return all(_literal(e) for e in node.elts)
    return False


def _defaults(tree: ast.AST):
    """(name, line) of every parameter default, class attribute and `self.x = ...` given a literal value."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            positional = node.args.posonlyargs + node.args.args
            pairs = list(zip(positional[len(positional) - len(node.args.defaults) :], node.args.defaults))
            pairs += [(a, d) for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults) if d is not None]
            yield from ((a.arg, node.lineno) for a, d in pairs if _literal(d))
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if (
                    isinstance(item, ast.AnnAssign)
                    and isinstance(item.target, ast.Name)
                    and _literal(item.value)
                ):
                    yield item.target.id, item.lineno
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self":
                    if _literal(node.value):
                        yield t.attr, node.lineno


GROUPS = ("vad_", "upload_", "queue_", "key_")  # knobs whose copies drop the group from the name


def _names(field_name: str) -> set[str]:
    """The names a copy of a setting would go by: its own, without its group or its unit."""
    names = {field_name, field_name.removesuffix("_ms")}
    return names | {n.removeprefix(g) for n in names for g in GROUPS if n.startswith(g)}


def test_no_setting_has_a_default_anywhere_but_in_settings():
    """A Scheduler, an engine or a limit built without Settings would otherwise be another service."""
    names = {n: f.name for f in FIELDS for n in _names(f.name) if n}
    found = []
    files = [p for p in (ROOT / "service").rglob("*.py") if "settings" not in p.parts]
    for path in [*files, ROOT / "gunicorn.conf.py"]:
        for name, line in _defaults(ast.parse(path.read_text())):
            if name in names:
                found.append(f"{path.relative_to(ROOT)}:{line} {name} (the setting {names[name]})")
    assert not found, "defaults set outside service/settings/:\n" + "\n".join(found)


def test_the_scheduler_takes_every_knob_from_settings():
    from service.batching.scheduler import Scheduler

    engine = SimpleNamespace(model_name="m", name="openai-whisper", device="cuda:0")
    settings = Settings()
    scheduler = Scheduler(engine, settings)
    assert scheduler.admission.max_requests == settings.queue_max_requests == 24
    assert scheduler.admission.max_seconds == settings.queue_max_seconds
    assert scheduler.loop.batch_wait == settings.batch_wait_ms / 1000 == 0.25
    assert scheduler.admission.shares.max_requests_share == settings.key_max_share == 0.5
    assert scheduler.batch_size == 16  # BATCH_SIZE=0: the device's
    assert Scheduler(engine, settings.replace(batch_size=3)).batch_size == 3


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "http"}, "PORT='http' is not a number, e.g. PORT=5000"),
        ({"PORT": "70000"}, "PORT='70000' is not a TCP port, e.g. PORT=5000"),
        ({"KEY_MAX_SHARE": "2"}, "KEY_MAX_SHARE='2' is not a fraction in (0, 1], e.g. KEY_MAX_SHARE=0.5"),
        ({"VAD": "maybe"}, "VAD='maybe' is not a boolean, e.g. VAD=true"),
        ({"WHISPER_ENGINE": "x"}, "WHISPER_ENGINE='x' is invalid: use one of openai-whisper, faster-whisper"),
        ({"METRICS_PORT": "5000"}, "METRICS_PORT must differ from PORT (5000), e.g. METRICS_PORT=9101"),
    ],
)
def test_an_invalid_value_is_one_line_naming_the_variable_and_an_example(env, message):
    with pytest.raises(SettingsError) as caught:
        from_env(env)
    assert str(caught.value) == message
