"""The compiled modules (scripts/build-compiled) are what the tests import, and never a stale build.

CI builds them (scripts/setup) before the suite, so the whole suite exercises the mypyc-compiled
code; the guard tests run on a copy of the package whose source is edited after the build.
"""

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMPILED = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["callqual"]["compiled"]["modules"]

#: Imports every compiled module and prints where each came from, then the guard's decision.
_WHERE = """
import importlib, json, sys
from callqual import compiled_guard
names = json.loads(sys.argv[1])
files = {name: importlib.import_module(name).__file__ for name in names}
print(json.dumps({"files": files, "usable": compiled_guard.STATE.usable,
                  "warnings": compiled_guard.STATE.warnings}))
"""


def _python_in(root: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -c ...`` importing callqual from ``root`` (the checkout or a copy of it)."""
    return subprocess.run(
        [sys.executable, "-c", *args],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root), **(env or {})},
        capture_output=True,
        text=True,
        check=True,
    )


def _where(root: Path, env: dict[str, str] | None = None) -> tuple[dict[str, object], str]:
    proc = _python_in(root, _WHERE, json.dumps(COMPILED), env=env)
    return json.loads(proc.stdout), proc.stderr


def _kinds(result: dict[str, object]) -> set[str]:
    files = result["files"]
    assert isinstance(files, dict)
    return {Path(str(path)).suffix for path in files.values()}


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    """The built package copied (symlinked folders resolved) where a test may edit it."""
    shutil.copytree(ROOT / "callqual", tmp_path / "callqual", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_the_tests_import_the_compiled_modules() -> None:
    result, stderr = _where(ROOT)
    assert result["usable"] is True, "no usable build: run scripts/build-compiled"
    assert _kinds(result) == {".so"}, result["files"]
    assert stderr == ""


def test_an_edited_source_runs_as_python(package_copy: Path) -> None:
    edited = package_copy / "callqual" / "detector" / "rules" / "windows.py"
    edited.write_text(edited.read_text() + "\nEDITED_AFTER_BUILD = True\n")
    result, stderr = _where(package_copy)
    assert result["usable"] is False
    # the whole build is set aside, not only the edited module: compiled modules call each other in C
    assert _kinds(result) == {".py"}
    assert result["warnings"] == 1
    assert stderr.count("callqual: not using the compiled modules") == 1
    assert "callqual.detector.rules.windows" in stderr
    assert "scripts/build-compiled" in stderr
    probe = "import callqual.detector.rules.windows as w; print(w.EDITED_AFTER_BUILD)"
    run = _python_in(package_copy, probe)
    assert run.stdout.strip() == "True"


def test_an_edited_module_they_import_sets_the_build_aside(package_copy: Path) -> None:
    """Not compiled itself, but compiled against (its types, maybe its constants inlined)."""
    manifest = json.loads((package_copy / "callqual" / "_compiled_manifest.json").read_text())
    assert "callqual.schemas.events" in manifest["dependencies"]
    edited = package_copy / "callqual" / "schemas" / "events.py"
    edited.write_text(edited.read_text() + "\n# edited after the build\n")
    result, stderr = _where(package_copy)
    assert _kinds(result) == {".py"}
    assert "callqual.schemas.events" in stderr


def test_extensions_without_a_manifest_are_not_loaded(package_copy: Path) -> None:
    (package_copy / "callqual" / "_compiled_manifest.json").unlink()
    result, stderr = _where(package_copy)
    assert _kinds(result) == {".py"}
    assert "no build manifest" in stderr


def test_an_extension_the_build_did_not_make_is_not_loaded(package_copy: Path) -> None:
    """A leftover ``.so`` (a module dropped from the list, one from elsewhere) never shadows its ``.py``."""
    built = next((package_copy / "callqual" / "detector").glob("detector.cpython-*.so"))
    leftover = built.with_name(built.name.replace("detector.", "features.", 1))
    shutil.copyfile(built, leftover)
    probe = (
        "import callqual.detector.features as f, callqual.detector.detector as d;"
        "print(f.__file__, d.__file__)"
    )
    run = _python_in(package_copy, probe)
    features, detector = run.stdout.split()
    assert features.endswith("features.py") and detector.endswith(".so")
    assert "ignoring the extension of callqual.detector.features" in run.stderr


def test_pure_python_on_request(package_copy: Path) -> None:
    result, stderr = _where(package_copy, {"CALLQUAL_PURE_PYTHON": "1"})
    assert _kinds(result) == {".py"}
    assert stderr == ""
