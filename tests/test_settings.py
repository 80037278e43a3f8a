"""Settings: every knob declared once (variable, default, doc), its page generated, one-line errors."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from service.settings import FIELDS, Settings, SettingsError, from_env
from tools import configuration_docs

ROOT = Path(__file__).resolve().parents[1]


def test_every_setting_has_its_own_variable_and_a_description():
    variables = [f.env for f in FIELDS]
    assert len(variables) == len(set(variables))
    for f in FIELDS:
        assert f.doc.strip(), f.name
        assert from_env({}).__getattribute__(f.name) == f.default  # unset: the declared default


def test_the_configuration_page_is_current():
    page = (ROOT / "docs" / "configuration.md").read_text()
    assert page == configuration_docs.markdown(), "run: python -m tools.configuration_docs"
    for f in FIELDS:
        assert page.count(f"| `{f.env}` |") == 1


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


# Outside service/: the image, the deploy, the host and the cloud run the service with its own defaults.
OUTSIDE = ("Dockerfile", "gunicorn.conf.py", "deploy", "ansible", "infra")


def _same(value: object, default: object) -> bool:
    """Whether a value written in a file (a literal, or the text of one) is the setting's default."""
    if isinstance(default, bool):
        return str(value).lower() == str(default).lower()
    if isinstance(default, (int, float)):
        try:
            return not isinstance(value, bool) and float(value) == default  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return False
    return isinstance(default, str) and str(value) == default


def _copy_of(name: str, value: object, *, any_value: bool):
    """The setting that `name = value` copies: one whose name (field or variable) ends `name` (PORT,
    CONTAINER_API_PORT) with the default's own value; with `any_value`, one named exactly `name` whatever the
    value (in Python, a field or parameter named for a setting says it is the service's)."""
    words = [w for w in name.lower().split("_") if w]
    for f in FIELDS:
        for own in (f.name, f.env.lower()):
            own_words = own.split("_")
            if any_value and words == own_words:
                return f
            if f.default and words[-len(own_words) :] == own_words and _same(value, f.default):
                return f
    return None


def _python_values(tree: ast.AST):
    """(name, value, line) of every literal a Python file gives a name: assignments, attributes, parameter
    defaults, keyword arguments, and `get("NAME", value)`-shaped calls."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and _literal(node.value):
            for t in node.targets if isinstance(node, ast.Assign) else [node.target]:
                name = t.id if isinstance(t, ast.Name) else t.attr if isinstance(t, ast.Attribute) else None
                if name:
                    yield name, ast.literal_eval(node.value), node.lineno
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            positional = node.args.posonlyargs + node.args.args
            pairs = list(zip(positional[len(positional) - len(node.args.defaults) :], node.args.defaults))
            pairs += [(a, d) for a, d in zip(node.args.kwonlyargs, node.args.kw_defaults) if d is not None]
            yield from ((a.arg, ast.literal_eval(d), d.lineno) for a, d in pairs if _literal(d))
        elif isinstance(node, ast.Call):
            for k in node.keywords:
                if k.arg and _literal(k.value):
                    yield k.arg, ast.literal_eval(k.value), k.value.lineno
            name, value = (node.args + [None, None])[:2]
            if isinstance(name, ast.Constant) and isinstance(name.value, str) and _literal(value):
                yield name.value, ast.literal_eval(value), node.lineno


ASSIGNED = re.compile(r"\b([A-Za-z_]\w*)\s*(?:=|:\s)\s*[\"']?([\w./-]+)")  # NAME=x, key: x, NAME: "x"


def _text_values(text: str, dockerfile: bool):
    """(name, value, line) of every `NAME=value` and `key: value` in a Dockerfile, shell or YAML file
    (comments left out); in a Dockerfile also each EXPOSEd port, as a PORT."""
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split(" #")[0] if not line.lstrip().startswith("#") else ""
        for name, value in ASSIGNED.findall(line):
            yield name, value, number
        if dockerfile and line.startswith("EXPOSE "):
            yield from (("PORT", port.split("/")[0], number) for port in line.split()[1:])


def _outside_files():
    for entry in OUTSIDE:
        path = ROOT / entry
        yield from sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def test_no_default_of_the_service_is_copied_into_the_image_the_deploy_or_the_host():
    """The Dockerfile, deploy/, ansible/ and infra/ take the service's defaults from service/settings (or
    leave them to the service); a copy there is another service the day the default changes. An ENV or a
    variable with a value of its own (WHISPER_MODEL_DIR=/models) is a choice, not a copy."""
    found = {}
    for path in _outside_files():
        if path.suffix == ".py":
            values = _python_values(ast.parse(path.read_text()))
        elif path.suffix in (".sh", ".yml", ".yaml", ".j2", ".cfg") or path.name == "Dockerfile":
            values = _text_values(path.read_text(), dockerfile=path.name == "Dockerfile")
        else:
            continue
        for name, value, line in values:
            if f := _copy_of(name, value, any_value=path.suffix == ".py"):
                found[f"{path.relative_to(ROOT)} {name}={value} (the setting {f.name})"] = line
    copies = [f"{copy} at line {line}" for copy, line in sorted(found.items())]
    assert not copies, "defaults of service/settings copied:\n" + "\n".join(copies)


def test_the_scheduler_takes_every_knob_from_settings():
    from service.batching.scheduler import Scheduler

    # BATCH_SIZE=0 leaves the call's size to the engine (its class's, for its device: tests/engines)
    engine = SimpleNamespace(
        model_name="m", name="openai-whisper", device="cuda:0", default_batch_size=lambda: 9
    )
    settings = Settings()
    scheduler = Scheduler(engine, settings)
    assert scheduler.admission.max_requests == settings.queue_max_requests == 24
    assert scheduler.admission.max_seconds == settings.queue_max_seconds
    assert scheduler.loop.batch_wait == settings.batch_wait_ms / 1000 == 0.25
    assert scheduler.admission.shares.max_requests_share == settings.key_max_share == 0.5
    assert scheduler.batch_size == 9  # BATCH_SIZE=0: the engine's
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
        ({"BEAM_SIZE": "17"}, "BEAM_SIZE='17' must be <= 16, e.g. BEAM_SIZE=5"),
        ({"WORKERS": "-1"}, "WORKERS='-1' must be >= 0, e.g. WORKERS=1"),
        (
            {"THREADS": "16"},
            "QUEUE_MAX_REQUESTS=24 must be below THREADS (16): each request waits on a thread, "
            "e.g. QUEUE_MAX_REQUESTS=12",
        ),
    ],
)
def test_an_invalid_value_is_one_line_naming_the_variable_and_an_example(env, message):
    with pytest.raises(SettingsError) as caught:
        from_env(env)
    assert str(caught.value) == message


def test_values_are_typed_and_secrets_stay_hidden():
    s = from_env({"API_KEYS": "a" * 16 + ", " + "b" * 20, "VAD": "Off", "WHISPER_ENGINE": "Faster-Whisper"})
    assert [k.get_secret_value() for k in s.api_keys] == ["a" * 16, "b" * 20]
    assert "a" * 16 not in repr(s) and "a" * 16 not in str(s.model_dump())
    assert s.vad is False and s.whisper_engine == "faster-whisper"
    assert from_env({"PORT": ""}).port == 5000  # an empty variable is unset
    assert Settings().replace(beam_size=3) == Settings(beam_size=3)  # keyword overrides by field name
    with pytest.raises(SettingsError, match="BEAM_SIZE"):
        Settings().replace(beam_size=17)  # checked the same way as the environment


def test_settings_read_the_process_environment_only_through_from_env(monkeypatch):
    monkeypatch.setenv("PORT", "5050")
    assert from_env().port == 5050
    assert Settings().port == 5000  # Settings() is the declared defaults, whatever the shell exports
