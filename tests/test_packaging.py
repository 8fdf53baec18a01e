"""A wheel install and an editable install both import every module of the one import root."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Imports every module under callqual and prints where the package came from.
_IMPORT_ALL = """
import importlib, pkgutil, sys
import callqual
names = [m.name for m in pkgutil.walk_packages(callqual.__path__, "callqual.")]
names = [n for n in names if not n.endswith("__main__")]
for name in names:
    importlib.import_module(name)
expected = {"callqual.collector.collector", "callqual.detector.detector", "callqual.alerter",
            "callqual.schemas.events", "callqual.cli.main", "callqual.simulator"}
missing = expected - set(names)
assert not missing, missing
print(callqual.__file__)
print(len(names))
"""


def _import_all(python: str, cwd: Path) -> tuple[Path, int]:
    proc = subprocess.run([python, "-c", _IMPORT_ALL], cwd=cwd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    location, count = proc.stdout.split()
    return Path(location), int(count)


def test_editable_install_imports_every_module(tmp_path: Path) -> None:
    """Run from outside the checkout: only the installed (editable) package can answer."""
    location, count = _import_all(sys.executable, tmp_path)
    assert location.is_relative_to(ROOT), f"callqual came from {location}, not this checkout"
    assert count > 50


@pytest.mark.slow
def test_wheel_installs_and_imports_every_module(tmp_path: Path) -> None:
    wheel_dir = tmp_path / "wheel"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(wheel_dir),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheel_dir.glob("voip_callqual-*.whl")
    venv = tmp_path / "venv"
    # System site-packages provide the dependencies; the wheel's own copy of callqual comes first.
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, capture_output=True
    )
    location, count = _import_all(python, tmp_path)
    assert location.is_relative_to(venv), f"callqual came from {location}, not the wheel"
    assert count > 50
    schema_files = list((location.parent / "schemas" / "json").glob("*.schema.json"))
    assert len(schema_files) >= 5, "the JSON Schema files ship in the wheel"
