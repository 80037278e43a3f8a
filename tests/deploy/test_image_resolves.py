"""The image's exact requirement sets resolve from PyPI alone, and every CUDA library each engine loads at run
time comes from a wheel of those sets (or from the host driver). pip's resolver runs against the real PyPI
for the image's platform (manylinux, CPython of the base image); wheel file lists are read from PyPI with
range requests. No Docker engine or GPU is needed, so a wheel that does not exist, or a library that only a
wheel outside the set provides, fails here instead of in `docker build` or at the first request."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from tests.deploy import pypi
from tests.deploy.test_image import DOCKERFILE, ROOT, instructions, shipped_base


@pytest.fixture(autouse=True, scope="module")
def registry():
    """These tests are about the real registry: without it they fail, saying so, rather than skip."""
    assert pypi.reachable(), "PyPI is not reachable: these checks need the real package registry"


PYTHON_OF_BASE = {"ubuntu24.04": "3.12", "ubuntu22.04": "3.10"}  # the distributions' python3
# Sonames in libctranslate2 that are not loaded for this service, and why.
CT2_NOT_LOADED = {
    "libcuda.so.1": "the driver's own library: the NVIDIA Container Toolkit mounts it from the host",
    "libnccl.so.2": "loaded only for tensor parallelism (ctranslate2 tensor_parallel=True), never set here",
}


def python_version() -> str:
    return PYTHON_OF_BASE[shipped_base().rsplit("-", 1)[1]]


def pins_output(args: list[str]) -> list[str]:
    command = [sys.executable, str(ROOT / "deploy/pins.py"), *args]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def requirement_sets() -> dict[str, list[str]]:
    """{"venv": [...], "/opt/cuda12": [...]}: what each `pip install` of the Dockerfile installs, found by
    running the pins.py commands the Dockerfile runs, on the real pyproject.toml."""
    files: dict[str, list[str]] = {}
    sets: dict[str, list[str]] = {}
    steps = [s.strip() for run in instructions("RUN") for s in run.split("&&")]  # in order, across stages
    for step in steps:
        words = shlex.split(step.replace(">", " > "))
        if words[:2] == ["python", "/tmp/pins/pins.py"]:
            args = [a.replace("/tmp/pins/pyproject.toml", str(ROOT / "pyproject.toml")) for a in words[2:-2]]
            files[words[-1]] = pins_output(args)
        elif words[:2] == ["pip", "install"]:
            target = words[words.index("--target") + 1] if "--target" in words else "venv"
            if "--no-deps" in words:  # pyproject's `nodeps` extra: installed as is, never resolved (#33)
                target += " --no-deps"
            listed = words[words.index("-r") + 1]
            if "-c" in words:  # an extra over the venv's pins (`pyannote`, #33): resolved with them
                pins = files[words[words.index("-c") + 1]]
                sets[f"{target} + {Path(listed).stem}"] = pins + files[listed]
            else:
                sets[target] = files[listed]
    return sets


def ld_library_path() -> list[str]:
    (value,) = re.findall(r"LD_LIBRARY_PATH=(\S+)", " ".join(instructions("ENV")))
    return value.split(":")


@pytest.fixture(scope="module")
def resolved(tmp_path_factory) -> dict[str, dict[str, dict]]:
    """Per install target: pip's resolution for the image's platform, with each wheel's file list."""
    tmp = tmp_path_factory.mktemp("resolve")
    sets = requirement_sets()
    wheels = tmp / "sdist-wheels"
    pypi.build_sdist_wheels([r for r in sets["venv"] if r.startswith("openai-whisper==")], wheels)
    answer = {}
    for target, requirements in sets.items():
        if target.endswith("--no-deps"):
            continue
        report_file = tmp / f"{target.strip('/').replace('/', '-')}.json"
        report = pypi.resolve(requirements, python_version(), report_file, wheels)
        dists = pypi.installed(report)
        for name, dist in dists.items():
            if "+" not in target and name.startswith(("nvidia-", "torch", "ctranslate2", "cuda-")):
                dist["files"] = pypi.wheel_files(dist["url"])
        answer[target] = dists
    return answer


def test_resemblyzer_is_installed_without_its_sdist_only_dependency():
    """resemblyzer goes in with --no-deps (pyproject's `nodeps` comment says why); what it really needs is
    in the resolved venv set, webrtcvad as the webrtcvad-wheels wheel."""
    sets = requirement_sets()
    assert sets["venv --no-deps"] == ["resemblyzer==0.1.4"]
    names = {r.split("==")[0] for r in sets["venv"]}
    assert {"librosa", "scipy", "numpy", "torch", "webrtcvad-wheels"} <= names and "webrtcvad" not in names


def owner_of(dists: dict[str, dict], path: str) -> str | None:
    return next((name for name, d in dists.items() if path in d.get("files", ())), None)


def test_the_dockerfile_installs_two_sets_from_pyproject(resolved):
    assert set(resolved) == {"venv", "/opt/cuda12", "venv + pyannote"}
    venv, cuda12 = resolved["venv"], resolved["/opt/cuda12"]
    assert venv["torch"]["version"] == "2.13.0"
    assert any(r.startswith("cuda-toolkit") and "13." in r for r in venv["torch"]["requires"]), venv["torch"]
    assert venv["ctranslate2"]["version"] == metadata.version("ctranslate2")  # the copy inspected below
    assert "torch" not in cuda12 and "nvidia-cublas-cu12" in cuda12
    for dists in resolved.values():  # PyPI alone: no extra index; only sdist-only projects built locally
        local = [n for n, d in dists.items() if not d["url"].startswith("https://files.pythonhosted.org/")]
        assert local in ([], ["openai-whisper"]), local


def test_the_pyannote_extra_resolves_under_the_venvs_pins(resolved):
    """--build-arg DIARIZATION_BACKEND=pyannote installs pyproject's `pyannote` extra constrained by the
    venv's pins: every pin and every CUDA wheel keeps its version (torch 2.13.0, CUDA 13), and what
    pyannote.audio imports is there (torchaudio's CUDA 13 build: pyproject.toml says why it loads). An
    unpinned dependency may move (opentelemetry-api, which pyannote.audio's exporter pins one patch lower)."""
    venv, both = resolved["venv"], resolved["venv + pyannote"]
    pins = {re.split(r"[=\[]", line)[0].lower() for line in requirement_sets()["venv"]}
    kept = [name for name in venv if name in pins or name.startswith(("nvidia-", "cuda-", "torch"))]
    assert {"torch", "ctranslate2", "nvidia-cudnn-cu13"} <= set(kept)
    assert {name: both[name]["version"] for name in kept} == {name: venv[name]["version"] for name in kept}
    versions = {re.sub(r"[-_.]+", "-", name): d["version"] for name, d in both.items()}
    assert (versions["pyannote-audio"], versions["torchaudio"]) == ("4.0.7", "2.11.1")
    assert {"pyannote-core", "pyannote-pipeline", "lightning", "huggingface-hub"} <= set(versions)


def test_no_two_wheels_install_the_same_file(resolved):
    venv = resolved["venv"]
    seen: dict[str, str] = {}
    for name, dist in venv.items():
        for path in dist.get("files", ()):
            assert path not in seen, f"{path} is installed by both {seen[path]} and {name}"
            seen[path] = name


def site_packages_layout(dists: dict[str, dict], root: Path) -> Path:
    """Empty files at the paths the wheels install: enough for torch's glob-based loader."""
    for dist in dists.values():
        for path in dist.get("files", ()):
            if ".so" in path:
                (root / path).parent.mkdir(parents=True, exist_ok=True)
                (root / path).touch()
    return root


def torch_preloads(monkeypatch, site: Path) -> dict[str, str | None]:
    """Run torch's own CUDA preloader (torch/__init__.py, same version as the image's) over `site` and
    return lib pattern -> the file it would load (None: not found)."""
    import torch

    monkeypatch.setattr(torch.version, "cuda", "13.0")  # the image's build; the CI copy is the CPU build
    picked: dict[str, str | None] = {}

    def record(folder: str, pattern: str, required: bool = True) -> None:
        candidates = torch._get_cuda_dep_paths(str(site), folder, pattern)
        picked[pattern] = str(Path(candidates[0]).relative_to(site)) if candidates else None

    monkeypatch.setattr(torch, "_preload_cuda_lib", record)
    torch._preload_cuda_deps()
    return picked


def test_torch_loads_every_cuda_library_from_its_own_cuda13_wheels(resolved, monkeypatch, tmp_path):
    venv = resolved["venv"]
    picked = torch_preloads(monkeypatch, site_packages_layout(venv, tmp_path / "site-packages"))
    optional = {"libnvToolsExt.so.*[0-9]"}
    missing = [p for p, path in picked.items() if path is None and p not in optional]
    assert not missing, f"torch would fail to load {missing}"
    for pattern, path in picked.items():
        if path is not None:
            owner = owner_of(venv, path)
            assert owner and not owner.endswith("-cu12"), f"torch would load {path} ({owner}) for {pattern}"


def test_cuda12_wheels_on_sys_path_would_be_picked_by_torch(resolved, monkeypatch, tmp_path):
    """Why /opt/cuda12 is off sys.path: torch's loader globs nvidia/cublas/lib first and takes cuBLAS 12."""
    both = {**resolved["venv"], **resolved["/opt/cuda12"]}
    picked = torch_preloads(monkeypatch, site_packages_layout(both, tmp_path / "site-packages"))
    assert picked["libcublas.so.*[0-9]"] == "nvidia/cublas/lib/libcublas.so.12"


def ctranslate2_cuda_sonames() -> set[str]:
    """The CUDA libraries libctranslate2 names (it dlopens them): read from the installed wheel's library."""
    files = metadata.files("ctranslate2") or []
    (library,) = [f for f in files if re.search(r"libctranslate2[^/]*\.so", str(f))]
    data = Path(library.locate()).read_bytes()
    names = {m.decode() for m in re.findall(rb"lib(?:cu|nv|nccl)[A-Za-z0-9_]*\.so\.\d+", data)}
    return names


def test_ctranslate2_finds_each_cuda_library_it_loads(resolved):
    sonames = ctranslate2_cuda_sonames()
    assert "libcublas.so.12" in sonames, sonames
    target = resolved["/opt/cuda12"]
    search = [d for d in ld_library_path() if d.startswith("/opt/cuda12/")]
    for soname in sorted(sonames - set(CT2_NOT_LOADED)):
        # the library and what it needs itself (cuBLAS loads cuBLASLt from the same directory)
        for needed in (soname, soname.replace("libcublas.", "libcublasLt.")):
            hits = [d for d in search if owner_of(target, f"{d.removeprefix('/opt/cuda12/')}/{needed}")]
            assert hits, f"{needed} (ctranslate2) is in no LD_LIBRARY_PATH directory of /opt/cuda12"
    service = "\n".join(p.read_text() for p in (ROOT / "service").rglob("*.py"))
    assert "tensor_parallel" not in service  # so libnccl.so.2 is never loaded


def test_the_base_image_is_the_cuda13_base_of_the_python_resolved_for():
    base = shipped_base()
    assert re.fullmatch(r"nvidia/cuda:13\.0\.\d+-base-ubuntu24\.04", base), base
    assert "download.pytorch.org" not in DOCKERFILE  # PyPI alone
