"""A compiled dataclass's written-out ``__init__`` takes exactly what the dataclass's would.

mypyc leaves the methods ``dataclasses`` generates interpreted, so the hot ones
(``SipMessage``, ``Payload``, a call's dialog and context...) are written out with
``@dataclass(init=False)``. This holds each such ``__init__`` to its fields: the same
names in the same order, the same defaults, ``None`` standing for a ``default_factory``,
and every field assigned, so that a field added later cannot be silently left out.
"""

import ast
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULES = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["callqual"]["compiled"]["modules"]


def _source(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path.resolve()
    return None


def _written_out() -> list[tuple[str, ast.ClassDef, str]]:
    """(file, class, source) of every ``@dataclass(init=False)`` class with its own ``__init__``."""
    found = []
    for module in MODULES:
        path = _source(module)
        if path is None:
            continue
        text = path.read_text(encoding="utf-8")
        for node in ast.walk(ast.parse(text)):
            if not isinstance(node, ast.ClassDef):
                continue
            decorators = [ast.unparse(d) for d in node.decorator_list]
            if any(d.startswith("dataclass(") and "init=False" in d for d in decorators):
                found.append((str(path.relative_to(ROOT.resolve())), node, text))
    return found


def _fields(node: ast.ClassDef, text: str) -> tuple[list[tuple[str, str | None]], list[str]]:
    """(init parameters as (name, expected default source or None), every field name)."""
    params: list[tuple[str, str | None]] = []
    names: list[str] = []
    for stmt in node.body:
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
            continue
        if ast.unparse(stmt.annotation).startswith("ClassVar"):
            continue
        name, value = stmt.target.id, stmt.value
        names.append(name)
        if value is None:
            params.append((name, None))
        elif isinstance(value, ast.Call) and ast.unparse(value.func) == "field":
            keywords = {k.arg: k.value for k in value.keywords}
            if "init" in keywords and ast.unparse(keywords["init"]) == "False":
                continue
            if "default_factory" in keywords:
                params.append((name, "None"))
            elif "default" in keywords:
                params.append((name, ast.unparse(keywords["default"])))
            else:
                params.append((name, None))
        else:
            params.append((name, ast.unparse(value)))
    return params, names


CLASSES = _written_out()


def test_the_hot_dataclasses_are_written_out() -> None:
    names = {node.name for _, node, _ in CLASSES}
    assert {"SipMessage", "Payload", "SipDialog", "CallContext", "SdpExchange", "MediaBinding"} <= names


@pytest.mark.parametrize(("path", "node", "text"), CLASSES, ids=[f"{p}:{n.name}" for p, n, _ in CLASSES])
def test_init_takes_the_fields_in_order_with_their_defaults(path: str, node: ast.ClassDef, text: str) -> None:
    init = next(
        (s for s in node.body if isinstance(s, ast.FunctionDef) and s.name == "__init__"),
        None,
    )
    assert init is not None, f"{path}: {node.name} is @dataclass(init=False) without an __init__"
    expected, names = _fields(node, text)
    args = init.args.args[1:]
    defaults: list[str | None] = [None] * (len(args) - len(init.args.defaults)) + [
        ast.unparse(d) for d in init.args.defaults
    ]
    got = [(a.arg, d) for a, d in zip(args, defaults, strict=True)]
    assert got == expected, f"{path}: {node.name}.__init__ does not take its fields as the dataclass would"
    assigned = {
        t.attr
        for s in ast.walk(init)
        if isinstance(s, ast.Assign)
        for t in s.targets
        if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"
    }
    unset = sorted(set(names) - assigned)
    assert not unset, f"{path}: {node.name}.__init__ leaves {unset} unset"
