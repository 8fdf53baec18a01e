"""Never run stale compiled code: a build of scripts/build-compiled is used only while its sources match.

``scripts/build-compiled`` compiles the hot pure modules (``[tool.callqual.compiled]`` in
pyproject.toml) with mypyc into one shared library, ``callqual/_compiled__mypyc*.so``, plus a
small extension next to each ``.py``, and writes ``callqual/_compiled_manifest.json`` with the
SHA-256 of every compiled source. Python prefers a ``.so`` to the ``.py`` beside it, so after an
edit the old build would silently win. ``install()`` (called by ``callqual/__init__``) puts a
finder first on ``sys.meta_path``: a compiled module under ``callqual`` is loaded only if the
manifest lists it and no listed source changed; otherwise every one of them is loaded from its
``.py`` (the compiled modules call each other directly in C, so one stale member makes the whole
build stale), and one line on stderr says why and how to rebuild. The ``callqual`` modules the
compiled ones import are checked too: mypyc compiled against their types and may have inlined
their constants. ``CALLQUAL_PURE_PYTHON=1`` loads the ``.py`` files on purpose (to compare).
"""

import hashlib
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib.abc import MetaPathFinder
from importlib.machinery import EXTENSION_SUFFIXES, ExtensionFileLoader, ModuleSpec, PathFinder
from pathlib import Path
from types import ModuleType

PACKAGE = "callqual"
PACKAGE_DIR = Path(__file__).resolve().parent
MANIFEST = PACKAGE_DIR / "_compiled_manifest.json"
#: The mypyc runtime library shared by the compiled modules: it has no ``.py`` twin.
RUNTIME_LIBRARY = f"{PACKAGE}._compiled__mypyc"
PURE_PYTHON_ENV = "CALLQUAL_PURE_PYTHON"
REBUILD_HINT = "rebuild with scripts/build-compiled"


def source_digest(path: Path) -> str:
    """The manifest's fingerprint of one source file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(slots=True)
class GuardState:
    """What the guard decided in this process: read by the tests and by ``callqual version``-like probes."""

    #: None until the first compiled module is looked up; then whether the build may be used
    usable: bool | None = None
    #: why the compiled modules are not used (empty when they are)
    reason: str = ""
    #: compiled modules loaded from their ``.so`` / from their ``.py`` because of the guard
    compiled_loaded: list[str] = field(default_factory=list)
    python_fallbacks: list[str] = field(default_factory=list)
    #: how many times the guard said so on stderr (once per process at most)
    warnings: int = 0


STATE = GuardState()
#: the compiled modules this process may load from their ``.so`` (set once the build is checked)
_ALLOWED: dict[str, str] = {}


def _read_manifest() -> tuple[dict[str, str], dict[str, str]]:
    """(compiled modules, the modules they import) as name -> source SHA-256; empty if unreadable."""
    try:
        data = json.loads(MANIFEST.read_text(encoding="utf-8"))
        modules = {str(name): str(entry["sha256"]) for name, entry in data["modules"].items()}
        imported = {str(name): str(entry["sha256"]) for name, entry in data.get("dependencies", {}).items()}
        return modules, imported
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}, {}


def _source_path(module: str) -> Path:
    base = PACKAGE_DIR.joinpath(*module.split(".")[1:])
    source = base.with_suffix(".py")
    return source if source.exists() else base / "__init__.py"


def _stale_sources(hashes: dict[str, str]) -> list[str]:
    stale = []
    for name, digest in hashes.items():
        try:
            current = source_digest(_source_path(name))
        except OSError:
            current = ""
        if current != digest:
            stale.append(name)
    return stale


def _pure_python_requested() -> bool:
    return os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0")


def _decide() -> None:
    """Read the manifest and hash the sources once per process."""
    if _pure_python_requested():
        STATE.usable, STATE.reason = False, f"{PURE_PYTHON_ENV} is set"
        return
    modules, dependencies = _read_manifest()
    if not modules:
        STATE.usable, STATE.reason = False, f"no build manifest ({MANIFEST.name})"
        return
    stale = _stale_sources({**modules, **dependencies})
    if stale:
        STATE.usable = False
        STATE.reason = "sources changed since the build: " + ", ".join(stale)
        return
    STATE.usable = True
    _ALLOWED.update(modules)


def _warn_once(fullname: str) -> None:
    if STATE.warnings or _pure_python_requested():
        return
    STATE.warnings += 1
    if STATE.usable:  # the build is fine, but this extension is not part of it (a leftover)
        what = f"ignoring the extension of {fullname}: not in {MANIFEST.name}"
    else:
        what = f"not using the compiled modules ({STATE.reason})"
    print(f"callqual: {what}; running the Python sources, {REBUILD_HINT}", file=sys.stderr)


class CompiledGuard(MetaPathFinder):
    """Finds ``callqual.*`` modules like the path finder does, but never a stale or unlisted ``.so``."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if not fullname.startswith(PACKAGE + ".") or fullname == RUNTIME_LIBRARY:
            return None
        spec = PathFinder.find_spec(fullname, path, target)
        if spec is None or not isinstance(spec.loader, ExtensionFileLoader) or spec.origin is None:
            return spec
        if STATE.usable is None:
            _decide()
        if STATE.usable and fullname in _ALLOWED:
            STATE.compiled_loaded.append(fullname)
            return spec
        source = _python_twin(spec.origin)
        if source is None:
            return spec
        _warn_once(fullname)
        STATE.python_fallbacks.append(fullname)
        return importlib.util.spec_from_file_location(fullname, source)


def _python_twin(extension: str) -> str | None:
    """``x/windows.cpython-311-x86_64-linux-gnu.so`` -> ``x/windows.py`` if it exists."""
    for suffix in EXTENSION_SUFFIXES:
        if extension.endswith(suffix):
            candidate = extension[: -len(suffix)] + ".py"
            return candidate if os.path.exists(candidate) else None
    return None


def install() -> None:
    """Put the guard first on ``sys.meta_path`` (once)."""
    if not any(isinstance(finder, CompiledGuard) for finder in sys.meta_path):
        sys.meta_path.insert(0, CompiledGuard())
