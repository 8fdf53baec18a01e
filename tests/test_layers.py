"""The layer contract: which part of callqual may import which. No exceptions.

Every module under ``callqual/`` (the services and schemas through their symlinks) is
parsed, and each ``import`` is checked against the table below. A layer is a package,
except that a service's wiring (``<service>.service``, and the detector's ``stages``), the
capture adapters and the Kafka adapter are layers of their own: the pure cores must not reach
them.
"""

from __future__ import annotations

import ast
import os
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "callqual"

#: Pure: the packet/SIP/RTP core and the detector core read schemas only.
_CORE = {"schemas"}
#: What a service's wiring composes: its core, the transport seam, observability, signals.
_WIRING = {"schemas", "transport", "transport.kafka", "observability", "pipeline"}

#: layer -> the layers it may import (besides itself)
ALLOWED: dict[str, set[str]] = {
    "schemas": set(),
    "transport": {"schemas"},
    "transport.kafka": {"transport", "schemas"},
    "observability": {"schemas"},
    "collector": _CORE,
    "collector.capture": {"collector", "schemas"},
    "detector": _CORE,
    "simulator": _CORE,
    "alerter": {"schemas", "transport", "observability"},
    "pipeline": {"collector", "collector.capture", "detector", "schemas"},
    "store": {"collector", "collector.capture", "detector", "pipeline", "schemas"},
    "ui": {"collector", "collector.capture", "detector", "pipeline", "schemas", "store"},
    "collector.service": {"collector", "collector.capture", *_WIRING},
    "detector.service": {"detector", *_WIRING},
    "alerter.service": {"alerter", *_WIRING},
    "store.service": {"store", *_WIRING},
    # The fuzz harness drives whole paths on purpose, but never a broker.
    "fuzz": {
        *("alerter", "alerter.service", "cli", "collector", "collector.capture", "detector"),
        *("detector.service", "observability", "pipeline", "schemas", "transport"),
    },
    "callqual": set(),
}
#: Entry points: the CLI wires everything; __main__ only starts it. Others may import the CLI
#: only where the table says so.
ENTRY_POINTS = {"cli", "__main__"}
#: Third-party clients, and our compiled SIP parser (native/), that only one layer may import.
ADAPTER_OWNERS = {"confluent_kafka": "transport.kafka", "callqual_native": "collector"}


def layer(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "callqual":
        return parts[0]
    if len(parts) == 1:
        return "callqual"
    sub = parts[2] if len(parts) > 2 else ""
    if parts[1] in {"collector", "detector", "alerter", "store"} and sub in {"service", "stages"}:
        return f"{parts[1]}.service"
    if (parts[1], sub) in {("collector", "capture"), ("transport", "kafka")}:
        return f"{parts[1]}.{sub}"
    return parts[1]


def imports() -> Iterator[tuple[str, str]]:
    """``(importing module, imported module)`` for every absolute import under callqual/."""
    paths = [
        Path(d, f) for d, _, files in os.walk(ROOT, followlinks=True) for f in files if f.endswith(".py")
    ]
    for path in sorted(paths):  # followlinks: the services and schemas are symlinked in
        rel = path.relative_to(ROOT.parent).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                yield from ((module, a.name) for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                yield module, node.module


def test_every_layer_imports_only_what_the_contract_allows() -> None:
    seen = 0
    broken: list[str] = []
    for importer, imported in imports():
        src, dst = layer(importer), layer(imported)
        owner = ADAPTER_OWNERS.get(dst)
        if owner is not None and src != owner:
            broken.append(f"{importer} imports {imported} (only {owner} may)")
        ours = imported == "callqual" or imported.startswith("callqual.")
        if not ours or src == dst or src in ENTRY_POINTS:
            continue
        seen += 1
        if dst not in ALLOWED[src]:
            broken.append(f"{importer} ({src}) imports {imported} ({dst})")
    assert seen > 100, "the walk found too few imports to check anything"
    assert broken == []


def test_the_contract_catches_a_core_importing_kafka() -> None:
    assert layer("callqual.detector.rules.sip_flood") == "detector"
    assert layer("callqual.transport.kafka") not in ALLOWED["detector"]
    assert layer("callqual.detector.service") == "detector.service"
    assert "detector.service" not in ALLOWED["collector.service"]
    # The compiled parser is the collector's own: nothing else reaches past collector.sip.
    assert ADAPTER_OWNERS[layer("callqual_native")] == "collector"
